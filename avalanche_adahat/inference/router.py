"""Task-agnostic inference: HAT and AdaHAT on class-incremental streams.

Class-incremental accuracy factors into within-task prediction, which HAT's
stored masks keep exact, and task-id prediction (Kim et al., NeurIPS 2022). At
evaluation every test sample is run through every trained task's stored mask and
head (one batched forward per task, not per sample); each task gets a confidence
score from its head's logits over its own classes; the most confident task is
picked and its logits are returned over all classes seen (the other classes at
:data:`MASKED_LOGIT`), so Avalanche's accuracy, forgetting and confusion metrics
work unchanged.

Each rule is a class (:class:`~.rule.TaskInferenceRule`, registered by name: the logit
rules in :mod:`.logit_rules`, the feature rules in :mod:`.rules`); :func:`infer` and
:class:`TaskRouter` take its name and dispatch through it.

Logit rules (:data:`~avalanche_adahat.core.task_rules.LOGIT_RULES`), each a function of one task's logits ``z`` over its classes:

- ``"msp"``: maximum softmax probability ``max softmax(z)`` (Hendrycks & Gimpel, 2017);
- ``"entropy"``: negative entropy ``-H(softmax(z))`` (SupSup's criterion, Wortsman
  et al., 2020, evaluated per task instead of through a mask superposition);
- ``"energy"``: ``logsumexp(z)``, the negative free energy (Liu et al., 2020);
- ``"oneshot"``: SupSup's one-shot rule (Wortsman et al., 2020, Sec. 3.2) on HAT's
  masks: every sample runs through the superposition ``sum_t a_t M^t`` of all
  stored masks (``a_t = 1/T``), every head reads the superposed features, and the
  task whose weight ``a_t`` lowers the entropy of the joint prediction over all
  classes the most is picked: the score is ``-dH/da_t``. One backward pass per
  batch; no data beyond the test batch.

Feature-statistics rules (:mod:`avalanche_adahat.inference`, :data:`~avalanche_adahat.core.task_rules.FEATURE_RULES`):
each trained task's masked network is frozen, so class statistics of its
features, gathered from the training data when tasks end (no sample kept), stay
valid; a sample's task follows from Gaussian models of those features:

- ``"lda_cascade"`` (the default): space ``j`` holds the classes of tasks
  ``j, j+1, ...`` (each task's data is passed through every earlier task's
  network when it ends); its linear discriminant gives the probability ``s_j``
  of task ``j`` against the later ones, and ``p_t = s_t ∏_{i<t} (1 - s_i)``;
  by default (``input_space``) ``p_t`` is multiplied by the task posterior of a
  linear discriminant on the raw inputs over every class seen;
- ``"mahalanobis"``: the chi-square log p-value of the distance to the nearest
  class of task ``j`` in its own space (no passes across tasks).

With ``calibrated=True`` each task's score is shifted by the mean of that score
on the task's own training data, measured once when the task finishes (no test
data and no stored samples are used), so that a task whose head is confident on
everything does not win every sample. (Dividing by the standard deviation as
well was tried and did worse: heads are near-saturated on their training data.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core import task_rules
from ..core.task_rules import DEFAULT_RULE
from .features import forward_with_features
from .heads import MASKED_LOGIT, task_classes, task_logits, widen
from .logit_rules import oneshot_scores
from .rule import LogitRule, ScoringBatch, TaskInferenceRule, get_rule, registry

__all__ = [
    "DEFAULT_RULE",
    "TaskRouter",
    "set_task_inference",
    "MASKED_LOGIT",
    "feature_scores",
    "infer",
    "score_statistics",
    "task_classes",
    "task_logits",
    "oneshot_scores",
    "task_scores",
]


def task_scores(logits: Tensor, active: Tensor, rule: str) -> Tensor:
    """Confidence of each task for each sample under logit rule ``rule`` (one scoring
    each task's own logits): ``logits`` ``(T, B, C)``, ``active`` ``(T, C)`` booleans
    (the classes of each task); returns ``(T, B)``."""
    found = get_rule(rule)
    if not isinstance(found, LogitRule):
        raise ValueError(f"task_scores takes a logit rule, got {rule!r}")
    return found.task_scores(logits, active)


def _forward_features(model, x: Tensor, tasks: list[int], width: int):
    """Every task's logits ``(T, B, width)`` and features: one forward pass per task."""
    logits, features = [], []
    for t in tasks:
        out, f = forward_with_features(model, x, t)
        logits.append(widen(out, width))
        features.append(f)
    return torch.stack(logits), features


def feature_scores(
    model, x: Tensor, tasks: list[int], width: int, rule: str, statistics, input_statistics=None
):
    """``(logits (T, B, width), scores (T, B))`` of a feature-statistics rule: one
    forward pass per task gives both its logits and its features. With
    ``input_statistics`` (read by ``lda_cascade`` only) the input space's task
    log-posterior is added to the cascade's."""
    found = get_rule(rule)
    logits, features = _forward_features(model, x, tasks, width)
    state = {"task_statistics": statistics, "input_statistics": input_statistics}
    batch = ScoringBatch(
        model, x, tasks, task_classes(model, tasks, width), logits, features, state
    )
    return logits, found.scores(batch)


def _route(model, x: Tensor, rule: TaskInferenceRule, calibration: Tensor | None, state):
    tasks = model.trained_tasks()
    if not tasks:
        raise ValueError("task inference needs at least one trained task")
    width = model.max_class_label
    active = task_classes(model, tasks, width)
    if rule.uses_features:
        logits, features = _forward_features(model, x, tasks, width)
    else:
        logits, features = task_logits(model, x, tasks, width), None
    scores = rule.scores(ScoringBatch(model, x, tasks, active, logits, features, state))
    if calibration is not None:
        scores = scores - calibration[:, None]
    choice = scores.argmax(dim=0)
    chosen = logits.gather(0, choice.view(1, -1, 1).expand(1, -1, width))[0]
    chosen = chosen.masked_fill(~active[choice], MASKED_LOGIT)
    labels = torch.tensor(tasks, device=choice.device)[choice]
    return chosen, labels


def infer(
    model,
    x: Tensor,
    rule: str,
    calibration: Tensor | None = None,
    statistics=None,
    input_statistics=None,
):
    """``(logits over all classes (B, C), predicted task label per sample (B,))``.

    ``calibration``: ``(T,)`` the mean of each task's score on its training data
    (subtracted), or ``None``; ``statistics``: the
    :class:`~avalanche_adahat.inference.FeatureStatistics` of a feature rule;
    ``input_statistics``: those of the input space, fused into ``lda_cascade``.
    """
    state = {"task_statistics": statistics, "input_statistics": input_statistics}
    return _route(model, x, get_rule(rule), calibration, state)


class TaskRouter:
    """Task-agnostic evaluation of a :class:`~avalanche_adahat.nn.module.HATModule`: set
    as its router (:meth:`~avalanche_adahat.nn.module.HATModule.set_router`), it makes
    the model's eval-mode forward predict each sample's task with ``rule`` and return
    logits over all classes seen (:func:`infer`), using the calibration (``calibrated``,
    logit rules) and the task-inference state the model holds that the rule reads
    (:attr:`~.rule.TaskInferenceRule.reads`). The logits of the classes
    outside the chosen task are :data:`MASKED_LOGIT`, so the predicted task is the one
    whose class scores highest (what the task-id metric reads); the router also keeps
    the last batch's predicted task labels in :attr:`last_tasks`."""

    def __init__(self, rule: str, calibrated: bool = False) -> None:
        if rule not in task_rules.RULES:
            raise ValueError(
                f"task_inference must be one of {task_rules.RULES} or None, got {rule!r}"
            )
        self.rule, self.calibrated = rule, calibrated
        self.last_tasks: Tensor | None = None  # the last batch's predicted task labels

    def __repr__(self) -> str:
        return f"TaskRouter({self.rule!r}, calibrated={self.calibrated})"

    def __call__(self, model, x: Tensor) -> Tensor:
        rule = get_rule(self.rule)
        calibration = None
        if self.calibrated:
            tasks = model.trained_tasks()
            calibration = torch.stack([model.task_calibration(t, self.rule) for t in tasks])
        logits, self.last_tasks = _route(model, x, rule, calibration, rule.state(model))
        return logits


def set_task_inference(model, rule: str | None, calibrated: bool = False) -> None:
    """In eval mode, make ``model`` predict each sample's task with ``rule`` (one of
    :data:`~avalanche_adahat.core.task_rules.RULES`) and return logits over all classes seen; ``None``: read task labels."""
    model.set_router(None if rule is None else TaskRouter(rule, calibrated))


@torch.no_grad()
def score_statistics(model, dataset, task_label: int, batch_size: int = 256) -> dict[str, Tensor]:
    """``{logit rule: mean score}`` of task ``task_label`` on its own training ``dataset``
    (eval mode, its stored mask): the calibration of :data:`~avalanche_adahat.core.task_rules.LOGIT_RULES`
    (:meth:`~.rule.LogitRule.own_scores`; ``oneshot`` compares tasks, so it has none: 0)."""
    rules = [r for r in registry().values() if isinstance(r, LogitRule)]  # LOGIT_RULES
    was_training = model.training
    model.eval()
    width = model.max_class_label
    active = task_classes(model, [task_label], width)
    device = active.device
    parts = []
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    for batch in loader:
        logits = task_logits(model, batch[0].to(device), [task_label], width)
        parts.append(torch.stack([r.own_scores(logits, active) for r in rules], dim=1))
    model.train(was_training)
    means = torch.cat(parts).mean(dim=0)
    return {rule.name: means[i] for i, rule in enumerate(rules)}
