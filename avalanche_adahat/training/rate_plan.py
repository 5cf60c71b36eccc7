"""Per-task layout of the adjustment rates: unit-sized vectors, fixed for a whole task.

Every covered parameter's rate is the outer max of two unit-wise vectors (docs/ALGORITHM.md §3);
:class:`RatePlan` lays all of them out in one vector so that one step's rates take
a handful of vector ops, and :class:`UnitRates` views a parameter's part of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..core import functional as F
from ..nn.mask import CoveredParameter

__all__ = ["RatePlan", "UnitRates"]


@dataclass(eq=False)
class UnitRates:
    """Rates of one covered parameter as two unit-sized vectors (docs/ALGORITHM.md §3 identity)."""

    covered: CoveredParameter
    out_rate: Tensor
    in_rate: Tensor | None

    def __post_init__(self):
        # Views of the plan's rate vector shaped to broadcast against the parameter:
        # made once per task, they see the rates rewritten in place at each step.
        self.views = F.rate_views(self.out_rate, self.in_rate, self.covered.param.dim())

    def full(self, random: bool = False) -> Tensor:
        rate = F.outer_max(self.out_rate, self.in_rate, self.covered.param.shape)
        return F.random_rates(rate.expand_as(self.covered.param)) if random else rate


@dataclass(eq=False)
class RatePlan:
    """Where each covered parameter's unit rates sit in one vector, fixed for a task.

    A *slot* is a run of units rated with one layer's ``r_l``: a layer's output
    units, or the input units of a layer's weight (repeated ``in_repeat`` times
    for a Linear after a convolution). All slots' cumulative and summative
    masks are concatenated, so one step's rates take a handful of vector ops.
    """

    model_id: int
    cumulative: Tensor
    summative: Tensor
    slot_layer: Tensor  # per unit of the vector: the layer whose r_l applies
    rates: Tensor  # the current rates of all slots, rewritten in place when they change
    unit_rates: list[UnitRates]  # views into ``rates``, one per covered parameter
    # ((alpha, epsilon), *F.adahat_rate_terms) once AdaHAT rates were written.
    adahat_terms: tuple | None = None
    # Written once for the task: the mode does not read the per-batch R_l.
    fixed: bool = False

    @classmethod
    def build(cls, model, covered: list[CoveredParameter], mask_index: dict[int, int]):
        keys: dict[tuple[int, int, int], int] = {}
        cumulative: list[Tensor] = []
        summative: list[Tensor] = []
        layers: list[int] = []

        def slot(mask, layer: int, input_of: CoveredParameter | None = None) -> int:
            """The slot of ``mask``'s units rated with layer ``layer``'s r_l, as the
            output units of the layer or as the input units of ``input_of``."""
            expand = (lambda v: v) if input_of is None else input_of.expand_in
            key = (id(mask), layer, 1 if input_of is None else input_of.in_repeat)
            if key not in keys:
                keys[key] = len(layers)
                cumulative.append(expand(mask.cumulative))
                summative.append(expand(mask.summative))
                layers.append(layer)
            return keys[key]

        slots_of = []
        for cp in covered:
            layer = mask_index[id(cp.out_mask)]
            out = slot(cp.out_mask, layer)
            inp = None if cp.in_mask is None else slot(cp.in_mask, layer, input_of=cp)
            slots_of.append((cp, out, inp))
        sizes = [c.numel() for c in cumulative]
        device = cumulative[0].device
        slot_layer = torch.repeat_interleave(
            torch.tensor(layers, device=device), torch.tensor(sizes, device=device)
        )
        all_cumulative, all_summative = torch.cat(cumulative), torch.cat(summative)
        rates = torch.ones_like(all_cumulative)
        parts = rates.split(sizes)
        unit_rates = [
            UnitRates(cp, parts[out], None if inp is None else parts[inp])
            for cp, out, inp in slots_of
        ]
        return cls(id(model), all_cumulative, all_summative, slot_layer, rates, unit_rates)
