"""Adjustment modes as objects: one small class per mode, one registry everyone reads.

A mode owns its unit-wise rate (docs/ALGORITHM.md §3; a parameter's rate is the outer max of
its units' rates, :func:`avalanche_adahat.core.functional.outer_max`) and says what
the plugins, metrics and ``compare`` need to know about it. Adding a mode is one
class here (registered with :func:`register`) and one test of its rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["MODES", "AdjustmentMode", "adahat_modes", "hat_modes", "register"]


@dataclass(frozen=True)
class AdjustmentMode:
    """What a mode is, beyond its rate.

    - ``family``: ``"hat"`` (``HATPlugin`` / ``HAT``) or ``"adahat"`` (``AdaHATPlugin``);
    - ``per_batch``: its rates read the network sparsity ``R_l`` of every batch
      (otherwise they are fixed for a whole task);
    - ``random``: its rate on a used parameter is drawn per parameter and step;
      the network capacity counts it at ``expected_used_rate``;
    - ``constrains``: some rate can differ from 1 once a task is trained;
    - ``soft``: rates strictly between 0 and 1 on used parameters, which adaptive
      optimizers (Adam, RMSprop, ...) largely divide out under ``protect="gradient"``;
    - ``needs_alpha``: it takes ``alpha`` (the constant rate of ``hat_const_alpha``);
    - ``from_terms``: its per-batch rates are AdaHAT Eqs. 8-9 and may be written as
      ``1 / (base + slope R_l)`` from terms fixed for the task
      (:func:`~avalanche_adahat.core.functional.adahat_rate_terms`, fewer ops per batch).
    """

    name: str
    family: str
    help: str
    per_batch: bool = False
    random: bool = False
    constrains: bool = True
    soft: bool = False
    needs_alpha: bool = False
    from_terms: bool = False
    expected_used_rate: float | None = None

    def counted_rate(self, mean_rate):
        """A mean rate as the network capacity counts it (AdaHAT Sec. 4.1): a random
        mode's drawn rates on used parameters at their expectation."""
        if not self.random:
            return mean_rate
        return mean_rate + self.expected_used_rate * (1 - mean_rate)

    def unit_rates(
        self, cumulative: Tensor, summative: Tensor, *, r, alpha, num_previous_tasks: int
    ) -> Tensor:
        """The rate of each unit from its measures ``M^{<t}`` (``cumulative``) and
        ``S^{<t}`` (``summative``); ``r`` is AdaHAT's ``r_l`` of the owning layer."""
        raise NotImplementedError


MODES: dict[str, AdjustmentMode] = {}


def register(mode: AdjustmentMode) -> AdjustmentMode:
    if mode.name in MODES:
        raise ValueError(f"adjustment mode {mode.name!r} is already registered")
    MODES[mode.name] = mode
    return mode


def hat_modes() -> tuple[str, ...]:
    return tuple(n for n, m in MODES.items() if m.family == "hat")


def adahat_modes() -> tuple[str, ...]:
    return tuple(n for n, m in MODES.items() if m.family == "adahat")


class _Hat(AdjustmentMode):
    def unit_rates(self, cumulative, summative, *, r, alpha, num_previous_tasks):
        return 1 - cumulative  # HAT Eq. 2: 0 on units an earlier task uses


class _HatRandom(_Hat):
    """Its unit rates are the 0/1 indicator of free units; the plugin draws
    uniform(0, 1) where a parameter is used (:func:`functional.random_rates`)."""


class _HatConstAlpha(AdjustmentMode):
    def unit_rates(self, cumulative, summative, *, r, alpha, num_previous_tasks):
        if alpha is None:
            raise ValueError("adjustment_mode='hat_const_alpha' needs alpha")
        return 1 - cumulative * (1 - alpha)


class _HatConst1(AdjustmentMode):
    def unit_rates(self, cumulative, summative, *, r, alpha, num_previous_tasks):
        return torch.ones_like(cumulative)


class _AdaHat(AdjustmentMode):
    def unit_rates(self, cumulative, summative, *, r, alpha, num_previous_tasks):
        # AdaHAT Eq. 8, r / (S + r), written so that an unused unit (S = 0) gets exactly 1.
        return 1 / (1 + summative / r)


class _AdaHatNoSum(AdjustmentMode):
    def unit_rates(self, cumulative, summative, *, r, alpha, num_previous_tasks):
        if num_previous_tasks == 0:
            return torch.ones_like(cumulative)
        return 1 - cumulative * (1 - 1 / (1 + num_previous_tasks / r))


register(_Hat("hat", "hat", "HAT Eq. 2: rate 0 on parameters earlier tasks use"))
register(
    _HatRandom(
        "hat_random", "hat", "uniform(0, 1) rates on used parameters (AdaHAT baseline)",
        random=True, soft=True, expected_used_rate=0.5,
    )
)  # fmt: skip
register(
    _HatConstAlpha(
        "hat_const_alpha", "hat", "constant rate alpha on used parameters (AdaHAT baseline)",
        soft=True, needs_alpha=True,
    )
)  # fmt: skip
register(
    _HatConst1("hat_const_1", "hat", "no constraint: rate 1 (AdaHAT baseline)", constrains=False)
)
register(
    _AdaHat(
        "adahat", "adahat", "AdaHAT Eqs. 8-9: r_l / (S + r_l), r_l = alpha / (epsilon + R_l)",
        per_batch=True, soft=True, from_terms=True,
    )
)  # fmt: skip
register(
    _AdaHatNoSum(
        "adahat_no_sum", "adahat", "ablation: the number of earlier tasks instead of S",
        per_batch=True, soft=True,
    )
)  # fmt: skip
register(
    _AdaHat(
        "adahat_no_reg", "adahat", "ablation: r = alpha / epsilon (no sparsity term)", soft=True
    )
)
