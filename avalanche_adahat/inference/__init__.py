"""Task-agnostic inference: which trained task a test sample belongs to
(docs/ALGORITHM.md §10, docs/CLASS_INCREMENTAL.md).

- :mod:`.rule`: a rule as a class (:class:`~.rule.TaskInferenceRule`, a
  :class:`~.rule.LogitRule` or a :class:`~.rule.FeatureRule`), registered by name when
  defined; :data:`RULES` and its parts list the registered names;
- :mod:`.logit_rules`: ``msp``, ``entropy``, ``energy`` and ``oneshot``;
- :mod:`.rules`: the feature rules ``lda_cascade`` and ``mahalanobis``, their formulas
  and the input space's task posterior;
- :mod:`.router`: the rules' common path (:func:`~.router.infer`) and
  :class:`~.router.TaskRouter`, which a model's eval-mode forward calls;
- :mod:`.heads`: each task's classes and logits;
- :mod:`.features`: the features of a task's masked network, and the update of
  its statistics (:class:`~avalanche_adahat.nn.statistics.FeatureStatistics`)
  at a task's end.
"""

from typing import TYPE_CHECKING

from ..core import task_rules as _task_rules
from ..core.task_rules import DEFAULT_RULE
from ..nn.statistics import FeatureStatistics, SpaceModel, oas_shrinkage
from .features import INPUT_SPACE, forward_with_features, update_statistics
from .logit_rules import Energy, Entropy, Msp, OneShot
from .router import TaskRouter, infer, set_task_inference
from .rule import FeatureRule, LogitRule, ScoringBatch, TaskInferenceRule, get_rule, registry
from .rules import (
    LdaCascade,
    Mahalanobis,
    chi2_log_sf,
    input_log_posteriors,
    lda_cascade_scores,
    mahalanobis_scores,
)

if TYPE_CHECKING:  # at run time, computed when read (__getattr__ below)
    from ..core.task_rules import FEATURE_RULES, LOGIT_RULES, RULES

__all__ = [
    "DEFAULT_RULE",
    "FEATURE_RULES",
    "INPUT_SPACE",
    "LOGIT_RULES",
    "RULES",
    "Energy",
    "Entropy",
    "FeatureRule",
    "FeatureStatistics",
    "LdaCascade",
    "LogitRule",
    "Mahalanobis",
    "Msp",
    "OneShot",
    "ScoringBatch",
    "SpaceModel",
    "TaskInferenceRule",
    "TaskRouter",
    "chi2_log_sf",
    "forward_with_features",
    "get_rule",
    "infer",
    "input_log_posteriors",
    "lda_cascade_scores",
    "mahalanobis_scores",
    "oas_shrinkage",
    "registry",
    "set_task_inference",
    "update_statistics",
]


def __getattr__(name: str) -> tuple[str, ...]:
    """:data:`RULES`, :data:`LOGIT_RULES`, :data:`FEATURE_RULES`: the registered rules'
    names (:mod:`avalanche_adahat.core.task_rules`), read when asked for."""
    if name in ("RULES", "LOGIT_RULES", "FEATURE_RULES"):
        return getattr(_task_rules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
