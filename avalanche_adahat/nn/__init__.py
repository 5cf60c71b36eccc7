"""HAT's building blocks on top of :mod:`avalanche_adahat.core`: the masks
(:mod:`.mask`), the masked layers (:mod:`.layers`), the backbone base class
:class:`~.module.HATModule` and the feature statistics it keeps (:mod:`.statistics`)."""

from .layers import HAT_LAYERS, HATConv2d, HATLayer, HATLinear, apply_gate, hat_chain
from .mask import CoveredParameter, HATMask, gate_units, init_embedding
from .module import HATModule
from .statistics import FeatureStatistics, SpaceModel

__all__ = [
    "HAT_LAYERS",
    "CoveredParameter",
    "FeatureStatistics",
    "HATConv2d",
    "HATLayer",
    "HATLinear",
    "HATMask",
    "HATModule",
    "SpaceModel",
    "apply_gate",
    "gate_units",
    "hat_chain",
    "init_embedding",
]
