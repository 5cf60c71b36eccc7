"""The parameter-sized products of the outer-max identity (docs/ALGORITHM.md §3.3).

A parameter's rate is the outer ``max`` of two unit-wise rate vectors, one for its
output units (dim 0) and one for its input units (dim 1): :func:`outer_max`. The
functions here apply it without a parameter-sized temporary: multiplied into
gradients (:func:`mul_outer_max_`, :func:`mul_outer_max_all_`, ``protect="gradient"``)
or as the blend of an update (:func:`lerp_outer_max_all_`, ``protect="update"``),
built block by block (:data:`BLOCK`); :func:`rate_views` views unit rates to
broadcast. :func:`mean_outer_max` sums an outer max without building it (network
capacity, docs/ALGORITHM.md §3.5), :func:`random_rates` draws ``hat_random``'s rates.

Torch only; :mod:`.functional` re-exports every public name here (``F.outer_max``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "BLOCK",
    "lerp_outer_max_all_",
    "mean_outer_max",
    "mul_outer_max_",
    "mul_outer_max_all_",
    "outer_max",
    "random_rates",
    "rate_views",
    "sgd_outer_max_all_",
]


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
    maxima: Sequence[Tensor]
    if workspace is None:
        maxima = torch._foreach_maximum(outs, ins)
    else:
        built: list[Tensor] = []
        offset = 0
        for o, i in zip(outs, ins):
            built.append(_outer_max(o, i, workspace, offset))
            offset += built[-1].numel()
        maxima = built
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
    grads_: list[Tensor]
    outs: list[Tensor]
    ins: list[Tensor]
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


def sgd_outer_max_all_(
    params: list[Tensor],
    grads: list[Tensor],
    out_rates: list[Tensor],
    in_rates: list[Tensor | None],
    alphas: list[float],
    block: int = BLOCK,
    workspace: Tensor | None = None,
) -> None:
    """``p.add_(g * outer_max(out_rate, in_rate), alpha=alpha)`` in place in every ``p``:
    plain SGD's step (``alpha = -lr``) with HAT Eq. 2 / AdaHAT Eq. 8 in it, the eager hot
    path of :func:`avalanche_adahat.core.step.sgd_step_by_rates`.

    The same ATen ops on the same operands as :func:`mul_outer_max_all_` followed by SGD's
    ``p.add_(g, alpha=-lr)``, so the same bits, in one pass over each weight and its
    gradient instead of two: a 2-D weight's scaled gradient is built block by block in
    ``workspace`` (if given) and added at once, the gradient itself is left as it is.
    Other shapes (biases, a convolution's kernels) scale their gradient in place first."""
    for p, g, out_rate, in_rate, alpha in zip(params, grads, out_rates, in_rates, alphas):
        out_view, in_view = rate_views(out_rate, in_rate, p.dim())
        if in_view is None or p.dim() != 2 or g.dtype != out_view.dtype:
            mul_outer_max_(g, out_view, in_view, block, workspace)
            p.add_(g, alpha=alpha)
            continue
        for rows, rates in _outer_max_blocks(p.shape, out_view, in_view, block, workspace):
            p[rows].add_(rates.mul_(g[rows]), alpha=alpha)


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
