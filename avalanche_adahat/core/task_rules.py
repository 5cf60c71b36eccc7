"""The task-inference rules' descriptions (name, kind), so that configurations can check
rule names without importing the rules.

The rules themselves are classes in :mod:`avalanche_adahat.inference`
(:class:`~avalanche_adahat.inference.rule.TaskInferenceRule`); each registers its
description here when its class is defined (inference imports core, never the reverse).
Core reads the registry through :func:`descriptions` and the tuples :data:`RULES`,
:data:`LOGIT_RULES` and :data:`FEATURE_RULES`, computed when read (module
``__getattr__``, PEP 562). Where core is imported before the inference layer (say
``import avalanche_adahat.core.config`` alone), the first read calls the loader the
package installed (:func:`set_loader`, from ``avalanche_adahat/__init__.py``), which
imports the inference layer and so fills the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

__all__ = [
    "DEFAULT_RULE",
    "FEATURE_RULES",
    "LOGIT_RULES",
    "RULES",
    "RuleDescription",
    "describe",
    "descriptions",
    "register_description",
    "set_loader",
]

#: The rule used when ``task_ids="per_experience"`` names none: the best on
#: class-incremental Split Fashion-MNIST, 3 seeds, three class orders
#: (docs/CLASS_INCREMENTAL.md).
DEFAULT_RULE = "lda_cascade"


@dataclass(frozen=True)
class RuleDescription:
    """What configurations and the plugin need to know of a rule: its ``name``, whether it
    scores each task from statistics of its frozen network's features (``uses_features``,
    the :data:`FEATURE_RULES`) or from its head's logits (the :data:`LOGIT_RULES`, to which
    calibration applies), and which statistics a feature rule needs gathered."""

    name: str
    uses_features: bool
    #: space ``j`` holds the data of tasks ``j, j+1, ...`` (each task's data pass
    #: through every earlier task's network when it ends), not only task ``j``'s
    cascade: bool = False
    #: it can fuse a discriminant on the raw inputs (``HATConfig.input_space``)
    fuses_input_space: bool = False

    @property
    def kind(self) -> str:
        return "feature" if self.uses_features else "logit"


_DESCRIPTIONS: dict[str, RuleDescription] = {}
_loader: Callable[[], object] | None = None

if TYPE_CHECKING:  # computed by __getattr__ below
    #: Rules that score each task from its head's logits (calibration applies to these).
    LOGIT_RULES: tuple[str, ...]
    #: Rules that score each task from statistics of its frozen network's features.
    FEATURE_RULES: tuple[str, ...]
    #: Every rule: the logit rules, then the feature rules, each in registration order.
    RULES: tuple[str, ...]


def register_description(description: RuleDescription) -> None:
    """Add a rule's description (called when its class is defined)."""
    if description.name in _DESCRIPTIONS:
        raise ValueError(f"task inference rule {description.name!r} is already registered")
    _DESCRIPTIONS[description.name] = description


def set_loader(loader: Callable[[], object] | None) -> None:
    """``loader()`` fills the registry (it imports the rules); called once, on the first read."""
    global _loader
    _loader = loader


def descriptions() -> Mapping[str, RuleDescription]:
    """``{name: description}`` of every registered rule, in registration order."""
    global _loader
    if _loader is not None:
        loader, _loader = _loader, None  # a read while the rules are imported sees those so far
        try:
            loader()
        except BaseException:
            _loader = loader
            raise
    return MappingProxyType(_DESCRIPTIONS)


def describe(rule: str) -> RuleDescription:
    """The description of the registered rule named ``rule``."""
    known = descriptions()
    if rule not in known:
        raise ValueError(f"task inference rule must be one of {tuple(known)}, got {rule!r}")
    return known[rule]


def _names(uses_features: bool) -> tuple[str, ...]:
    return tuple(n for n, d in descriptions().items() if d.uses_features == uses_features)


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "LOGIT_RULES":
        return _names(False)
    if name == "FEATURE_RULES":
        return _names(True)
    if name == "RULES":
        return _names(False) + _names(True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
