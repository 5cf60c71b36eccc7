"""Pictures of HAT/AdaHAT runs as PNG files: capacity curve, mask map, accuracy matrix.

Each ``plot_*`` function draws one figure, writes it as a PNG of exactly
``figsize[0] * dpi`` by ``figsize[1] * dpi`` pixels (width x height, rounded)
and returns the file's path; the matching ``*_figure`` function returns the
:class:`matplotlib.figure.Figure` instead (for a notebook, or for
``SummaryWriter.add_figure``). Figures are built with Matplotlib's object API
and rendered by Agg, so nothing touches pyplot's global state or backend.

The package is the one place of the library that draws: :mod:`.capacity`
(capacity curves and mask maps), :mod:`.accuracy` (accuracy matrices and bars)
and :mod:`._png` (writing the PNG, the ``plot_*`` writers); everything is
importable from ``avalanche_adahat.plots``.
"""

from .accuracy import (
    accuracy_bars_figure,
    accuracy_heatmap_figure,
    accuracy_matrix_figure,
    plot_accuracy_bars,
    plot_accuracy_heatmap,
    plot_accuracy_matrix,
)
from .capacity import (
    capacity_figure,
    mask_map_figure,
    mask_matrix,
    plot_capacity,
    plot_mask_map,
    plot_task_capacity,
    task_capacity_figure,
)

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
