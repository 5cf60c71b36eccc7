"""HAT and AdaHAT for Avalanche.

- :class:`HAT`, :class:`AdaHAT`: ``SupervisedTemplate`` strategies;
- :class:`HATPlugin`, :class:`AdaHATPlugin`: the same as plugins for any strategy;
- :class:`HATConfig`, :class:`AdaHATConfig`: their hyperparameters, checked;
- :mod:`avalanche_adahat.models`: HAT backbones;
- :mod:`avalanche_adahat.functional`: the formulas, as pure tensor functions.
"""

from . import checkpointing as _checkpointing  # noqa: F401  (dill fix)
from .config import PAPER_ADAHAT, AdaHATConfig, HATConfig
from .masking import CoveredParameter, HATMask, HATModule
from .plugins import AdaHATPlugin, HATPlugin
from .strategies import HAT, AdaHAT

__version__ = "0.1.0.dev0"

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
