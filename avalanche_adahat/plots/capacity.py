"""Capacity and mask figures: the capacity curve, capacity per task and a layer's mask map.

How much of the network is still free to learn: the network capacity over
training iterations (:func:`plot_capacity`) or once per task
(:func:`plot_task_capacity`), and which task's stored mask uses which unit of
a layer (:func:`mask_matrix`, :func:`plot_mask_map`). Part of
:mod:`avalanche_adahat.plots` (sizes and rendering are described there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..metrics.values import capacity_curve, layer_names
from ..nn.module import HATModule
from ._png import Size, png_writer

__all__ = [
    "capacity_figure",
    "mask_map_figure",
    "mask_matrix",
    "plot_capacity",
    "plot_mask_map",
    "plot_task_capacity",
    "task_capacity_figure",
]


# ---------------------------------------------------------------- capacity
def capacity_figure(
    capacity,
    task_starts: Sequence[int] | None = None,
    *,
    iterations: Sequence[int] | None = None,
    task_labels: Sequence[int] | None = None,
    title: str = "Network capacity",
    xlabel: str = "training iteration",
    figsize: Size = (6.4, 4.0),
    dpi: int = 100,
) -> Figure:
    """The capacity curve over training iterations; see :func:`plot_capacity`."""
    curves = _capacity_curves(capacity, iterations)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    for label, (xs, ys, starts, labels) in curves.items():
        ax.plot(xs, ys, label=label or None, linewidth=1.2)
        if task_starts is None and starts:
            task_starts, task_labels = starts, task_labels or labels
    for k, start in enumerate(task_starts or []):
        if k > 0:
            ax.axvline(start, color="0.6", linestyle="--", linewidth=0.8)
        name = f"task {task_labels[k]}" if task_labels and k < len(task_labels) else f"task {k}"
        ax.annotate(
            name,
            (start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            va="top",
            fontsize=7,
            color="0.35",
        )
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean adjustment rate")
    ax.set_title(title)
    if any(curves):
        ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


plot_capacity = png_writer(
    capacity_figure,
    """Write the network-capacity curve over training iterations as a PNG.

    :param capacity: one of
        - a list of per-iteration values (x = ``iterations``, default 0, 1, ...);
        - the dict of ``strategy.evaluator.get_all_metrics()`` (its
          ``NetworkCapacity_MB`` curves are joined, and the task starts are read
          from their task labels unless ``task_starts`` is given);
        - a dict ``{curve label: list of values or get_all_metrics() dict}`` to
          draw several runs on one axis (e.g. HAT and AdaHAT).
    :param path: the PNG file to write (folders are created).
    :param task_starts: iteration index where each task starts (a dashed line
        is drawn at each but the first).
    :param iterations: x values of a plain list (same length).
    :param task_labels: names of the tasks for the boundary labels.
    :param xlabel: x-axis label (e.g. ``"task"`` for one value per task with
        ``iterations=range(n_tasks)``).
    :param figsize: inches ``(width, height)``; the PNG is ``figsize * dpi`` pixels.
    :param dpi: dots per inch.
    :return: ``Path(path)``.
    """,
)


def _is_metrics_dict(value) -> bool:
    return isinstance(value, Mapping) and any(
        isinstance(k, str) and k.startswith("NetworkCapacity_") for k in value
    )


def _capacity_curves(capacity, iterations):
    """``{label: (xs, ys, task_starts, task_labels)}``; label ``""`` for a single curve."""
    if isinstance(capacity, Mapping) and not _is_metrics_dict(capacity):
        curves = {}
        for label, value in capacity.items():
            curves.update({str(label): _capacity_curves(value, iterations)[""]})
        return curves
    if _is_metrics_dict(capacity):
        return {"": capacity_curve(capacity)}
    ys = [float(v) for v in capacity]
    xs = list(range(len(ys))) if iterations is None else [int(x) for x in iterations]
    if len(xs) != len(ys):
        raise ValueError(f"iterations has {len(xs)} values, capacity has {len(ys)}")
    return {"": (xs, ys, [], [])}


# ---------------------------------------------------------------- capacity per task
# Laid out at Matplotlib's default dpi and written at ``dpi`` (120), as ``compare``
# always drew it: the PNG is ``figsize * dpi`` pixels.
def task_capacity_figure(
    curves: Mapping[str, Sequence[float]],
    *,
    title: str = "",
    xlabel: str = "task (capacity at its first training step)",
) -> Figure:
    """One marked point per task and curve; see :func:`plot_task_capacity`."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ax.plot(range(len(curve)), curve, marker="o", markersize=3, label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("network capacity")
    ax.set_ylim(-0.02, 1.02)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


