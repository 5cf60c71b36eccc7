"""Task-id prediction accuracy: an Avalanche metric beside accuracy.

With task-agnostic inference (``task_inference=...``, see
:mod:`avalanche_adahat.inference.router`) the backbone returns logits over all
classes seen, those outside the task it chose at ``MASKED_LOGIT``: the predicted
task of a sample is the trained task whose head holds its highest-scoring class,
its true task the one whose head holds its class. ``TaskIdAcc_Exp`` /
``TaskIdAcc_Stream`` is the fraction predicted right, per evaluation experience /
over the stream::

    EvaluationPlugin(accuracy_metrics(stream=True), task_id_accuracy_metrics(), ...)
"""

from __future__ import annotations

import torch
from avalanche.evaluation import GenericPluginMetric
from avalanche.evaluation.metrics import Accuracy

from ..inference.router import task_classes
from ..nn.module import HATModule

__all__ = ["TaskIdAccuracy", "predicted_tasks", "task_id_accuracy_metrics", "true_tasks"]


def true_tasks(model: HATModule, targets: torch.Tensor) -> torch.Tensor:
    """The trained task whose head holds each target class (-1 for a class no head holds)."""
    owner = _owners(model, int(targets.max()) + 1)
    return owner[targets.to(owner.device)]


def predicted_tasks(model: HATModule, logits: torch.Tensor) -> torch.Tensor:
    """The trained task whose head holds each sample's highest-scoring class: the task
    the router chose (it returns every other class at ``MASKED_LOGIT``)."""
    owner = _owners(model, logits.shape[1])
    return owner[logits.argmax(dim=1).to(owner.device)]


def _owners(model: HATModule, width: int) -> torch.Tensor:
    """The task whose head holds each class (-1 where none does), for at least ``width``
    classes."""
    tasks = model.trained_tasks()
    active = task_classes(model, tasks, max(model.max_class_label, width))
    owner = torch.full((active.shape[1],), -1, dtype=torch.long, device=active.device)
    for t, row in zip(tasks, active):
        owner[row] = t
    return owner


class TaskIdAccuracy(GenericPluginMetric[float, Accuracy]):
    """Fraction of evaluation samples whose task the backbone predicted right."""

    def __init__(self, reset_at: str, emit_at: str, name: str):
        super().__init__(Accuracy(), reset_at=reset_at, emit_at=emit_at, mode="eval")
        self._name = name

    def reset(self) -> None:
        self._metric.reset()

    def result(self) -> float:
        return self._metric.result()

    def update(self, strategy) -> None:
        model = strategy.model
        if getattr(model, "router", None) is None:
            return  # no task inference in this evaluation
        logits, targets = strategy.mb_output, strategy.mb_y
        owner = _owners(model, max(logits.shape[1], int(targets.max()) + 1))  # once per batch
        predicted = owner[logits.argmax(dim=1).to(owner.device)]
        self._metric.update(predicted, owner[targets.to(owner.device)])

    def __str__(self) -> str:
        return self._name


def task_id_accuracy_metrics(*, experience: bool = True, stream: bool = True) -> list:
    """``TaskIdAcc_Exp`` and/or ``TaskIdAcc_Stream``."""
    metrics = []
    if experience:
        metrics.append(TaskIdAccuracy("experience", "experience", "TaskIdAcc_Exp"))
    if stream:
        metrics.append(TaskIdAccuracy("stream", "stream", "TaskIdAcc_Stream"))
    return metrics
