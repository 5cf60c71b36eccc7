"""The logit rules (:data:`~avalanche_adahat.core.task_rules.LOGIT_RULES`): each scores a
task from its head's logits ``z`` over its own classes (the formulas:
:mod:`.router`'s docstring, docs/ALGORITHM.md §10). One class each, registered when
defined (:mod:`.rule`); the order here is the order of ``LOGIT_RULES``."""

from __future__ import annotations

import torch
from torch import Tensor

from .heads import task_logits
from .rule import LogitRule, ScoringBatch

__all__ = ["Energy", "Entropy", "Msp", "OneShot", "oneshot_scores"]


def _own_classes(logits: Tensor, active: Tensor) -> Tensor:
    """``logits`` ``(T, B, C)`` at ``-inf`` outside each task's classes."""
    return logits.masked_fill(~active[:, None, :], float("-inf"))


class Msp(LogitRule):
    """``max softmax(z)``, the maximum softmax probability (Hendrycks & Gimpel, 2017)."""

    name = "msp"

    def task_scores(self, logits: Tensor, active: Tensor) -> Tensor:
        log_p = torch.log_softmax(_own_classes(logits, active), dim=-1)
        return log_p.max(dim=-1).values.exp()


class Entropy(LogitRule):
    """``-H(softmax(z))``, the negative entropy (SupSup's criterion, per task)."""

    name = "entropy"

    def task_scores(self, logits: Tensor, active: Tensor) -> Tensor:
        log_p = torch.log_softmax(_own_classes(logits, active), dim=-1)
        p = log_p.exp()
        return (p * log_p.masked_fill(~active[:, None, :], 0.0)).sum(dim=-1)


class Energy(LogitRule):
    """``logsumexp(z)``, the negative free energy (Liu et al., 2020)."""

    name = "energy"

    def task_scores(self, logits: Tensor, active: Tensor) -> Tensor:
        return torch.logsumexp(_own_classes(logits, active), dim=-1)


class OneShot(LogitRule):
    """SupSup's one-shot rule on HAT's masks (:func:`oneshot_scores`). It compares tasks,
    so a task has no score on its own data: its calibration is 0."""

    name = "oneshot"

    def scores(self, batch: ScoringBatch) -> Tensor:
        return oneshot_scores(batch.model, batch.x, batch.tasks, batch.active)

    def own_scores(self, logits: Tensor, active: Tensor) -> Tensor:
        return logits.new_zeros(logits.shape[1])


def oneshot_scores(model, x: Tensor, tasks: list[int], active: Tensor) -> Tensor:
    """``-dH/da_t`` at ``a = 1/T`` (SupSup's one-shot rule, see :mod:`.router`), ``(T, B)``."""
    width = active.shape[1]
    stored = [torch.stack([m.stored_mask(t) for t in tasks]) for m in model.hat_masks()]
    with torch.enable_grad():
        a = torch.full(
            (x.shape[0], len(tasks)), 1.0 / len(tasks), dtype=stored[0].dtype, device=x.device
        )
        a.requires_grad_(True)
        model.override_gates([a @ masks for masks in stored])  # (B, units) per layer
        try:
            logits = task_logits(model, x, tasks, width)  # every head on the same features
        finally:
            model.override_gates(None)
        # Joint prediction: each class's logit from the head of the task that owns it.
        owner = active.float().argmax(dim=0)
        joint = logits.gather(0, owner.view(1, 1, -1).expand(1, x.shape[0], -1))[0]
        joint = joint.masked_fill(~active.any(dim=0), float("-inf"))
        log_p = torch.log_softmax(joint, dim=-1)
        entropy = -(log_p.exp() * log_p.nan_to_num(neginf=0.0)).sum()
        (grad,) = torch.autograd.grad(entropy, a)
    return -grad.t()
