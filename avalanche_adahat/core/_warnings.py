"""Warnings attributed to the user's line, not to the Avalanche hook that raised them."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from types import FrameType

__all__ = ["warn_at_caller"]

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent) + os.sep  # avalanche_adahat/


def _library_dirs() -> tuple[str, ...]:
    dirs = [_PACKAGE_DIR]
    for name in ("avalanche", "torch"):
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None) if module is not None else None
        if path:
            dirs.append(str(Path(path).resolve().parent) + os.sep)
    return tuple(dirs)


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first frame outside this
    package, Avalanche and torch: the user's ``strategy.train(...)`` or
    ``strategy.eval(...)`` line (what Python 3.12's ``skip_file_prefixes`` does, on 3.10+)."""
    dirs = _library_dirs()
    frame: FrameType | None = sys._getframe(1)
    level = 2  # stacklevel 2: the caller of this function
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(dirs):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 2)
