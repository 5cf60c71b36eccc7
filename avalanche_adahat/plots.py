"""Pictures of HAT/AdaHAT runs as PNG files: capacity curve, mask map, accuracy matrix.

Each ``plot_*`` function draws one figure, writes it as a PNG of exactly
``figsize[0] * dpi`` by ``figsize[1] * dpi`` pixels (width x height, rounded)
and returns the file's path; the matching ``*_figure`` function returns the
:class:`matplotlib.figure.Figure` instead (for a notebook, or for
``SummaryWriter.add_figure``). Figures are built with Matplotlib's object API
and rendered by Agg, so nothing touches pyplot's global state or backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .masking import HATModule
from .metrics import capacity_curve, layer_names

__all__ = [
    "accuracy_bars_figure",
    "accuracy_heatmap_figure",
    "accuracy_matrix_figure",
    "capacity_figure",
    "mask_map_figure",
    "mask_matrix",
    "plot_accuracy_bars",
    "plot_accuracy_heatmap",
    "plot_accuracy_matrix",
    "plot_capacity",
    "plot_mask_map",
    "plot_task_capacity",
    "task_capacity_figure",
]

Size = tuple[float, float]


def _save(fig: Figure, path: str | Path, dpi: float | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No bbox_inches="tight": the PNG keeps the figsize * dpi pixel size.
    fig.savefig(path, format="png", dpi=dpi or fig.dpi)
    return path


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


def plot_capacity(
    capacity,
    path: str | Path,
    task_starts: Sequence[int] | None = None,
    *,
    iterations: Sequence[int] | None = None,
    task_labels: Sequence[int] | None = None,
    title: str = "Network capacity",
    xlabel: str = "training iteration",
    figsize: Size = (6.4, 4.0),
    dpi: int = 100,
) -> Path:
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
    """
    fig = capacity_figure(
        capacity,
        task_starts,
        iterations=iterations,
        task_labels=task_labels,
        title=title,
        xlabel=xlabel,
        figsize=figsize,
        dpi=dpi,
    )
    return _save(fig, path)


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


