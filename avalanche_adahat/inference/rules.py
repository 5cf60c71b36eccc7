"""Task-inference rules on feature statistics (docs/ALGORITHM.md §10.3): the feature
rules (:data:`~avalanche_adahat.core.task_rules.FEATURE_RULES`) as classes,
:class:`LdaCascade` and :class:`Mahalanobis` (registered when defined, :mod:`.rule`),
and their formulas as functions.

The functions take, for every trained task ``j`` in training order, the Gaussian model of
its feature space (:class:`~.statistics.SpaceModel`) and the test batch's
features in that space, and return a log-score ``(T, B)`` per task and sample;
the sample goes to the task of the highest score.

- :func:`lda_cascade_scores`: space ``j`` holds the classes of tasks ``j`` and
  later; its linear discriminant gives ``s_j``, the probability that a sample of
  "task ``j`` or later" belongs to task ``j``. Then
  ``p_t = s_t ∏_{i<t} (1 - s_i)`` (the last task's ``s`` is 1).
- :func:`input_log_posteriors`: the task posterior of one linear discriminant over
  every class seen, on the raw inputs; ``lda_cascade`` adds it to its log-scores
  (the product of the two routers' task posteriors, log-linear pooling).
- :func:`mahalanobis_scores`: the chi-square log p-value of the smallest squared
  Mahalanobis distance from the sample to a class of task ``j`` in space ``j``,
  with ``d_j`` degrees of freedom (the distribution of that distance for a
  Gaussian class with ``d_j`` features).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..nn.statistics import SpaceModel
from .features import INPUT_SPACE
from .rule import FeatureRule, ScoringBatch

__all__ = [
    "LdaCascade",
    "Mahalanobis",
    "chi2_log_sf",
    "input_log_posteriors",
    "lda_cascade_scores",
    "mahalanobis_scores",
]


def lda_cascade_scores(tasks: list[int], models: list[SpaceModel], features: list[Tensor]):
    """``log p_t = log s_t + Σ_{i<t} log(1 - s_i)``, ``(T, B)``, with
    ``s_j = Σ_{c ∈ task j} e^{g_c} / Σ_{c in space j} e^{g_c}`` (log-sum-exp throughout)."""
    scores = []
    rest = None  # Σ_{i<t} log(1 - s_i)
    for position, (task, model, f) in enumerate(zip(tasks, models, features)):
        g = model.discriminants(f.to(torch.float64))
        own = model.owners == task
        total = torch.logsumexp(g, dim=1)
        last = position == len(tasks) - 1
        log_s = torch.zeros_like(total) if last else torch.logsumexp(g[:, own], dim=1) - total
        scores.append(log_s if rest is None else rest + log_s)
        if not last:
            log_rest = torch.logsumexp(g[:, ~own], dim=1) - total
            rest = log_rest if rest is None else rest + log_rest
    return torch.stack(scores)


def input_log_posteriors(tasks: list[int], model: SpaceModel, x: Tensor) -> Tensor:
    """``log P(t | x) = log Σ_{c ∈ task t} e^{g_c} - log Σ_c e^{g_c}``, ``(T, B)``: the
    discriminants ``g_c`` of the input space's model, on the flattened inputs ``x``."""
    g = model.discriminants(x.flatten(1).to(torch.float64))
    total = torch.logsumexp(g, dim=1)
    return torch.stack([torch.logsumexp(g[:, model.owners == t], dim=1) - total for t in tasks])


def chi2_log_sf(x: Tensor, dof: int, terms: int = 64) -> Tensor:
    """``log P(χ²_dof > x)`` in float64, finite far into the tail.

    ``Q(a, y)`` (the regularised upper incomplete gamma, ``a = dof/2, y = x/2``) where
    it is representable; below ``1e-250`` its asymptotic expansion
    ``Γ(a, y) ≈ y^{a-1} e^{-y} Σ_k (a-1)(a-2)...(a-k) / y^k`` (there ``y > a``)."""
    x = x.to(torch.float64)
    a = torch.tensor(dof / 2.0, dtype=torch.float64, device=x.device)
    y = (x / 2.0).clamp_min(1e-300)
    q = torch.special.gammaincc(a, y)
    term = torch.ones_like(y)
    series = torch.ones_like(y)
    for k in range(1, terms):
        term = term * (a - k) / y
        series = series + term
    tail = (a - 1.0) * y.log() - y - torch.lgamma(a) + series.clamp_min(1e-300).log()
    return torch.where(q > 1e-250, q.clamp_min(1e-300).log(), tail)


def mahalanobis_scores(tasks: list[int], models: list[SpaceModel], features: list[Tensor]):
    """Per task, ``log P(χ²_{d_j} > min_{c ∈ task j} D²_c)``, ``(T, B)``."""
    scores = []
    for task, model, f in zip(tasks, models, features):
        distance = model.mahalanobis(f.to(torch.float64))[:, model.owners == task]
        scores.append(chi2_log_sf(distance.min(dim=1).values, model.dim))
    return torch.stack(scores)


class LdaCascade(FeatureRule):
    """``lda_cascade``: :func:`lda_cascade_scores`, plus, with the input space's statistics
    (the model's ``input_statistics``), :func:`input_log_posteriors`."""

    name = "lda_cascade"
    reads = ("task_statistics", "input_statistics")
    cascade = True
    fuses_input_space = True

    def scores(self, batch: ScoringBatch) -> Tensor:
        models = self.space_models(batch)
        statistics, tasks = batch.state["task_statistics"], batch.tasks
        for position, t in enumerate(tasks):
            later = set(tasks[position:])
            if not later <= statistics.owners(t):
                raise ValueError(
                    f"task_inference='lda_cascade' needs task {t}'s feature space to hold the "
                    f"data of tasks {sorted(later)}; it holds {sorted(statistics.owners(t))} "
                    "(the statistics were gathered for 'mahalanobis')"
                )
        scores = lda_cascade_scores(tasks, models, batch.features or [])
        inputs = batch.state.get("input_statistics")
        if inputs is not None:
            missing = set(tasks) - inputs.owners(INPUT_SPACE)
            if missing:
                raise ValueError(
                    f"the input space holds no data of tasks {sorted(missing)}; it must see "
                    "every trained task (gathered from the first task on)"
                )
            scores = scores + input_log_posteriors(tasks, inputs.model(INPUT_SPACE), batch.x)
        return scores


class Mahalanobis(FeatureRule):
    """``mahalanobis``: :func:`mahalanobis_scores`, each task in its own space."""

    name = "mahalanobis"

    def scores(self, batch: ScoringBatch) -> Tensor:
        return mahalanobis_scores(batch.tasks, self.space_models(batch), batch.features or [])
