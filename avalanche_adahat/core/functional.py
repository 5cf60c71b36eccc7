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
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .modes import MODES, adahat_modes, hat_modes

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


def outer_max(out_rate: Tensor, in_rate: Tensor | None, shape: torch.Size) -> Tensor:
    """Parameter-wise rate of a parameter of ``shape`` from unit-wise rates.

    ``out_rate`` indexes dim 0, ``in_rate`` (if given) dim 1; further dims (a
    convolution's kernel) broadcast. The result broadcasts against ``shape``
    and is parameter-sized only when ``in_rate`` is given.
    """
    tail = [1] * (len(shape) - 1)
    out_view = out_rate.view(-1, *tail)
    if in_rate is None:
        return out_view
    return torch.maximum(out_view, in_rate.view(1, -1, *tail[1:]))


#: (output unit, input unit) pairs whose outer max the eager step builds at a time.
BLOCK = 1 << 18


def mul_outer_max_(
    grad: Tensor,
    out_rate: Tensor,
    in_rate: Tensor | None,
    block: int = BLOCK,
    workspace: Tensor | None = None,
) -> Tensor:
    """``grad *= outer_max(out_rate, in_rate, grad.shape)`` in place, without a
    parameter-sized temporary: the outer max is built for blocks of about
    ``block`` (output unit, input unit) pairs at a time (1 MiB of float32 by
    default: few blocks, so few ops per step, and a temporary that stays in cache),
    written into ``workspace`` (a 1-D tensor of at least ``block`` elements) if given.

    The rates are unit vectors, or already viewed for broadcasting (``out_rate``
    as ``(n, 1, ...)``, ``in_rate`` as ``(1, m, 1, ...)``: see :func:`rate_views`).
    """
    out_view, in_view = rate_views(out_rate, in_rate, grad.dim())
    if in_view is None:
        return grad.mul_(out_view)
    for rows, rates in _outer_max_blocks(grad.shape, out_view, in_view, block, workspace):
        target, factor = _pairwise(grad[rows], rates)
        target.mul_(factor)
    return grad


def _outer_max(out_view: Tensor, in_view: Tensor, workspace: Tensor | None, offset: int = 0):
    """``torch.maximum(out_view, in_view)``, written into ``workspace[offset:]`` where it
    fits: a temporary allocated per step would cost page faults each time (glibc gives
    blocks of this size back to the system when they are freed)."""
    if workspace is None:
        return torch.maximum(out_view, in_view)
    shape = torch.broadcast_shapes(out_view.shape, in_view.shape)
    n = math.prod(shape)
    if offset + n > workspace.numel():
        return torch.maximum(out_view, in_view)
    return torch.maximum(out_view, in_view, out=workspace[offset : offset + n].view(shape))