def plot_mask_map(
    model: HATModule,
    path: str | Path,
    layer: int | str = 0,
    *,
    tasks: Sequence[int] | None = None,
    title: str | None = None,
    figsize: Size = (6.4, 3.0),
    dpi: int = 100,
) -> Path:
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
    """
    fig = mask_map_figure(model, layer, tasks=tasks, title=title, figsize=figsize, dpi=dpi)
    return _save(fig, path)


_TASK_COLOURS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip


# ---------------------------------------------------------------- accuracy matrix
def accuracy_matrix_figure(
    matrix: Sequence[Sequence[float]],
    *,
    labels: Sequence[str] | None = None,
    title: str = "Accuracy on task j after training task i",
    fmt: str = ".2f",
    figsize: Size = (5.0, 4.5),
    dpi: int = 100,
) -> Figure:
    """The annotated accuracy heatmap; see :func:`plot_accuracy_matrix`."""
    data = np.array([[math.nan if v is None else float(v) for v in row] for row in matrix])
    if data.ndim != 2 or data.size == 0:
        raise ValueError("matrix must be a non-empty list of rows of equal length")
    n_rows, n_cols = data.shape
    if labels is None:
        labels = [str(k) for k in range(max(n_rows, n_cols))]
    if len(labels) < max(n_rows, n_cols):
        raise ValueError(f"labels has {len(labels)} names for a {n_rows}x{n_cols} matrix")
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    for i in range(n_rows):
        for j in range(n_cols):
            if math.isfinite(data[i, j]):
                ax.text(
                    j,
                    i,
                    format(data[i, j], fmt),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if data[i, j] > 0.6 else "white",
                )
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(labels[:n_cols])
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(labels[:n_rows])
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task i")
    ax.set_title(title, fontsize=10)
    return fig


def plot_accuracy_matrix(
    matrix: Sequence[Sequence[float]],
    path: str | Path,
    labels: Sequence[str] | None = None,
    *,
    title: str = "Accuracy on task j after training task i",
    fmt: str = ".2f",
    figsize: Size = (5.0, 4.5),
    dpi: int = 100,
) -> Path:
    """Write the accuracy matrix as an annotated heatmap PNG.

    :param matrix: list of rows: ``matrix[i][j]`` is the accuracy (in [0, 1])
        on task ``j`` after training task ``i``; ``nan`` or ``None`` for cells
        not evaluated (left blank). See
        :func:`avalanche_adahat.metrics.accuracy_matrix` to build it from
        ``strategy.eval`` results.
    :param path: the PNG file to write.
    :param labels: task names for both axes (default ``0, 1, ...``).
    :param fmt: format of the annotations.
    :param figsize: inches ``(width, height)``; the PNG is ``figsize * dpi`` pixels.
    :param dpi: dots per inch.
    :return: ``Path(path)``.
    """
    fig = accuracy_matrix_figure(
        matrix, labels=labels, title=title, fmt=fmt, figsize=figsize, dpi=dpi
    )
    return _save(fig, path)


# ---------------------------------------------------------------- compare's figures
# Laid out at Matplotlib's default dpi and written at ``dpi`` (120), as ``compare``
# always drew them: the PNG is ``figsize * dpi`` pixels, the figure size grows with
# the number of bars or tasks.
def accuracy_bars_figure(
    means: Mapping[str, float],
    stds: Mapping[str, float | None] | None = None,
    *,
    title: str = "",
    ylabel: str = "average accuracy (last row)",
) -> Figure:
    """One bar per run (e.g. strategy) with its spread; see :func:`plot_accuracy_bars`."""
    names = list(means)
    errors = [(stds or {}).get(k) or 0.0 for k in names]
    fig = Figure(figsize=(max(4.0, 0.8 * len(names) + 1.5), 3.5))
    ax = fig.add_subplot()
    ax.bar(names, [means[k] for k in names], yerr=errors, capsize=4, color="tab:blue")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def plot_accuracy_bars(
    means: Mapping[str, float],
    path: str | Path,
    stds: Mapping[str, float | None] | None = None,
    *,
    title: str = "",
    dpi: int = 120,
) -> Path:
    """Write a bar per run, ``means[name]`` high with error bar ``stds[name]``, as a PNG.

    The width grows with the number of bars (0.8 inch each); ``None`` spreads
    are drawn as none. Returns ``Path(path)``.
    """
    return _save(accuracy_bars_figure(means, stds, title=title), path, dpi)


def task_capacity_figure(
    curves: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "task (capacity at its first training step)",
) -> Figure:
    """One marked point per task and curve; see :func:`plot_task_capacity`."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("network capacity")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_task_capacity(
    curves: Mapping[str, Sequence[float]], path: str | Path, *, dpi: int = 120
) -> Path:
    """Write network capacity per task (x = 1, 2, ...), a curve per label, as a PNG.

    For values recorded once per task (``compare``'s ``capacity_start``); for
    a curve over training iterations see :func:`plot_capacity`.
    Returns ``Path(path)``.
    """
    return _save(task_capacity_figure(curves), path, dpi)


def accuracy_heatmap_figure(
    matrix: Sequence[Sequence[float | None]], *, title: str = "accuracy matrix"
) -> Figure:
    """The accuracy matrix of many tasks, unannotated; see :func:`plot_accuracy_heatmap`."""
    n = len(matrix)
    data = [[math.nan if v is None else v for v in row] for row in matrix]
    fig = Figure(figsize=(min(12, 1 + 0.5 * n), min(10, 0.8 + 0.45 * n)))
    ax = fig.add_subplot()
    image = ax.imshow(data, vmin=0, vmax=1, cmap="viridis")
    ax.set_xlabel("test task")
    ax.set_ylabel("after training task")
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def plot_accuracy_heatmap(
    matrix: Sequence[Sequence[float | None]],
    path: str | Path,
    *,
    title: str = "accuracy matrix",
    dpi: int = 120,
) -> Path:
    """Write the accuracy matrix as a heatmap PNG without cell annotations.

    For more tasks than :func:`plot_accuracy_matrix` can label (its text would
    overlap): the figure grows with the number of tasks up to 12 x 10 inches;
    ``None`` and ``nan`` cells are left blank. Returns ``Path(path)``.
    """
    return _save(accuracy_heatmap_figure(matrix, title=title), path, dpi)