plot_task_capacity = png_writer(
    task_capacity_figure,
    """Write network capacity per task (x = task 0, 1, ..., numbered as in the accuracy
    matrices), a curve per label, as a PNG.

    For values recorded once per task (``compare``'s ``capacity_start``); for
    a curve over training iterations see :func:`plot_capacity`.
    Returns ``Path(path)``.
    """,
    hidden=("xlabel",),
    save_dpi=120,
)


# ---------------------------------------------------------------- mask map
@torch.no_grad()
def mask_matrix(
    model: HATModule, layer: int | str = 0, tasks: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, list[int], str]:
    """Stored masks of one layer as a tasks x units 0/1 matrix, units sorted.

    Units are ordered by the first task using them, then by which later tasks
    use them (the units the next task reuses first, and so on), then by index;
    units no task uses come last.
    Returns ``(matrix, unit_order, tasks, layer_name)``: ``matrix[k, u]`` is 1
    when ``tasks[k]`` uses unit ``unit_order[u]``.
    """
    masks = model.hat_masks()
    names = layer_names(model)
    if isinstance(layer, str):
        if layer not in names:
            raise ValueError(f"layer {layer!r} is not a HAT mask; masks: {names}")
        index = names.index(layer)
    else:
        if not -len(masks) <= layer < len(masks):
            raise ValueError(f"layer index {layer} out of range: the model has {len(masks)} masks")
        index = layer % len(masks)
    mask = masks[index]
    tasks = list(model.trained_tasks() if tasks is None else tasks)
    if not tasks:
        raise ValueError("no task has a stored mask yet: train at least one task first")
    matrix = torch.stack([(mask.stored_mask(t) > 0).float().cpu() for t in tasks]).numpy()
    used = matrix.any(axis=0)
    first = np.where(used, matrix.argmax(axis=0), len(tasks))
    keys = [np.arange(matrix.shape[1])] + [-row for row in matrix[::-1]] + [first]
    order = np.lexsort(keys)  # the last key sorts first
    return matrix[:, order], order, tasks, names[index]


def mask_map_figure(
    model: HATModule,
    layer: int | str = 0,
    *,
    tasks: Sequence[int] | None = None,
    title: str | None = None,
    figsize: Size = (6.4, 3.0),
    dpi: int = 100,
) -> Figure:
    """The tasks x units mask map of one layer; see :func:`plot_mask_map`."""
    matrix, _, tasks, name = mask_matrix(model, layer, tasks)
    n_tasks, n_units = matrix.shape
    colours = ["#ffffff"] + [_TASK_COLOURS[k % len(_TASK_COLOURS)] for k in range(n_tasks)]
    coded = matrix * (np.arange(n_tasks)[:, None] + 1)  # 0 free, k+1 used by row k
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(
        coded,
        aspect="auto",
        interpolation="nearest",
        cmap=ListedColormap(colours),
        vmin=-0.5,
        vmax=n_tasks + 0.5,
    )
    ax.set_yticks(range(n_tasks))
    ax.set_yticklabels([f"task {t} ({int(row.sum())})" for t, row in zip(tasks, matrix)])
    free = int((~matrix.any(axis=0)).sum())
    ax.set_xlabel(f"units, sorted by first task using them ({free} of {n_units} free)")
    ax.set_title(title or f"HAT masks of {name}")
    return fig


plot_mask_map = png_writer(
    mask_map_figure,
    """Write a tasks x units map of which task uses which unit of one layer as a PNG.

    A row per task (stored masks only), a column per unit of the layer, coloured
    where the task's stored mask ``M^t`` keeps the unit; the row label gives the
    task's number of units. Units are sorted by the first task using them (see
    :func:`mask_matrix`), so each task's new units form a block and reused units
    show as columns shared by several rows.

    :param model: a HAT backbone (e.g. ``HATMLP``) after training.
    :param path: the PNG file to write.
    :param layer: index of the mask in ``model.hat_masks()`` or its qualified
        name (e.g. ``"masks.0"``).
    :param tasks: task labels to show (default: all stored, in training order).
    :param figsize: inches ``(width, height)``; the PNG is ``figsize * dpi`` pixels.
    :param dpi: dots per inch.
    :return: ``Path(path)``.
    """,
)


_TASK_COLOURS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip
