"""Task-agnostic inference: which trained task a test sample belongs to
(docs/ALGORITHM.md §10, docs/CLASS_INCREMENTAL.md).

- :mod:`.router`: the rules' common path (:func:`~.router.infer`), the logit rules
  and :class:`~.router.TaskRouter`, which a model's eval-mode forward calls;
- :mod:`.features`: the features of a task's masked network, and the update of
  its statistics (:class:`~avalanche_adahat.nn.statistics.FeatureStatistics`)
  at a task's end;
- :mod:`.rules`: the feature rules ``lda_cascade`` and ``mahalanobis``, and the
  input space's task posterior.
"""

from ..core.task_rules import DEFAULT_RULE, FEATURE_RULES, LOGIT_RULES, RULES
from ..nn.statistics import FeatureStatistics, SpaceModel, oas_shrinkage
from .features import INPUT_SPACE, forward_with_features, update_statistics
from .router import TaskRouter, infer, set_task_inference
from .rules import chi2_log_sf, input_log_posteriors, lda_cascade_scores, mahalanobis_scores

__all__ = [
    "DEFAULT_RULE",
    "FEATURE_RULES",
    "INPUT_SPACE",
    "LOGIT_RULES",
    "RULES",
    "FeatureStatistics",
    "SpaceModel",
    "TaskRouter",
    "chi2_log_sf",
    "forward_with_features",
    "infer",
    "input_log_posteriors",
    "lda_cascade_scores",
    "mahalanobis_scores",
    "oas_shrinkage",
    "set_task_inference",
    "update_statistics",
]
