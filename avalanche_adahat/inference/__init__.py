"""Task inference from feature statistics of HAT's frozen task networks.

- :mod:`.statistics`: the per-space streaming sums and their Gaussian models;
- :mod:`.features`: the features of a task's masked network, and the update of
  the statistics at a task's end;
- :mod:`.rules`: the rules ``lda_cascade`` and ``mahalanobis``, and the input
  space's task posterior.
"""

from .features import INPUT_SPACE, forward_with_features, update_statistics
from .rules import chi2_log_sf, input_log_posteriors, lda_cascade_scores, mahalanobis_scores
from .statistics import FeatureStatistics, SpaceModel, oas_shrinkage

__all__ = [
    "INPUT_SPACE",
    "FeatureStatistics",
    "SpaceModel",
    "chi2_log_sf",
    "forward_with_features",
    "input_log_posteriors",
    "lda_cascade_scores",
    "mahalanobis_scores",
    "oas_shrinkage",
    "update_statistics",
]
