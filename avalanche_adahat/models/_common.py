"""Helpers shared by the HAT backbones: per-task BatchNorm, heads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from avalanche.benchmarks.scenarios import CLExperience
from avalanche.models import IncrementalClassifier, MultiHeadClassifier
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..core.checks import check_positive_int
from ..nn.module import HATModule

__all__ = ["HATBackbone", "TaskBatchNorm", "check_sizes", "make_head"]


class TaskBatchNorm(nn.Module):
    """One BatchNorm per task label: parameters *and* running statistics.

    A shared BatchNorm breaks HAT's guarantee (docs/ALGORITHM.md §6): its affine parameters
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
    Once its task is trained (:meth:`freeze_task`), its BN normalises with its
    running statistics even in train mode and never updates them: samples of a
    trained task replayed while a later task trains (Replay, Cumulative, A-GEM
    memories) see exactly the function evaluation sees.

    :param num_features: channels (``spatial=True``, ``BatchNorm2d``) or
        features (``spatial=False``, ``BatchNorm1d``).
    """

    _anchor: Tensor

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

    def _new_bn(self) -> _BatchNorm:
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

    def freeze_task(self, task_label: int) -> None:
        """Keep the BN of a trained task as it is (see the class docstring)."""
        bn = self.bns[str(task_label)] if self.has_task(task_label) else None
        if bn is not None and not hasattr(bn, "hat_frozen"):
            bn.register_buffer(
                "hat_frozen", torch.ones((), dtype=torch.bool, device=self._anchor.device)
            )

    def bn_for(self, task_label: int) -> _BatchNorm | None:
        """The BN used for ``task_label`` (see the fallback in the class docstring)."""
        key = str(task_label)
        # Every BN in ``bns`` is made by _new_bn.
        if key in self.bns:
            return cast(_BatchNorm, self.bns[key])
        if len(self.bns) > 0:
            return cast(_BatchNorm, self.bns[list(self.bns.keys())[-1]])
        return None

    def forward(self, x: Tensor, task_label: int) -> Tensor:
        bn = self.bn_for(task_label)
        if bn is not None and hasattr(bn, "hat_frozen"):
            return F.batch_norm(
                x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps
            )
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
                if key.endswith(".hat_frozen") and not hasattr(self.bns[label], "hat_frozen"):
                    self.freeze_task(int(label))
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

    def task_private_parameters(self, task_label: int) -> list[nn.Parameter]:
        """Heads and the per-task BatchNorms of ``task_label``."""
        bn_params = [
            p
            for bn in self.task_batch_norms()
            if bn.has_task(task_label)
            for p in bn.bns[str(task_label)].parameters()
        ]
        return super().task_private_parameters(task_label) + bn_params

    @torch.no_grad()
    def store_task_masks(self, task_label: int) -> None:
        """Store the masks (:class:`HATModule`) and freeze the task's BatchNorms."""
        super().store_task_masks(task_label)
        for bn in self.task_batch_norms():
            bn.freeze_task(task_label)

    def _head_forward(self, h: Tensor, task_label: int) -> Tensor:
        return self.head(h, task_label) if self.multi_head else self.head(h)


def make_head(in_features: int, num_classes: int | None, multi_head: bool) -> nn.Module:
    """The classifier of a HAT backbone, sized from the data as Avalanche's are.

    ``multi_head``: a ``MultiHeadClassifier`` (one head per task label, each
    starting with ``num_classes`` outputs, Avalanche's default 2 when ``None``,
    and growing to the classes of its experience). Shared head: a fixed
    ``Linear`` with ``num_classes`` outputs when given, else an
    ``IncrementalClassifier`` that grows with the classes seen.
    """
    if num_classes is not None:
        check_positive_int("num_classes", num_classes)
    if multi_head:
        return MultiHeadClassifier(in_features, initial_out_features=num_classes or 2)
    if num_classes is None:
        return IncrementalClassifier(in_features, initial_out_features=2)
    return nn.Linear(in_features, num_classes)


def check_sizes(
    name: str, values: Sequence[int], expected: str, count: int | None = None
) -> tuple[int, ...]:
    """``values`` as a tuple of positive integers: ``count`` of them, or at least one
    when ``count`` is ``None``; otherwise ``ValueError("{name} must {expected}, ...")``."""
    values = tuple(values)
    if (len(values) != count) if count is not None else len(values) == 0:
        raise ValueError(f"{name} must {expected}, got {values!r}")
    for v in values:
        check_positive_int(name, v)
    return values
