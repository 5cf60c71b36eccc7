"""The adjustment rates of the covered parameters, as the plugin's mode gives them.

:class:`AdjustmentRates` lays the rates out once per task (:class:`.RatePlan`), writes
them once (modes whose rates are fixed for a task) or at every batch (``per_batch``
modes, from that batch's ``R_l``), applies them before the optimizer step and
measures them (:meth:`~AdjustmentRates.network_capacity`). What differs between the
modes comes from the mode object (:mod:`avalanche_adahat.core.modes`): its formula,
its flags, its family (AdaHAT's ``r_l``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core import functional as F
from ..nn.mask import CoveredParameter
from ..nn.module import HATModule
from .rate_plan import RatePlan, UnitRates
from .task_state import TaskState

__all__ = ["AdjustmentRates"]


class AdjustmentRates:
    """The rates of a plugin's adjustment mode (docs/ALGORITHM.md §3).

    ``settings`` is the plugin, read at each call (its hyperparameters may change
    between tasks, its ``step_maths`` may be swapped): ``mode``, ``alpha``,
    ``protect``, ``step_maths`` and, in AdaHAT's modes, ``adjustment_intensity``
    and ``epsilon``. The rate plan of the task is the :class:`TaskState`'s.
    """

    def __init__(self, settings):
        self.settings = settings

    def protection_active(self, task: TaskState) -> bool:
        """Whether any rate can differ from 1 in ``task``."""
        return task.num_previous_tasks > 0 and self.settings.mode.constrains

    # ------------------------------------------------------------------ layout and writing
    def prepare(self, task: TaskState, model: HATModule) -> RatePlan:
        """Lay out the unit measures that the rates read, once per task (see
        :class:`.RatePlan`), and write the rates of a mode that does not read ``R_l``."""
        structure = task.structure_of(model)
        plan = task.rate_plan = RatePlan.build(model, structure.covered, structure.mask_index)
        plan.fixed = not self.settings.mode.per_batch
        if plan.fixed:
            self._write(task, plan, None)
        return plan

    def current_unit_rates(self, task: TaskState, model: HATModule) -> list[UnitRates]:
        """The unit-sized rate factors of every covered parameter for this step."""
        plan = task.rate_plan
        if plan is None or plan.model_id != id(model):
            plan = self.prepare(task, model)
        if not plan.fixed:
            self._write(task, plan, task.current_sparsity())
        return plan.unit_rates

    def layer_r(self, sparsity: Tensor | None) -> Tensor | float:
        """AdaHAT Eq. 9's ``r_l = alpha / (epsilon + R_l)``, one per layer for a per-batch
        mode given ``sparsity``, else ``alpha / epsilon`` (``R_l = 0``, ``adahat_no_reg``);
        1 in HAT's modes, which do not read it."""
        settings = self.settings
        if settings.mode.family != "adahat":
            return 1.0
        if settings.mode.per_batch and sparsity is not None:
            return F.adahat_r(settings.adjustment_intensity, sparsity, settings.epsilon)
        return F.adahat_r(settings.adjustment_intensity, 0.0, settings.epsilon)

    def _write(self, task: TaskState, plan: RatePlan, sparsity: Tensor | None) -> None:
        """Write the rates of all slots of ``plan`` into ``plan.rates`` (docs/ALGORITHM.md §3.2)."""
        settings = self.settings
        if settings.mode.from_terms and sparsity is not None:
            # Eqs. 8-9 on every slot, each with its layer's R_l; the terms that do not
            # depend on R_l are fixed for the task.
            key = (settings.adjustment_intensity, settings.epsilon)
            if plan.adahat_terms is None or plan.adahat_terms[0] != key:
                plan.adahat_terms = (key, *F.adahat_rate_terms(plan.summative, *key))
            base, slope = plan.adahat_terms[1:]
            F.adahat_rates_from_terms(base, slope, sparsity[plan.slot_layer], out=plan.rates)
            return
        r = self.layer_r(sparsity)
        if isinstance(r, Tensor) and r.dim() == 1:
            r = r[plan.slot_layer]  # each slot reads the r_l of the layer it rates for
        rates = settings.mode.unit_rates(
            plan.cumulative,
            plan.summative,
            r=r,
            alpha=settings.alpha,
            num_previous_tasks=task.num_previous_tasks,
        )
        plan.rates.copy_(rates)

    # ------------------------------------------------------------------ applying them
    def adjust_step(
        self, task: TaskState, model: HATModule, in_sgd_step: bool
    ) -> list[UnitRates] | None:
        """HAT Eq. 2 / AdaHAT Eq. 8 before the optimizer step (docs/ALGORITHM.md §5.1,
        step 5), if protection is active: return the rates for plain SGD's step to apply
        (``in_sgd_step``, :meth:`sgd_step`), scale the covered gradients
        (``protect="gradient"``), or snapshot the covered parameters for
        :meth:`TaskState.after_update` (``protect="update"``)."""
        if not self.protection_active(task):
            return None
        rates = self.current_unit_rates(task, model)
        if in_sgd_step:
            return rates
        if self.settings.protect == "gradient":
            self.scale_grads(rates)
        else:
            params, outs, ins = self._step_rates(rates, lambda p: p.detach())
            task.snapshots = (params, self.settings.step_maths.snapshot(params), outs, ins)
        return None

    def scale_grads(self, rates: list[UnitRates]) -> None:
        """HAT Eq. 2 / AdaHAT Eq. 8 on the covered gradients present."""
        kept = [r for r in rates if r.covered.param.grad is not None]
        if kept:
            self.settings.step_maths.scale(*self._step_rates(kept, lambda p: p.grad))

    def sgd_step(self, rates: list[UnitRates], optimizer: torch.optim.SGD) -> list[Tensor]:
        """Plain SGD's step of the covered parameters that have a gradient, scaled by
        their rates (:meth:`StepMaths.sgd_step`: one pass, no scaled gradient written);
        returns those parameters, which the optimizer must then skip."""
        groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        kept = [
            r for r in rates if r.covered.param.grad is not None and id(r.covered.param) in groups
        ]
        if not kept:
            return []
        params, outs, ins = self._step_rates(kept, lambda p: p.detach())
        grads = [r.covered.param.grad for r in kept]
        alphas = []
        for r in kept:
            group = groups[id(r.covered.param)]
            lr = float(group["lr"])
            alphas.append(lr if group.get("maximize", False) else -lr)
        self.settings.step_maths.sgd_step(params, grads, outs, ins, alphas)
        return [r.covered.param for r in kept]

    def _step_rates(self, rates: list[UnitRates], tensor_of) -> tuple[list, list, list]:
        """``(tensors, out rates, in rates)`` of this step for :class:`StepMaths`: each
        parameter's unit rates viewed to broadcast, or, in a random mode, its
        parameter-sized random rates (drawn here) as the out rate."""
        tensors = [tensor_of(r.covered.param) for r in rates]
        if self.settings.mode.random:
            return tensors, [r.full(random=True) for r in rates], [None] * len(rates)
        return tensors, [r.views[0] for r in rates], [r.views[1] for r in rates]

    # ------------------------------------------------------------------ measuring them
    @torch.no_grad()
    def rate_sums(
        self, task: TaskState, model: HATModule
    ) -> list[tuple[CoveredParameter, Tensor, int]]:
        """Per covered parameter: the sum of its entries' rates this step and their
        number, without building the parameter-sized rate (rates drawn at random
        counted as 1 where free, 0 where used; see :meth:`AdjustmentMode.counted_rate`)."""
        sums = []
        for r in self.current_unit_rates(task, model):
            pair_sum, pairs = F.mean_outer_max(r.out_rate, r.in_rate)
            kernel = r.covered.param.numel() // pairs  # a conv's kernel positions
            sums.append((r.covered, pair_sum * kernel, pairs * kernel))
        return sums

    @torch.no_grad()
    def network_capacity(self, task: TaskState, model: HATModule) -> Tensor:
        """Mean adjustment rate over all covered parameters (docs/ALGORITHM.md §3.5):
        1 while protection is not active; ``hat_random``'s drawn rates on used
        parameters counted at their expectation, 0.5."""
        if not self.protection_active(task):
            return torch.ones(())
        sums = self.rate_sums(task, model)
        total = sum(s for _, s, _ in sums)
        return self.settings.mode.counted_rate(total / sum(n for _, _, n in sums))