def _outer_max_blocks(
    shape: torch.Size, out_view: Tensor, in_view: Tensor, block: int, workspace=None
):
    """``(rows, rates)``: the outer max of viewed unit rates (:func:`rate_views`) for
    consecutive slices of output units (dim 0) of a parameter of ``shape``, about
    ``block`` (output unit, input unit) pairs at a time (each in ``workspace`` if given)."""
    step = max(1, block // max(1, shape[1]))
    for i in range(0, shape[0], step):
        rows = slice(i, i + step)
        yield rows, _outer_max(out_view[rows], in_view, workspace)


def lerp_outer_max_all_(
    params: list[Tensor],
    befores: list[Tensor],
    out_rates: list[Tensor],
    in_rates: list[Tensor | None],
    block: int = BLOCK,
    workspace: Tensor | None = None,
) -> None:
    """``p = lerp(before, p, outer_max(out_rate, in_rate))`` in place in every ``p``: the
    eager hot path of :func:`avalanche_adahat.core.step.blend_by_rates` (``protect="update"``),
    the same ATen ``lerp`` on the same operands, so the same bits.

    One pass over each parameter and its snapshot: the ``lerp`` writes into ``p``
    (no copy back), the outer max is built for about ``block`` pairs at a time (no
    parameter-sized temporary, :func:`mul_outer_max_`; in ``workspace`` if given), and
    ``befores`` (preallocated snapshots) are left as they are."""
    for p, before, out_rate, in_rate in zip(params, befores, out_rates, in_rates):
        out_view, in_view = rate_views(out_rate, in_rate, p.dim())
        if in_view is None:
            torch.lerp(before, p, out_view.to(p.dtype), out=p)
            continue
        for rows, rates in _outer_max_blocks(p.shape, out_view, in_view, block, workspace):
            target = p[rows]
            torch.lerp(before[rows], target, rates.to(p.dtype), out=target)


def _pairwise(grad: Tensor, pair_rates: Tensor) -> tuple[Tensor, Tensor]:
    """``(target, factor)`` with ``target *= factor`` equal to ``grad *= pair_rates``.

    For a convolution's ``(out, in, kh, kw)`` gradient and ``(out, in, 1, 1)`` rates,
    the gradient is viewed as ``(kh kw, out in)`` and the rates as ``(out in,)``: the
    same products, in a loop PyTorch vectorises (broadcasting over an innermost
    dimension of 9 or 25 elements runs up to twice as slow here).
    """
    if grad.dim() <= 2 or not grad.is_contiguous() or not pair_rates.is_contiguous():
        return grad, pair_rates
    pairs = grad.shape[0] * grad.shape[1]
    return grad.view(pairs, -1).t(), pair_rates.view(pairs)


def _pairwise_maxima(grads: list[Tensor], outs: list[Tensor], ins: list[Tensor], workspace=None):
    """Targets and factors (:func:`_pairwise`) of several weights' outer maxima,
    the maxima built by one foreach call, or one after the other in ``workspace``."""
    if workspace is None:
        maxima = torch._foreach_maximum(outs, ins)
    else:
        maxima, offset = [], 0
        for o, i in zip(outs, ins):
            maxima.append(_outer_max(o, i, workspace, offset))
            offset += maxima[-1].numel()
    pairs = [_pairwise(g, m) for g, m in zip(grads, maxima)]
    return [t for t, _ in pairs], [f for _, f in pairs]


def mul_outer_max_all_(
    grads: list[Tensor],
    out_rates: list[Tensor],
    in_rates: list[Tensor | None],
    block: int = BLOCK,
    workspace: Tensor | None = None,
) -> None:
    """:func:`mul_outer_max_` on every ``(grad, out_rate, in_rate)``, in few ops: rates
    without input units and the outer maxima of parameters with up to ``block``
    (output unit, input unit) pairs in all are multiplied in by one foreach call
    each (the maxima built by one more); larger parameters block by block.

    ``workspace`` (a 1-D tensor of at least ``block`` elements), if given, holds
    every outer max built, each used before the next is built (no allocation per step)."""
    row_grads, row_rates = [], []
    grads_, outs, ins, pairs = [], [], [], 0
    for grad, out_rate, in_rate in zip(grads, out_rates, in_rates):
        out_view, in_view = rate_views(out_rate, in_rate, grad.dim())
        if in_view is None:
            row_grads.append(grad)
            row_rates.append(out_view)
            continue
        n = out_view.shape[0] * in_view.shape[1]
        if n > block:
            mul_outer_max_(grad, out_view, in_view, block, workspace)
            continue
        if pairs + n > block:  # keeps the maxima built at once within one block
            torch._foreach_mul_(*_pairwise_maxima(grads_, outs, ins, workspace))
            grads_, outs, ins, pairs = [], [], [], 0
        grads_.append(grad)
        outs.append(out_view)
        ins.append(in_view)
        pairs += n
    if grads_:
        targets, factors = _pairwise_maxima(grads_, outs, ins, workspace)
        row_grads += targets
        row_rates += factors
    if row_grads:
        torch._foreach_mul_(row_grads, row_rates)


def rate_views(out_rate: Tensor, in_rate: Tensor | None, dim: int) -> tuple[Tensor, Tensor | None]:
    """Unit-wise rates viewed to broadcast against a ``dim``-dimensional parameter
    (output units along dim 0, input units along dim 1); views are kept as they are."""
    tail = [1] * (dim - 1)
    if out_rate.dim() != dim:
        out_rate = out_rate.view(-1, *tail)
    if in_rate is not None and in_rate.dim() != dim:
        in_rate = in_rate.view(1, -1, *tail[1:])
    return out_rate, in_rate


def mean_outer_max(out_rate: Tensor, in_rate: Tensor | None) -> tuple[Tensor, int]:
    """``(Σ_ij max(out_i, in_j), count)`` without building the outer matrix.

    With ``in`` sorted, ``Σ_j max(x, in_j) = x·#{in_j < x} + Σ_{in_j ≥ x} in_j``;
    O((n + m) log m). Used for network capacity (AdaHAT Sec. 4.1).
    """
    if in_rate is None:
        return out_rate.sum(), out_rate.numel()
    y, _ = torch.sort(in_rate.flatten())
    tail = torch.flip(torch.cumsum(torch.flip(y, [0]), 0), [0])  # tail[k] = Σ_{j≥k} y_j
    tail = torch.cat([tail, tail.new_zeros(1)])
    below = torch.searchsorted(y, out_rate.flatten().contiguous(), right=False)
    total = (out_rate.flatten() * below).sum() + tail[below].sum()
    return total, out_rate.numel() * y.numel()


def random_rates(free: Tensor) -> Tensor:
    """``hat_random``: uniform(0, 1) where the parameter is used (``free == 0``), 1 elsewhere."""
    return torch.where(free > 0, torch.ones_like(free), torch.rand_like(free))
