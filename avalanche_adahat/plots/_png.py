"""Writing a figure as a PNG, and making each ``plot_*`` writer from its ``*_figure`` function.

Every writer of :mod:`avalanche_adahat.plots` does the same: build the figure
with its ``*_figure`` function, write it with :func:`save_png`, return the
path. :func:`png_writer` makes such a writer once for all, with the figure
function's own parameters (``path`` second), so their lists are written once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["Size", "png_writer", "save_png"]

Size = tuple[float, float]

_POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
_KEYWORD = inspect.Parameter.KEYWORD_ONLY


def save_png(fig: Figure, path: str | Path, dpi: float | None = None) -> Path:
    """Write ``fig`` to ``path`` as a PNG at ``dpi`` (default: the figure's); folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No bbox_inches="tight": the PNG keeps the figsize * dpi pixel size.
    fig.savefig(path, format="png", dpi=dpi or fig.dpi)
    return path


def png_writer(
    figure: Callable[..., Figure],
    doc: str,
    *,
    positional: Sequence[str] = (),
    hidden: Sequence[str] = (),
    save_dpi: int | None = None,
) -> Callable[..., Path]:
    """``plot_X(first, path, ...)`` for ``X_figure(first, ...)``: draw, write the PNG, return its path.

    The writer takes the figure function's parameters, in their order and with
    their defaults, with ``path`` (the PNG file) inserted second, and passes on
    only the arguments given, so the figure function's defaults apply.

    :param figure: the ``*_figure`` function; the writer is named ``plot_*``.
    :param doc: the writer's docstring.
    :param positional: keyword-only parameters of ``figure`` that the writer
        takes by position too (after ``path`` and the figure's positional ones).
    :param hidden: parameters of ``figure`` that the writer does not take.
    :param save_dpi: for a figure laid out at Matplotlib's default dpi: the
        default of the keyword-only ``dpi`` that the writer adds and writes the
        PNG at. ``None``: the PNG is written at the figure's own ``dpi``.
    """
    first, *rest = inspect.signature(figure).parameters.values()
    if any(p.kind not in (_POSITIONAL, _KEYWORD) for p in (first, *rest)):
        raise TypeError(f"{figure.__name__}: only named parameters can be passed on")
    rest = [p for p in rest if p.name not in hidden]
    parameters = [
        first,
        inspect.Parameter("path", _POSITIONAL, annotation="str | Path"),
        *[p for p in rest if p.kind == _POSITIONAL],
        *[p.replace(kind=_POSITIONAL) for p in rest if p.name in positional],
        *[p for p in rest if p.kind == _KEYWORD and p.name not in positional],
    ]
    if save_dpi is not None:
        parameters.append(inspect.Parameter("dpi", _KEYWORD, default=save_dpi, annotation="int"))
    signature = inspect.Signature(parameters, return_annotation="Path")

    def write(*args, **kwargs) -> Path:
        try:
            arguments = signature.bind(*args, **kwargs).arguments
        except TypeError as e:  # named as Python names the function in its own message
            raise TypeError(f"{write.__name__}() {e}") from None
        path = arguments.pop("path")
        dpi = arguments.pop("dpi", save_dpi) if save_dpi is not None else None
        return save_png(figure(**arguments), path, dpi)

    write.__name__ = write.__qualname__ = "plot_" + figure.__name__.removesuffix("_figure")
    write.__module__ = figure.__module__
    write.__doc__ = doc
    write.__signature__ = signature  # type: ignore[attr-defined]
    return write
