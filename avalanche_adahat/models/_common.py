"""Helpers shared by the HAT backbones: per-task BatchNorm, heads, gates, checks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from avalanche.benchmarks.scenarios import CLExperience
from avalanche.models import MultiHeadClassifier
from torch import Tensor, nn

from ..masking import HATMask, HATModule

__all__ = ["HATBackbone", "TaskBatchNorm", "apply_gate", "make_head"]


class TaskBatchNorm(nn.Module):
    """One BatchNorm per task label: parameters *and* running statistics.

    A shared BatchNorm breaks HAT's guarantee (SPEC §6): its affine parameters
    and running statistics move while later tasks train, so earlier tasks'
    outputs drift although every masked weight is frozen. Here each task label
    owns a private ``BatchNorm1d``/``BatchNorm2d`` in ``bns[str(t)]``, created
    by :meth:`add_task` (the backbone's ``adaptation`` calls it for every new
    training task label) and used only by that task's forward pass. A task's BN
    therefore receives gradients and updates its statistics only while that
    task trains. Per-task BNs are task-private, like heads and task
    embeddings: they are not :class:`~avalanche_adahat.CoveredParameter`\\ s.

    Fallback for a task label without its own BN (never trained): the most
    recently created BN (that of the last task trained), so that evaluating
    unseen tasks runs the newest statistics; if none was created yet, a
    freshly initialised BN's behaviour (batch statistics in train mode;
    ``x / sqrt(1 + eps)`` in eval mode) without creating or changing any state.

    Each new BN starts freshly initialised (weight 1, bias 0, mean 0, var 1).

    :param num_features: channels (``spatial=True``, ``BatchNorm2d``) or
        features (``spatial=False``, ``BatchNorm1d``).
    """

    def __init__(
        self,
        num_features: int,
        *,
        spatial: bool = True,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        if not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"num_features must be a positive integer, got {num_features!r}")
        self.num_features = num_features
        self.spatial = spatial
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.bns = nn.ModuleDict()
        # Follows .to(device / dtype) so BNs created later land where the model is.
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    def extra_repr(self) -> str:
        kind = "2d" if self.spatial else "1d"
        return f"{self.num_features}, {kind}, tasks={list(self.bns.keys())}"

    def _new_bn(self) -> nn.Module:
        cls = nn.BatchNorm2d if self.spatial else nn.BatchNorm1d
        return cls(
            self.num_features,
            eps=self.eps,
            momentum=self.momentum,
            affine=self.affine,
            track_running_stats=self.track_running_stats,
        ).to(device=self._anchor.device, dtype=self._anchor.dtype)

    def has_task(self, task_label: int) -> bool:
        return str(task_label) in self.bns

    def add_task(self, task_label: int) -> None:
        """Create the private BN of a new task label (no-op if it exists)."""
        if not self.has_task(task_label):
            self.bns[str(task_label)] = self._new_bn()

    def bn_for(self, task_label: int) -> nn.Module | None:
        """The BN used for ``task_label`` (see the fallback in the class docstring)."""
        key = str(task_label)
        if key in self.bns:
            return self.bns[key]
        if len(self.bns) > 0:
            return self.bns[list(self.bns.keys())[-1]]
        return None

    def forward(self, x: Tensor, task_label: int) -> Tensor:
        bn = self.bn_for(task_label)
        if bn is not None:
            return bn(x)
        if self.training or not self.track_running_stats:
            return F.batch_norm(x, None, None, training=True, eps=self.eps)
        return x / torch.sqrt(torch.tensor(1.0 + self.eps, dtype=x.dtype, device=x.device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Create the per-task BNs a checkpoint has and this fresh module lacks.
        for key in state_dict:
            if key.startswith(prefix + "bns."):
                label = key[len(prefix) + 4 :].split(".", 1)[0]
                if label not in self.bns:
                    self.bns[label] = self._new_bn()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class HATBackbone(HATModule):
    """A :class:`HATModule` with per-task BatchNorm and a task-aware head.

    ``adaptation`` creates, for every new task label seen in training, the task
    embeddings (:class:`HATModule`) and the task's private BN in every
    :class:`TaskBatchNorm`.
    """

    def task_batch_norms(self) -> list[TaskBatchNorm]:
        return [m for m in self.modules() if isinstance(m, TaskBatchNorm)]

    def adaptation(self, experience: CLExperience) -> None:
        super().adaptation(experience)
        if not self.training:
            return
        for task_label in sorted(set(int(t) for t in experience.task_labels)):
            for bn in self.task_batch_norms():
                bn.add_task(task_label)

    def gate_map(self, task_label: int) -> dict[int, Tensor] | None:
        """``{id(mask): gate}`` for ``task_label``, or ``None`` (no gating)."""
        gates = self.task_gates(task_label)
        if gates is None:
            return None
        return {id(m): g for m, g in zip(self.hat_masks(), gates)}

    def _head_forward(self, h: Tensor, task_label: int) -> Tensor:
        return self.head(h, task_label) if self.multi_head else self.head(h)


def apply_gate(h: Tensor, gates: dict[int, Tensor] | None, mask: HATMask) -> Tensor:
    """Multiply the units of ``h`` by ``mask``'s gate; channel gates broadcast
    over spatial positions. ``gates=None``: no gating."""
    if gates is None:
        return h
    g = gates[id(mask)]
    if h.dim() == 4:
        return h * g.view(1, -1, 1, 1)
    return h * g


def make_head(in_features: int, num_classes: int, multi_head: bool) -> nn.Module:
    """``MultiHeadClassifier`` (one head per task label) or one shared ``Linear``."""
    if multi_head:
        return MultiHeadClassifier(in_features, initial_out_features=num_classes)
    return nn.Linear(in_features, num_classes)


def check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_probability(name: str, value) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a dropout probability in [0, 1), got {value!r}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
