"""Accuracy figures: the accuracy matrix, annotated or as a plain heatmap, and one bar per run.

What a run (or a comparison of runs) scored: the accuracy on each task after
training each task (:func:`plot_accuracy_matrix`, or
:func:`plot_accuracy_heatmap` for more tasks than it can label) and the
average accuracy of several runs side by side (:func:`plot_accuracy_bars`).
Part of :mod:`avalanche_adahat.plots` (sizes and rendering are described there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._png import Size, png_writer

__all__ = [
    "accuracy_bars_figure",
    "accuracy_heatmap_figure",
    "accuracy_matrix_figure",
    "plot_accuracy_bars",
    "plot_accuracy_heatmap",
    "plot_accuracy_matrix",
]


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


plot_accuracy_matrix = png_writer(
    accuracy_matrix_figure,
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
    """,
    positional=("labels",),
)


# ---------------------------------------------------------------- compare's figures
# Laid out at Matplotlib's default dpi and written at ``dpi`` (120), as ``compare``
# always drew them: the PNG is ``figsize * dpi`` pixels, the figure size grows with
# the number of bars or tasks.
def accuracy_bars_figure(
    means: Mapping[str, float],
    stds: Mapping[str, float | None] | None = None,
    *,
    seeds: Mapping[str, Sequence[float]] | None = None,
    title: str = "",
    ylabel: str = "average accuracy after the last task",
) -> Figure:
    """One column per run (e.g. strategy): its mean, labelled with its value, its seeds
    as dots and its spread; see :func:`plot_accuracy_bars`."""
    names = list(means)
    errors = [(stds or {}).get(k) or 0.0 for k in names]
    points = {k: [float(v) for v in (seeds or {}).get(k) or []] for k in names}
    fig = Figure(figsize=(max(4.0, 0.8 * len(names) + 1.5), 3.5))
    ax = fig.add_subplot()
    xs = np.arange(len(names))
    values = [means[k] for k in names]
    for x, k in zip(xs, names):
        if len(points[k]) > 1:  # the seeds, spread sideways so that equal values show
            offsets = np.linspace(-0.12, 0.12, len(points[k]))
            ax.plot(x + offsets, points[k], "o", color="0.55", markersize=3.5, zorder=2)
    ax.errorbar(xs, values, yerr=[e if e > 0 else 0.0 for e in errors], fmt="none",
                ecolor="tab:blue", capsize=5, zorder=3)  # fmt: skip
    ax.plot(xs, values, "D", color="tab:blue", markersize=6, zorder=4)
    low, high = _value_range(values, errors, points)
    for x, k, v, e in zip(xs, names, values, errors):
        label = f"{v:.4f}" + (f"\n± {e:.4f}" if e > 0 else "")
        ax.annotate(label, (x, max(v + e, *points[k], v)), xytext=(0, 4),
                    textcoords="offset points", ha="center", va="bottom", fontsize=7)  # fmt: skip
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(low, high)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def _value_range(values, errors, points) -> tuple[float, float]:
    """A y-range around the values (and spreads, seeds) that shows their differences,
    with room above for the labels, inside [0, 1] where the values are."""
    ends = [v - e for v, e in zip(values, errors)] + [v + e for v, e in zip(values, errors)]
    ends += [p for ps in points.values() for p in ps]
    low, high = min(ends), max(ends)
    span = max(high - low, 0.01)
    low, high = low - 0.15 * span, high + 0.45 * span  # the labels sit above
    if min(ends) >= 0.0:
        low = max(low, 0.0)
    if max(ends) <= 1.0:
        high = min(high, 1.05)
    return low, high


plot_accuracy_bars = png_writer(
    accuracy_bars_figure,
    """Write one column per run as a PNG: the mean ``means[name]`` (a diamond labelled
    with its value), the spread ``stds[name]`` (error bar, with its value) and, given
    ``seeds[name]``, every seed's value as a dot.

    The y-range is fitted to the values, so 0.9902 and 0.9905 are told apart; the
    width grows with the number of runs (0.8 inch each); a ``None`` or 0 spread is
    drawn as none. Returns ``Path(path)``.
    """,
    hidden=("ylabel",),
    save_dpi=120,
)


def accuracy_heatmap_figure(
    matrix: Sequence[Sequence[float | None]], *, title: str = "accuracy matrix"
) -> Figure:
    """The accuracy matrix of many tasks, unannotated; see :func:`plot_accuracy_heatmap`."""
    n = len(matrix)
    data = [[math.nan if v is None else v for v in row] for row in matrix]
    fig = Figure(figsize=(min(12, 1 + 0.5 * n), min(10, 0.8 + 0.45 * n)))
    ax = fig.add_subplot()
    image = ax.imshow(data, vmin=0, vmax=1, cmap="viridis")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task i")
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


plot_accuracy_heatmap = png_writer(
    accuracy_heatmap_figure,
    """Write the accuracy matrix as a heatmap PNG without cell annotations.

    For more tasks than :func:`plot_accuracy_matrix` can label (its text would
    overlap): the figure grows with the number of tasks up to 12 x 10 inches;
    ``None`` and ``nan`` cells are left blank. Returns ``Path(path)``.
    """,
    save_dpi=120,
)
