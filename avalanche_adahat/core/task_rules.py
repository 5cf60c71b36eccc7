"""The names of the task-inference rules (implemented in :mod:`avalanche_adahat.inference`),
so that configurations can check them without importing the rules."""

__all__ = ["DEFAULT_RULE", "FEATURE_RULES", "LOGIT_RULES", "RULES"]

#: Rules that score each task from its head's logits (calibration applies to these).
LOGIT_RULES = ("msp", "entropy", "energy", "oneshot")
#: Rules that score each task from statistics of its frozen network's features.
FEATURE_RULES = ("lda_cascade", "mahalanobis")
RULES = LOGIT_RULES + FEATURE_RULES
#: The rule used when ``task_ids="per_experience"`` names none: the best on
#: class-incremental Split Fashion-MNIST, 3 seeds, three class orders
#: (docs/CLASS_INCREMENTAL.md).
DEFAULT_RULE = "lda_cascade"
