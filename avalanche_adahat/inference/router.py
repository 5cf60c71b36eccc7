"""Task-agnostic inference: HAT and AdaHAT on class-incremental streams.

Class-incremental accuracy factors into within-task prediction, which HAT's
stored masks keep exact, and task-id prediction (Kim et al., NeurIPS 2022). At
evaluation every test sample is run through every trained task's stored mask and
head (one batched forward per task, not per sample); each task gets a confidence
score from its head's logits over its own classes; the most confident task is
picked and its logits are returned over all classes seen (the other classes at
:data:`MASKED_LOGIT`), so Avalanche's accuracy, forgetting and confusion metrics
work unchanged.

Rules (:data:`RULES`), each a function of one task's logits ``z`` over its classes:

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

Feature-statistics rules (:mod:`avalanche_adahat.inference`, :data:`FEATURE_RULES`):
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
from avalanche.models import MultiHeadClassifier
from torch import Tensor

from ..core.task_rules import DEFAULT_RULE, FEATURE_RULES, LOGIT_RULES, RULES
from .features import INPUT_SPACE, forward_with_features
from .rules import input_log_posteriors, lda_cascade_scores, mahalanobis_scores

__all__ = [
    "DEFAULT_RULE",
    "TaskRouter",
    "set_task_inference",
    "FEATURE_RULES",
    "LOGIT_RULES",
    "MASKED_LOGIT",
    "RULES",
    "feature_scores",
    "infer",
    "score_statistics",
    "task_classes",
    "task_logits",
    "oneshot_scores",
    "task_scores",
]

#: Logit of the classes outside the chosen task (finite, so a loss metric stays finite).
MASKED_LOGIT = -1e4


def task_scores(logits: Tensor, active: Tensor, rule: str) -> Tensor:
    """Confidence of each task for each sample: ``logits`` ``(T, B, C)``, ``active``
    ``(T, C)`` booleans (the classes of each task); returns ``(T, B)``."""
    z = logits.masked_fill(~active[:, None, :], float("-inf"))
    if rule == "energy":
        return torch.logsumexp(z, dim=-1)
    log_p = torch.log_softmax(z, dim=-1)
    if rule == "msp":
        return log_p.max(dim=-1).values.exp()
    if rule == "entropy":
        p = log_p.exp()
        return (p * log_p.masked_fill(~active[:, None, :], 0.0)).sum(dim=-1)
    raise ValueError(f"task inference rule must be one of {RULES}, got {rule!r}")


def oneshot_scores(model, x: Tensor, tasks: list[int], active: Tensor) -> Tensor:
    """``-dH/da_t`` at ``a = 1/T`` (SupSup's one-shot rule, see the module docstring), ``(T, B)``."""
    width = active.shape[1]
    stored = [torch.stack([m.stored_mask(t) for t in tasks]) for m in model.hat_masks()]
    with torch.enable_grad():
        a = torch.full(
            (x.shape[0], len(tasks)), 1.0 / len(tasks), dtype=stored[0].dtype, device=x.device
        )
        a.requires_grad_(True)
        model.override_gates([a @ masks for masks in stored])  # (B, units) per layer
        try:
            logits = task_logits(model, x, tasks, width)  # every head on the same features
        finally:
            model.override_gates(None)
        # Joint prediction: each class's logit from the head of the task that owns it.
        owner = active.float().argmax(dim=0)
        joint = logits.gather(0, owner.view(1, 1, -1).expand(1, x.shape[0], -1))[0]
        joint = joint.masked_fill(~active.any(dim=0), float("-inf"))
        log_p = torch.log_softmax(joint, dim=-1)
        entropy = -(log_p.exp() * log_p.nan_to_num(neginf=0.0)).sum()
        (grad,) = torch.autograd.grad(entropy, a)
    return -grad.t()


def _multi_head(model) -> MultiHeadClassifier:
    heads = [m for m in model.modules() if isinstance(m, MultiHeadClassifier)]
    if len(heads) != 1:
        raise ValueError(
            "task inference needs a backbone with one MultiHeadClassifier (multi_head=True), "
            f"found {len(heads)}"
        )
    return heads[0]


def task_classes(model, tasks: list[int], width: int) -> Tensor:
    """``(T, width)`` booleans: the classes each task's head was trained on."""
    head = _multi_head(model)
    rows = []
    for t in tasks:
        units = getattr(head, f"active_units_T{t}").to(torch.bool)
        row = torch.zeros(width, dtype=torch.bool, device=units.device)
        row[: units.numel()] = units[:width]
        rows.append(row)
    return torch.stack(rows)


def _widen(logits: Tensor, width: int) -> Tensor:
    """One task's logits padded to ``width`` classes with :data:`MASKED_LOGIT`."""
    return torch.nn.functional.pad(logits, (0, width - logits.shape[1]), value=MASKED_LOGIT)


def task_logits(model, x: Tensor, tasks: list[int], width: int) -> Tensor:
    """Every task's logits on ``x`` through its stored mask and head, ``(T, B, width)``."""
    outs = []
    for t in tasks:
        outs.append(_widen(model.forward_single_task(x, t), width))
    return torch.stack(outs)


def feature_scores(
    model, x: Tensor, tasks: list[int], width: int, rule: str, statistics, input_statistics=None
):
    """``(logits (T, B, width), scores (T, B))`` of a feature-statistics rule: one
    forward pass per task gives both its logits and its features. With
    ``input_statistics`` (``lda_cascade`` only) the input space's task log-posterior
    is added to the cascade's."""
    logits, features = [], []
    for t in tasks:
        out, f = forward_with_features(model, x, t)
        logits.append(_widen(out, width))
        features.append(f)
    missing = [t for t in tasks if statistics is None or t not in statistics.spaces()]
    if missing:
        raise ValueError(
            f"task_inference={rule!r} needs the feature statistics of every trained task; "
            f"tasks {missing} have none (train them with this rule)"
        )
    models = [statistics.model(t) for t in tasks]
    if rule == "lda_cascade":
        for position, t in enumerate(tasks):
            later = set(tasks[position:])
            if not later <= statistics.owners(t):
                raise ValueError(
                    f"task_inference='lda_cascade' needs task {t}'s feature space to hold the "
                    f"data of tasks {sorted(later)}; it holds {sorted(statistics.owners(t))} "
                    "(the statistics were gathered for 'mahalanobis')"
                )
        scores = lda_cascade_scores(tasks, models, features)
        if input_statistics is not None:
            missing = set(tasks) - input_statistics.owners(INPUT_SPACE)
            if missing:
                raise ValueError(
                    f"the input space holds no data of tasks {sorted(missing)}; it must see "
                    "every trained task (gathered from the first task on)"
                )
            scores = scores + input_log_posteriors(tasks, input_statistics.model(INPUT_SPACE), x)
    else:
        scores = mahalanobis_scores(tasks, models, features)
    return torch.stack(logits), scores


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
    tasks = model.trained_tasks()
    if not tasks:
        raise ValueError("task inference needs at least one trained task")
    width = model.max_class_label
    active = task_classes(model, tasks, width)
    if rule in FEATURE_RULES:
        logits, scores = feature_scores(model, x, tasks, width, rule, statistics, input_statistics)
    else:
        logits = task_logits(model, x, tasks, width)
        if rule == "oneshot":
            scores = oneshot_scores(model, x, tasks, active)
        else:
            scores = task_scores(logits, active, rule)
    if calibration is not None:
        scores = scores - calibration[:, None]
    choice = scores.argmax(dim=0)
    chosen = logits.gather(0, choice.view(1, -1, 1).expand(1, -1, width))[0]
    chosen = chosen.masked_fill(~active[choice], MASKED_LOGIT)
    labels = torch.tensor(tasks, device=choice.device)[choice]
    return chosen, labels


class TaskRouter:
    """Task-agnostic evaluation of a :class:`~avalanche_adahat.nn.module.HATModule`: set
    as its router (:meth:`~avalanche_adahat.nn.module.HATModule.set_router`), it makes
    the model's eval-mode forward predict each sample's task with ``rule`` and return
    logits over all classes seen (:func:`infer`), using the calibration (``calibrated``,
    logit rules) and feature statistics the model holds. The logits of the classes
    outside the chosen task are :data:`MASKED_LOGIT`, so the predicted task is the one
    whose class scores highest (what the task-id metric reads); the router also keeps
    the last batch's predicted task labels in :attr:`last_tasks`."""

    def __init__(self, rule: str, calibrated: bool = False) -> None:
        if rule not in RULES:
            raise ValueError(f"task_inference must be one of {RULES} or None, got {rule!r}")
        self.rule, self.calibrated = rule, calibrated
        self.last_tasks: Tensor | None = None  # the last batch's predicted task labels

    def __repr__(self) -> str:
        return f"TaskRouter({self.rule!r}, calibrated={self.calibrated})"

    def __call__(self, model, x: Tensor) -> Tensor:
        calibration = None
        if self.calibrated:
            tasks = model.trained_tasks()
            calibration = torch.stack([model.task_calibration(t, self.rule) for t in tasks])
        features = self.rule in FEATURE_RULES
        statistics = getattr(model, "task_statistics", None) if features else None
        fused = getattr(model, "input_statistics", None) if self.rule == "lda_cascade" else None
        logits, self.last_tasks = infer(model, x, self.rule, calibration, statistics, fused)
        return logits


def set_task_inference(model, rule: str | None, calibrated: bool = False) -> None:
    """In eval mode, make ``model`` predict each sample's task with ``rule`` (one of
    :data:`RULES`) and return logits over all classes seen; ``None``: read task labels."""
    model.set_router(None if rule is None else TaskRouter(rule, calibrated))


def _own_score(logits: Tensor, active: Tensor, rule: str) -> Tensor:
    """A task's score on its own data; ``oneshot`` compares tasks, so it has none (0)."""
    if rule == "oneshot":
        return logits.new_zeros(logits.shape[1])
    return task_scores(logits, active, rule)[0]


@torch.no_grad()
def score_statistics(model, dataset, task_label: int, batch_size: int = 256) -> dict[str, Tensor]:
    """``{logit rule: mean score}`` of task ``task_label`` on its own training ``dataset``
    (eval mode, its stored mask): the calibration of :data:`LOGIT_RULES`."""
    was_training = model.training
    model.eval()
    width = model.max_class_label
    active = task_classes(model, [task_label], width)
    device = active.device
    parts = []
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    for batch in loader:
        logits = task_logits(model, batch[0].to(device), [task_label], width)
        parts.append(torch.stack([_own_score(logits, active, r) for r in LOGIT_RULES], dim=1))
    model.train(was_training)
    means = torch.cat(parts).mean(dim=0)
    return {rule: means[i] for i, rule in enumerate(LOGIT_RULES)}
