"""Pure tensor maths of HAT and AdaHAT.

Every function here is a direct transcription of one formula of the HAT paper
(Serra et al., ICML 2018) or the AdaHAT paper (Wang et al., ECML PKDD 2024);
the docstrings name the equation. Nothing here knows about Avalanche or modules.

The *unit-wise* functions return one value per output unit of a layer. A
parameter-wise rate is obtained from two unit-wise vectors by an outer ``max``
(:func:`outer_max`): for a weight between input unit ``j`` and output unit ``i``
the parameter-wise measure is ``min(u_out[i], u_in[j])`` (docs/ALGORITHM.md §3), and every
rate below is a decreasing function of that measure, so the rate of the
``min`` is the ``max`` of the rates.

Here: the gate and its annealing (docs/ALGORITHM.md §1), the sparsity regulariser (§2),
the embedding-gradient compensation (§4) and the unit-wise rates of AdaHAT and the
other modes (§3.2). The parameter-sized outer-max products (:func:`outer_max`,
:func:`mul_outer_max_all_`, :func:`lerp_outer_max_all_`, :func:`mean_outer_max`, ...;
§3.3, §3.5) are in :mod:`.outer_max`, and importable from here as well.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .modes import MODES, adahat_modes, hat_modes
from .outer_max import BLOCK as BLOCK  # re-exported: F.BLOCK
from .outer_max import (
    lerp_outer_max_all_,
    mean_outer_max,
    mul_outer_max_,
    mul_outer_max_all_,
    outer_max,
    random_rates,
    rate_views,
    sgd_outer_max_all_,
)

__all__ = [
    "ADJUSTMENT_MODES",
    "ADAHAT_MODES",
    "HAT_MODES",
    "INIT_MODES",
    "REG_MODES",
    "annealed_scale",
    "compensate_embedding_grad",
    "compensation_factor",
    "gate",
    "mean_outer_max",
    "mul_outer_max_",
    "network_sparsity",
    "outer_max",
    "random_rates",
    "sparsity_affine",
    "sparsity_regularization",
    "unit_counts",
    "unit_rates",
    "adahat_r",
    "adahat_rates",
    "adahat_rate_terms",
    "adahat_rates_from_terms",
    "mul_outer_max_all_",
    "lerp_outer_max_all_",
    "rate_views",
    "sgd_outer_max_all_",
]

HAT_MODES = hat_modes()
ADAHAT_MODES = adahat_modes()
ADJUSTMENT_MODES = tuple(MODES)
REG_MODES = ("original", "cross")
INIT_MODES = ("N01", "U-11", "U01", "U-10", "last")


def annealed_scale(batch: int, num_batches: int, s_max: float) -> float:
    """HAT Eq. 3: ``s = 1/s_max + (s_max - 1/s_max) (b - 1) / (B - 1)``.

    ``batch`` is 1-based (``1..num_batches``); with a single batch ``s = s_max``.
    """
    if not 1 <= batch <= num_batches:
        raise ValueError(f"batch must be in 1..num_batches={num_batches} (1-based), got {batch}")
    if num_batches == 1:
        return float(s_max)
    return 1.0 / s_max + (s_max - 1.0 / s_max) * (batch - 1) / (num_batches - 1)


def gate(embedding: Tensor, s: float) -> Tensor:
    """HAT Eq. 1: the soft attention ``m = sigmoid(s * e)``."""
    return torch.sigmoid(s * embedding)


def compensation_factor(
    embedding: Tensor, s: float, s_max: float, clamp_threshold: float
) -> Tensor:
    """HAT Sec. 2.5: the factor ``s_max / s * (cosh(clamp(s e, -c, c)) + 1) / (cosh(e) + 1)``
    by which an embedding gradient is scaled."""
    num = torch.cosh(torch.clamp(s * embedding, -clamp_threshold, clamp_threshold)).add_(1)
    den = torch.cosh(embedding).add_(1)
    return num.div_(den).mul_(s_max / s)


def compensate_embedding_grad(
    grad: Tensor, embedding: Tensor, s: float, s_max: float, clamp_threshold: float
) -> Tensor:
    """HAT Sec. 2.5: scale an embedding gradient in place by :func:`compensation_factor`."""
    return grad.mul_(compensation_factor(embedding, s, s_max, clamp_threshold))


def _guarded_ratio(num: Tensor, den: float, min_units: int) -> Tensor:
    """``num / den``, taken as 0 when ``den`` counts ``min_units`` units or fewer."""
    if den <= min_units:
        return num.new_zeros(())
    return num / den


def unit_counts(cumulative_masks: list[Tensor]) -> list[tuple[float, float]]:
    """``(free, used)`` unit counts per layer; fixed for a whole task, computed once."""
    return [(float(c.numel() - c.sum().item()), float(c.sum().item())) for c in cumulative_masks]


def network_sparsity(
    soft_masks: list[Tensor],
    cumulative_masks: list[Tensor],
    mode: str = "original",
    min_units: int = 10,
) -> tuple[Tensor, list[Tensor]]:
    """HAT Sec. 2.6 mask sparsity, returning ``(total_ratio, per_layer_ratios)``.

    ``original``: ``Σ_l Σ_i m(1-M) / Σ_l Σ_i (1-M)`` and per layer
    ``R_l = Σ_i m(1-M) / Σ_i (1-M)``.
    ``cross``: the average of the original ratio and the reuse term
    ``1 - Σ m M / Σ M`` (all layers together for the total, per layer for ``R_l``).
    A ratio whose denominator counts ``min_units`` units or fewer is 0 (the
    reference's guard); a zero denominator can therefore never be divided by.
    The training step uses the same ratios as one affine map, :func:`sparsity_affine`.
    """
    if mode not in REG_MODES:
        raise ValueError(f"mask_sparsity_reg_mode must be one of {REG_MODES}, got {mode!r}")
    free_num = [(m * (1 - c)).sum() for m, c in zip(soft_masks, cumulative_masks)]
    counts = unit_counts(cumulative_masks)
    free_den = [free for free, _ in counts]
    per_layer = [_guarded_ratio(n, d, min_units) for n, d in zip(free_num, free_den)]
    total = _guarded_ratio(torch.stack(free_num).sum(), sum(free_den), min_units)
    if mode == "cross":
        used_num = [(m * c).sum() for m, c in zip(soft_masks, cumulative_masks)]
        used_den = [used for _, used in counts]
        reuse = [_reuse_term(n, d, min_units) for n, d in zip(used_num, used_den)]
        per_layer = [(a + b) / 2 for a, b in zip(per_layer, reuse)]
        total = (total + _reuse_term(torch.stack(used_num).sum(), sum(used_den), min_units)) / 2
    return total, per_layer


def sparsity_affine(
    cumulative_masks: list[Tensor], mode: str = "original", min_units: int = 10
) -> tuple[Tensor, Tensor]:
    """:func:`network_sparsity` as an affine map of the concatenated soft masks.

    Every ratio of HAT Sec. 2.6 is linear in the gates, with weights that depend
    only on the cumulative masks (fixed for a whole task). Returns ``(weights,
    bias)`` with ``L + 1`` rows such that ``bias + weights @ cat(soft_masks)``
    is ``[R_1, ..., R_L, total]``, guards included: one matrix-vector product
    per step instead of a few ops per layer.
    """
    if mode not in REG_MODES:
        raise ValueError(f"mask_sparsity_reg_mode must be one of {REG_MODES}, got {mode!r}")
    used = torch.cat([c.flatten() for c in cumulative_masks])
    free = 1 - used
    layers = len(cumulative_masks)
    weights = used.new_zeros(layers + 1, used.numel())
    bias = used.new_zeros(layers + 1)
    counts = unit_counts(cumulative_masks)
    total_free, total_used = sum(f for f, _ in counts), sum(u for _, u in counts)
    half = 0.5 if mode == "cross" else 1.0  # cross: the average of two ratios
    start = 0
    for layer, (c, (n_free, n_used)) in enumerate(zip(cumulative_masks, counts)):
        span = slice(start, start + c.numel())
        start += c.numel()
        if n_free > min_units:
            weights[layer, span] = half * free[span] / n_free
        if mode == "cross" and n_used > min_units:  # + (1 - Σ m M / Σ M) / 2
            weights[layer, span] -= half * used[span] / n_used
            bias[layer] = half
    if total_free > min_units:
        weights[layers] = half * free / total_free
    if mode == "cross" and total_used > min_units:
        weights[layers] -= half * used / total_used
        bias[layers] = half
    return weights, bias


def _reuse_term(num: Tensor, den: float, min_units: int) -> Tensor:
    """Cross-mode reuse term ``1 - Σ m M / Σ M``; 0 until more than ``min_units`` are used."""
    if den <= min_units:
        return num.new_zeros(())
    return 1 - num / den


def sparsity_regularization(
    soft_masks: list[Tensor],
    cumulative_masks: list[Tensor],
    factor: float,
    mode: str = "original",
    min_units: int = 10,
) -> Tensor:
    """HAT Eq. 5 regulariser ``factor * total_ratio`` of :func:`network_sparsity`."""
    total, _ = network_sparsity(soft_masks, cumulative_masks, mode, min_units)
    return factor * total


def adahat_r(
    adjustment_intensity: float, sparsity: Tensor | float, epsilon: float
) -> Tensor | float:
    """AdaHAT Eq. 9: ``r_l = alpha / (epsilon + R_l)``."""
    return adjustment_intensity / (epsilon + sparsity)


def adahat_rate_terms(
    summative: Tensor, adjustment_intensity: float, epsilon: float
) -> tuple[Tensor, Tensor]:
    """The terms of :func:`adahat_rates` that do not depend on the sparsity ``R``:
    ``(1 + epsilon S / alpha, S / alpha)``, fixed for a whole task."""
    slope = summative / adjustment_intensity
    return slope * epsilon + 1.0, slope


def adahat_rates_from_terms(
    base: Tensor, slope: Tensor, sparsity: Tensor | float, out: Tensor | None = None
) -> Tensor:
    """``1 / (base + slope R)``: :func:`adahat_rates` from :func:`adahat_rate_terms`."""
    if not isinstance(sparsity, Tensor):
        sparsity = torch.as_tensor(sparsity, dtype=slope.dtype, device=slope.device)
    return torch.addcmul(base, slope, sparsity, out=out).reciprocal_()


def adahat_rates(
    summative: Tensor,
    sparsity: Tensor | float,
    adjustment_intensity: float,
    epsilon: float,
    out: Tensor | None = None,
) -> Tensor:
    """AdaHAT Eqs. 8-9 in one expression: ``r / (S + r)`` with ``r = alpha / (epsilon + R)``
    is ``1 / (1 + S (epsilon + R) / alpha)``: exactly 1 where ``S = 0``.

    ``sparsity`` (``R``) broadcasts against ``summative`` (``S``). Equals
    :func:`unit_rates` ``("adahat", r=adahat_r(...))`` up to rounding, in fewer ops.
    Written into ``out`` if given.
    """
    base, slope = adahat_rate_terms(summative, adjustment_intensity, epsilon)
    return adahat_rates_from_terms(base, slope, sparsity, out=out)


def unit_rates(
    mode: str,
    cumulative: Tensor,
    summative: Tensor,
    *,
    r: Tensor | float = 1.0,
    alpha: float | None = None,
    num_previous_tasks: int = 0,
) -> Tensor:
    """Adjustment rate as a function of one unit's measures (docs/ALGORITHM.md §3).

    The rate of a parameter is :func:`outer_max` of the rates of its output and
    input units. ``r`` is AdaHAT's ``r_l`` of the layer that owns the parameter.

    Each mode's formula is its class in :mod:`avalanche_adahat.core.modes`
    (``hat_random`` gives the 0/1 indicator of free units there; the plugin draws
    its random rates with :func:`random_rates`).
    """
    if mode not in MODES:
        raise ValueError(f"adjustment_mode must be one of {ADJUSTMENT_MODES}, got {mode!r}")
    return MODES[mode].unit_rates(
        cumulative, summative, r=r, alpha=alpha, num_previous_tasks=num_previous_tasks
    )
