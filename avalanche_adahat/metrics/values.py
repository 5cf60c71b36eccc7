"""Plain functions behind the HAT metrics and plots: mask usage, capacity curves, accuracy matrix.

They read a HAT backbone's masks (:func:`layer_names`, :func:`mask_usage`) or
values already recorded by Avalanche (:func:`capacity_curve` over
``get_all_metrics()``, :func:`accuracy_matrix` over ``strategy.eval`` results)
and need no strategy or plugin; the ``PluginMetric`` classes that emit values
during training are in :mod:`avalanche_adahat.metrics`, which re-exports these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import torch

from ..nn.module import HATModule

__all__ = ["accuracy_matrix", "capacity_curve", "layer_names", "mask_usage"]


# ---------------------------------------------------------------- masks
def layer_names(model: HATModule) -> list[str]:
    """Qualified names of the backbone's HAT masks, in forward order (e.g. ``masks.0``)."""
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(m)] for m in model.hat_masks()]


@torch.no_grad()
def mask_usage(model: HATModule, task_label: int) -> dict[str, dict[str, float]]:
    """Unit usage after task ``task_label`` was stored.

    Returns ``{"task": ..., "cumulative": ..., "free": ...}``, each a dict from
    layer name (see :func:`layer_names`) to a fraction of the layer's units, plus
    the key ``""`` for all layers together (units counted over all layers):
    ``task`` uses ``M^t``, ``cumulative`` the union over all stored tasks,
    ``free`` is ``1 - cumulative``.
    """
    masks = model.hat_masks()
    if not masks[0].is_stored(task_label):
        raise ValueError(
            f"task {task_label} has no stored mask (stored tasks: {model.trained_tasks()})"
        )
    sums = torch.stack(
        [torch.stack([m.stored_mask(task_label).sum(), m.cumulative.sum()]) for m in masks]
    ).tolist()
    sizes = [m.num_units for m in masks]
    total = sum(sizes)
    names = ["", *layer_names(model)]
    task = [sum(s[0] for s in sums) / total] + [s[0] / n for s, n in zip(sums, sizes)]
    used = [sum(s[1] for s in sums) / total] + [s[1] / n for s, n in zip(sums, sizes)]
    return {
        "task": dict(zip(names, task)),
        "cumulative": dict(zip(names, used)),
        "free": {k: 1.0 - v for k, v in zip(names, used)},
    }


# ---------------------------------------------------------------- reading results
_TASK = re.compile(r"/Task(\d+)(?:/|$)")


def capacity_curve(
    all_metrics: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    metric: str = "NetworkCapacity_MB",
) -> tuple[list[int], list[float], list[int], list[int]]:
    """Join the per-task curves of ``metric`` recorded by ``get_all_metrics()``.

    Returns ``(iterations, values, task_starts, task_labels)``: all points sorted
    by iteration, the iteration where each task's first point is, and the task
    labels in training order. Works for any ``*_MB`` / ``*_Epoch`` metric whose
    name has no layer part (e.g. ``NetworkCapacity_Epoch``).
    """
    points: list[tuple[int, float, int]] = []
    for name, (xs, ys) in all_metrics.items():
        if name.split("/", 1)[0] != metric or "/train_phase/" not in name:
            continue
        match = _TASK.search(name)
        if match is None or not name.endswith(match.group(0).rstrip("/")):
            continue  # a per-layer value or an unexpected name
        label = int(match.group(1))
        points += [(int(x), float(y), label) for x, y in zip(xs, ys)]
    points.sort(key=lambda p: p[0])
    starts: list[int] = []
    labels: list[int] = []
    for x, _, label in points:
        if not labels or labels[-1] != label:
            starts.append(x)
            labels.append(label)
    return [p[0] for p in points], [p[1] for p in points], starts, labels


_ACC = re.compile(r"^Top1_Acc_Exp/eval_phase/[^/]+_stream/Task\d+/Exp(\d+)$")


def accuracy_matrix(
    eval_results: Sequence[Mapping[str, float]], num_experiences: int | None = None
) -> list[list[float]]:
    """Accuracy matrix from the dicts ``strategy.eval(test_stream)`` returned after each task.

    Row ``i`` is the evaluation after training experience ``i``, column ``j``
    the accuracy on test experience ``j`` (``Top1_Acc_Exp`` of
    ``accuracy_metrics(experience=True)``); ``nan`` where nothing was recorded.
    """
    rows = []
    for result in eval_results:
        row: dict[int, float] = {}
        for name, value in result.items():
            match = _ACC.match(name)
            if match:
                row[int(match.group(1))] = float(value)
        rows.append(row)
    n = num_experiences
    if n is None:
        n = 1 + max((j for row in rows for j in row), default=-1)
    return [[row.get(j, math.nan) for j in range(n)] for row in rows]
