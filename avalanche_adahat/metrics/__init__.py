"""Metrics of HAT and AdaHAT: Avalanche plugin metrics (:mod:`.plugin_metrics`), the
task-id accuracy of task-agnostic evaluation (:mod:`.task_id`) and the plain values
they are made from (:mod:`.values`)."""

from .plugin_metrics import (
    AdjustmentRate,
    MaskUsage,
    NetworkCapacity,
    NetworkSparsity,
    adjustment_rate_metrics,
    hat_metrics,
    layer_adjustment_rates,
    mask_usage_metrics,
    network_capacity_metrics,
    network_sparsity_metrics,
)
from .task_id import TaskIdAccuracy, task_id_accuracy_metrics, true_tasks
from .values import accuracy_matrix, capacity_curve, layer_names, mask_usage

__all__ = [
    "AdjustmentRate",
    "MaskUsage",
    "NetworkCapacity",
    "NetworkSparsity",
    "TaskIdAccuracy",
    "accuracy_matrix",
    "adjustment_rate_metrics",
    "capacity_curve",
    "hat_metrics",
    "layer_adjustment_rates",
    "layer_names",
    "mask_usage",
    "mask_usage_metrics",
    "network_capacity_metrics",
    "network_sparsity_metrics",
    "task_id_accuracy_metrics",
    "true_tasks",
]
