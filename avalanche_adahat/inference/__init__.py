"""Task inference from feature statistics of HAT's frozen task networks.

- :mod:`.statistics`: the per-space streaming sums and their Gaussian models;
- :mod:`.features`: the features of a task's masked network, and the update of
  the statistics at a task's end;
- :mod:`.rules`: the rules ``lda_cascade`` and ``mahalanobis``.
"""

from .features import forward_with_features, update_statistics
from .rules import chi2_log_sf, lda_cascade_scores, mahalanobis_scores
from .statistics import FeatureStatistics, SpaceModel, oas_shrinkage

__all__ = [
    "FeatureStatistics",
    "SpaceModel",
    "chi2_log_sf",
    "forward_with_features",
    "lda_cascade_scores",
    "mahalanobis_scores",
    "oas_shrinkage",
    "update_statistics",
]
