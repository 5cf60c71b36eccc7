"""The HAT backbone base class: the task API (gates, stored masks, trained tasks,
per-task heads) and the state task-agnostic inference keeps (feature statistics,
calibration), nothing of how it is used (docs/ALGORITHM.md §1, §10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from avalanche.benchmarks.scenarios import CLExperience
from avalanche.models import IncrementalClassifier, MultiHeadClassifier, MultiTaskModule
from torch import Tensor, nn

from ..core.functional import gate
from .mask import CoveredParameter, HATMask
from .statistics import FeatureStatistics

if TYPE_CHECKING:
    from .layers import HATLayer

__all__ = ["HATModule"]

#: The submodules that hold feature statistics: the task spaces and the input space.
_STATISTICS = ("task_statistics", "input_statistics")


class HATModule(MultiTaskModule):
    """Base class of backbones with HAT masks (an Avalanche ``MultiTaskModule``).

    Subclasses list their weighted layers, in forward order, as HAT layers in
    :attr:`hat_layers` (:mod:`avalanche_adahat.nn.layers`; each wrapper's ``layer``
    and ``mask`` registered as submodules too) and apply the gates of
    :meth:`gate_map` in ``forward_single_task``
    (:func:`avalanche_adahat.nn.layers.apply_gate`). The protected parameters
    (:meth:`covered_parameters`) follow from the HAT layers.

    Gate used for task ``t`` (docs/ALGORITHM.md §1): the stored binary ``M^t`` once ``t`` has
    finished; while ``t`` trains, the step's soft gates ``sigmoid(s e^t)`` in
    train mode (handed in by :meth:`set_step_gates`) and ``sigmoid(s_max e^t)``
    otherwise; no gate (all ones) for a task label that was never trained.

    The training plugin drives the model one way, through methods:
    :meth:`begin_training` (``s_max``, the embedding init mode),
    :meth:`set_step_gates` (each step's gates), :meth:`store_task_masks` (end of a
    task); the model hands nothing back.
    """

    def __init__(self) -> None:
        super().__init__()
        self.s_max: float = 400.0
        self.task_embedding_init_mode: str = "N01"
        self._hat_masks: list[HATMask] | None = None
        # The HAT layers in forward order: a plain list, out of the module tree, so
        # that the layers and masks keep their own paths (state_dict keys, mask
        # names) and the order of model.parameters() (clip_grad_norm_'s bits).
        self.hat_layers: list[HATLayer] = []
        # Task-agnostic evaluation: in eval mode, forward() returns router(self, x)
        # (avalanche_adahat.inference.TaskRouter).
        self.router: Callable[[HATModule, Tensor], Tensor] | None = None
        # (task label, gates) of the current training step (see set_step_gates).
        self._step_gates: tuple[int | None, Tensor] | None = None
        # Per-layer gates that replace every task's (task inference's mask superposition).
        self._gate_override: list[Tensor] | None = None

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        state["_step_gates"] = None  # part of an autograd graph: never copied
        state["_gate_override"] = None
        return state

    def begin_training(self, s_max: float, task_embedding_init_mode: str) -> None:
        """Set ``s_max`` (evaluation gates of the task being trained) and the init mode
        of new task embeddings (:func:`init_embedding`)."""
        self.s_max = float(s_max)
        self.task_embedding_init_mode = task_embedding_init_mode

    def override_gates(self, gates: list[Tensor] | None) -> None:
        """Use these per-layer gates (``(units,)`` or ``(N, units)`` each, mask order) in
        every forward pass, whatever the task, until ``None`` is given."""
        self._gate_override = gates

    def set_step_gates(self, task_label: int | None, gates: Tensor | None) -> None:
        """The soft gates ``sigmoid(s e^t)`` of the training task for this step, as one
        vector over all masks in mask order (with its autograd graph), used by every
        training forward pass of ``task_label`` until replaced; ``None`` clears them."""
        self._step_gates = None if gates is None else (task_label, gates)

    @property
    def max_class_label(self) -> int:
        """Width of the logits ``MultiTaskModule.forward`` returns for a mixed-task batch:
        the classes seen, and at least the widest head (a head created with more
        outputs than its task's classes must fit)."""
        widths = [self._max_class_label]
        for m in self.modules():
            if isinstance(m, MultiHeadClassifier):
                widths.append(m.max_class_label)
            elif isinstance(m, IncrementalClassifier):
                widths.append(m.classifier.out_features)
        return max(widths)

    @max_class_label.setter
    def max_class_label(self, value: int) -> None:
        self._max_class_label = value

    def task_private_parameters(self, task_label: int) -> list[nn.Parameter]:
        """Parameters only task ``task_label`` uses: its heads in every
        ``MultiHeadClassifier`` (subclasses add other per-task modules). Once the
        task is trained, the plugin keeps them unchanged in every adjustment mode."""
        key = str(task_label)
        return [
            p
            for m in self.modules()
            if isinstance(m, MultiHeadClassifier) and key in m.classifiers
            for p in m.classifiers[key].parameters()
        ]

    def set_router(self, router: Callable[[HATModule, Tensor], Tensor] | None) -> None:
        """In eval mode, return ``router(self, x)`` from :meth:`forward` instead of reading
        task labels (task-agnostic inference, :class:`avalanche_adahat.inference.TaskRouter`);
        ``None``: read the task labels."""
        self.router = router

    def forward(self, x: Tensor, task_labels) -> Tensor:
        if self.router is None or self.training:
            return super().forward(x, task_labels)
        return self.router(self, x)

    def feature_statistics(
        self, cov_rank: int | None = None, name: str = "task_statistics"
    ) -> FeatureStatistics:
        """The class statistics of every trained task's feature space (feature-statistics
        task inference, :mod:`avalanche_adahat.inference`), or with
        ``name="input_statistics"`` those of the raw inputs; a submodule, so that
        ``state_dict()`` and checkpoints carry it. Created empty on first use, keeping
        covariances of rank ``cov_rank`` (``None``: full)."""
        if name not in _STATISTICS:
            raise ValueError(f"name must be one of {_STATISTICS}, got {name!r}")
        current = getattr(self, name, None)
        if current is None:
            device = self.hat_masks()[0].cumulative.device
            setattr(self, name, FeatureStatistics(cov_rank).to(device))
        elif cov_rank != current.rank and current.spaces():
            raise ValueError(
                f"cov_rank={cov_rank!r}, but this model's feature statistics keep "
                f"cov_rank={current.rank!r}; keep one rank for the whole stream"
            )
        elif cov_rank != current.rank:  # nothing gathered yet: take the new rank
            setattr(self, name, FeatureStatistics(cov_rank).to(current.cov_rank.device))
        return getattr(self, name)

    def task_router_bytes(self) -> int:
        """Bytes the task-inference state holds: feature statistics and calibration."""
        total = sum(getattr(self, n).nbytes() for n in _STATISTICS if hasattr(self, n))
        for name, buffer in self.named_buffers(recurse=False):
            if name.startswith("calibration_T"):
                total += buffer.numel() * buffer.element_size()
        return total

    def task_calibration(self, task_label: int, rule: str) -> Tensor:
        """The mean score of task-inference ``rule`` on task ``task_label``'s training data
        (a 0-dim tensor; see :meth:`store_task_calibration`)."""
        name = f"calibration_T{task_label}_{rule}"
        if not hasattr(self, name):
            raise ValueError(
                f"task {task_label} has no task-inference calibration for rule {rule!r} (train "
                "it with calibrate_task_inference=True)"
            )
        return getattr(self, name)

    def store_task_calibration(self, task_label: int, means: dict[str, Tensor]) -> None:
        """Keep each rule's mean score on the task's training data, one buffer per rule
        (``calibration_T{task}_{rule}``: checkpoints carry them by name)."""
        for rule, mean in means.items():
            self.register_buffer(f"calibration_T{task_label}_{rule}", mean.detach().clone())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in [k for k in state_dict if k.startswith(prefix + "score_stats_T")]:
            # Checkpoints before 0.1.0 kept (mean, std) rows in the order of the logit
            # rules then: msp, entropy, energy, oneshot. Only the means were ever read.
            task = key[len(prefix + "score_stats_T") :]
            rows = state_dict.pop(key)
            for rule, row in zip(("msp", "entropy", "energy", "oneshot"), rows):
                state_dict[f"{prefix}calibration_T{task}_{rule}"] = row[0].clone()
        for key, value in state_dict.items():
            name = key[len(prefix) :] if key.startswith(prefix) else ""
            if name.startswith("calibration_T") and "." not in name and not hasattr(self, name):
                self.register_buffer(name, torch.zeros_like(value))
            owner = name.split(".", 1)[0]
            if owner in _STATISTICS and "." in name and not hasattr(self, owner):
                self.feature_statistics(name=owner)  # buffers and rank come from its own loader
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def hat_masks(self) -> list[HATMask]:
        """The masks in forward order (found once: the architecture does not change)."""
        if self._hat_masks is None:
            self._hat_masks = [m for m in self.modules() if isinstance(m, HATMask)]
        return self._hat_masks

    def covered_parameters(self) -> list[CoveredParameter]:
        """The parameters HAT's gradient adjustment (HAT Eq. 2) protects, from
        :attr:`hat_layers` in order: each layer's weight (output units: its mask,
        input units: its input mask) and bias (output units only). Names are those
        of ``named_parameters()``. A backbone with other needs overrides this."""
        if not self.hat_layers:
            raise NotImplementedError(
                f"{type(self).__name__} lists no HAT layers: set self.hat_layers "
                "(avalanche_adahat.nn.layers) or override covered_parameters()"
            )
        names = {id(p): n for n, p in self.named_parameters()}
        return [cp for layer in self.hat_layers for cp in layer.covered_parameters(names)]

    def trained_tasks(self) -> list[int]:
        """Task labels whose masks are stored, in training order."""
        first = self.hat_masks()[0]
        return [int(k) for k in first.embeddings.keys() if first.is_stored(int(k))]

    def adaptation(self, experience: CLExperience) -> None:
        """Add task embeddings for new task labels seen in training."""
        super().adaptation(experience)
        if not self.training:
            return
        for task_label in sorted(set(experience.task_labels)):
            for mask in self.hat_masks():
                if not mask.has_embedding(task_label):
                    mask.add_task(task_label, self.task_embedding_init_mode)

    def task_embeddings(self, task_label: int) -> Tensor:
        """``e^t`` of every mask, concatenated in mask order (with their autograd graph)."""
        key = str(task_label)
        embeddings = [m.embeddings[key] for m in self.hat_masks()]
        return embeddings[0] if len(embeddings) == 1 else torch.cat(embeddings)

    def task_gates(self, task_label: int) -> list[Tensor] | None:
        """The per-layer gates for ``task_label`` (see the class docstring).

        Soft gates of all layers are computed as one vector (HAT Eq. 1 on the
        concatenated embeddings) and handed out as views, one per mask.
        """
        masks = self.hat_masks()
        if self._gate_override is not None:
            return self._gate_override
        if masks[0].is_stored(task_label):
            return [m.stored_mask(task_label) for m in masks]
        if not masks[0].has_embedding(task_label):
            return None
        step = self._step_gates
        if self.training and step is not None and step[0] == task_label:
            gates = step[1]
        else:
            gates = gate(self.task_embeddings(task_label), self.s_max)
        return list(gates.split([m.num_units for m in masks]))

    def gate_map(self, task_label: int) -> dict[HATMask, Tensor] | None:
        """``{mask: gate}`` for ``task_label`` (:meth:`task_gates`), or ``None`` (no
        gating), for :func:`avalanche_adahat.nn.layers.apply_gate`."""
        gates = self.task_gates(task_label)
        if gates is None:
            return None
        return dict(zip(self.hat_masks(), gates))

    @torch.no_grad()
    def store_task_masks(self, task_label: int) -> None:
        """End of task ``t``: store ``M^t``, update ``M^{<t}`` and ``S^{<t}``."""
        for mask in self.hat_masks():
            mask.store(task_label)
