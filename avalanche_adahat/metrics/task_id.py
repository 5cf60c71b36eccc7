"""Task-id prediction accuracy: an Avalanche metric beside accuracy.

With task-agnostic inference (``task_inference=...``, see
:mod:`avalanche_adahat.inference.router`) the backbone records the task it
predicted for every evaluation sample; the true task of a sample is the trained
task whose head holds its class. ``TaskIdAcc_Exp`` / ``TaskIdAcc_Stream`` is the
fraction predicted right, per evaluation experience / over the stream::

    EvaluationPlugin(accuracy_metrics(stream=True), task_id_accuracy_metrics(), ...)
"""

from __future__ import annotations

import torch
from avalanche.evaluation import GenericPluginMetric
from avalanche.evaluation.metrics import Accuracy

from ..inference.router import task_classes
from ..nn.module import HATModule

__all__ = ["TaskIdAccuracy", "task_id_accuracy_metrics", "true_tasks"]


def true_tasks(model: HATModule, targets: torch.Tensor) -> torch.Tensor:
    """The trained task whose head holds each target class (-1 for a class no head holds)."""
    tasks = model.trained_tasks()
    active = task_classes(model, tasks, max(model.max_class_label, int(targets.max()) + 1))
    owner = torch.full((active.shape[1],), -1, dtype=torch.long, device=active.device)
    for t, row in zip(tasks, active):
        owner[row] = t
    return owner[targets.to(owner.device)]


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
        predicted = getattr(model, "last_inferred_tasks", None)
        if predicted is None:
            return  # no task inference in this evaluation
        self._metric.update(predicted, true_tasks(model, strategy.mb_y).to(predicted.device))

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
