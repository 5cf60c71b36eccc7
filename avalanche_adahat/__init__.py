"""HAT and AdaHAT for Avalanche.

- :class:`HAT`, :class:`AdaHAT`: ``SupervisedTemplate`` strategies;
- :class:`HATPlugin`, :class:`AdaHATPlugin`: the same as plugins for any strategy;
- :class:`HATConfig`, :class:`AdaHATConfig`: their hyperparameters, checked;
- :mod:`avalanche_adahat.models`: HAT backbones;
- :mod:`avalanche_adahat.core.functional`: the formulas, as pure tensor functions.

The names are imported when first used (``import avalanche_adahat`` alone loads
neither torch nor Avalanche, so ``avalanche-adahat --help`` answers at once);
using any of them also registers the optimizers' dill reducers that Avalanche's
checkpoints need (:mod:`avalanche_adahat.core.checkpointing`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0.dev0"

#: ``{public name: the module defining it}``.
_NAMES = {
    "AdaHAT": "training.strategies",
    "HAT": "training.strategies",
    "AdaHATPlugin": "training.plugin",
    "HATPlugin": "training.plugin",
    "AdaHATConfig": "core.config",
    "HATConfig": "core.config",
    "PAPER_ADAHAT": "core.config",
    "CoveredParameter": "nn.mask",
    "HATMask": "nn.mask",
    "HATModule": "nn.module",
}

__all__ = [
    "AdaHAT",
    "AdaHATConfig",
    "AdaHATPlugin",
    "CoveredParameter",
    "HAT",
    "HATConfig",
    "HATMask",
    "HATModule",
    "HATPlugin",
    "PAPER_ADAHAT",
    "__version__",
]


def _load_task_rules() -> None:
    importlib.import_module(".inference", __name__)


# The task-inference rules register themselves (in core.task_rules) when the inference
# layer is imported; core, which must not import it, calls this the first time it reads
# their names (so ``import avalanche_adahat.core.config`` alone checks names right).
# core.task_rules imports nothing heavy; ``core`` is dropped from this namespace again so
# that ``avalanche_adahat.core`` stays a lazy name (__getattr__ below).
importlib.import_module(".core.task_rules", __name__).set_loader(_load_task_rules)
globals().pop("core", None)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from .core.config import PAPER_ADAHAT, AdaHATConfig, HATConfig
    from .nn.mask import CoveredParameter, HATMask
    from .nn.module import HATModule
    from .training.plugin import AdaHATPlugin, HATPlugin
    from .training.strategies import HAT, AdaHAT


def __getattr__(name: str):
    """Import a public name, or a submodule (``avalanche_adahat.models``), when first used."""
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(".core.checkpointing", __name__)  # dill fix for save_checkpoint
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
