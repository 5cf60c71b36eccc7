"""Avalanche plugins running HAT and AdaHAT inside any ``SupervisedTemplate``.

Each hook does one thing (docs/ALGORITHM.md §5 gives the order inside an iteration):

- ``before_training``: check the model, hand it ``s_max`` and the init mode;
- ``before_training_exp``: check the task label, reset the optimizer state,
  prepare the rate factors that are fixed for the whole task;
- ``before_training_epoch`` / ``before_training_iteration``: anneal ``s`` (HAT Eq. 3);
- ``before_backward``: add the mask sparsity regulariser (HAT Eq. 5);
- ``before_update``: adjust backbone gradients (HAT Eq. 2 / AdaHAT Eq. 8),
  compensate embedding gradients (HAT Sec. 2.5), clip;
- ``after_update``: optional embedding clamp, ``protect="update"`` blending;
- ``after_training_exp``: store ``M^t`` and update ``M^{<t}`` and ``S^{<t}``.

Longer than this package's other modules (about 480 lines) for a reason: the hooks
share one per-task state and run in the order above, which reads best in one class;
the maths they call is elsewhere (:mod:`.functional`, :mod:`.step`, :mod:`.rate_plan`,
:mod:`.optimizers`, :mod:`.composition` for the checks).
"""

from __future__ import annotations

import math
import warnings

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor

from ..core import functional as F
from ..core._warnings import warn_at_caller
from ..core.config import INPUT_SPACE_AUTO_FEATURES, PAPER_ADAHAT, AdaHATConfig, HATConfig
from ..core.modes import MODES, AdjustmentMode
from ..core.optimizers import (
    DEFAULT_ADJUSTMENT_INTENSITY,
    default_adjustment_intensity,
    gradient_mode_caveat,
    update_is_scaled_gradient,
)
from ..core.step import StepMaths
from ..core.subnormals import flush_subnormals_is_on
from ..inference import router as TI
from ..inference import update_statistics
from ..nn.mask import CoveredParameter
from ..nn.module import HATModule
from .composition import (
    AsNewTask,
    check_experience,
    check_labels_fit_head,
    check_optimizer_holds,
    check_strategy,
    warn_short_schedule,
    warn_untrained_tasks,
)
from .rate_plan import RatePlan, UnitRates

__all__ = [
    "DEFAULT_ADJUSTMENT_INTENSITY",
    "PAPER_ADAHAT",
    "AdaHATPlugin",
    "HATPlugin",
    "default_adjustment_intensity",
]


class HATPlugin(SupervisedPlugin, supports_distributed=True):
    """HAT (Serra et al., ICML 2018) as an Avalanche plugin.

    The model must be a :class:`~avalanche_adahat.nn.module.HATModule` (for
    example :class:`~avalanche_adahat.models.HATMLP`), and every training
    experience must carry one task label not trained before.

    Takes a :class:`~avalanche_adahat.core.config.HATConfig` (``config``) or its
    fields as keywords (documented there), e.g. ``HATPlugin(s_max=400)``. The
    plugin's attributes of the same names start as the config's values.
    """

    config_class: type[HATConfig] = HATConfig

    def __init__(self, config: HATConfig | None = None, **hyperparameters):
        super().__init__()
        self.config = self.config_class.from_arguments(config, hyperparameters)
        for name in self.config.field_names():
            setattr(self, name, getattr(self.config, name))
        self._warned = False
        self._warned_untrained: set[int] = set()
        self._warned_short = False  # the short-schedule hint, given once
        self._flushing = False  # inside a training step, subnormals flushed
        self._flush_was_on = False  # the thread's subnormal mode before it
        self.step_maths = StepMaths(self.compile_step)
        self._reset_task_state()

    # ------------------------------------------------------------------ state
    def _reset_task_state(self) -> None:
        self.task_label: int | None = None
        self.task_steps = 0  # optimizer steps taken in the current task
        self.num_previous_tasks = 0
        self.num_batches = 1
        self.batch = 0
        self.s = self.s_max  # the annealed gate scale of the current step (HAT Eq. 3)
        self._step_gates: Tensor | None = None
        self._ratios: Tensor | None = None  # [R_1, ..., R_L, total] of the last batch
        self._layer_sparsity: Tensor | None = None  # its first L entries, detached, when asked
        # protect="update": (parameters, their values before the step, out and in rates).
        self._snapshots: tuple[list, list, list, list] | tuple = ()
        # The model's structure, looked up once per task instead of once per hook
        # (each lookup walks model.modules()).
        self._structure_of: int | None = None  # id() of the model it belongs to
        self._masks: list = []
        self._covered: list[CoveredParameter] = []
        self._mask_index: dict[int, int] = {}
        self._embeddings: list[Tensor] = []  # the training task's e^t, one per mask
        self._embedding_values: list[Tensor] = []
        # All e^t concatenated, as the last forward pass read them (with its graph).
        self._step_embeddings: Tensor | None = None
        # F.sparsity_affine, its last row scaled by mask_sparsity_reg_factor.
        self._sparsity_map: tuple[Tensor, Tensor] | None = None
        self._rate_plan: RatePlan | None = None
        self._rates_fixed = False
        # Heads and per-task BatchNorms of trained tasks: no mode moves them.
        self._frozen_private: list[Tensor] = []
        self._private_snapshots: list[tuple[Tensor, Tensor]] = []

    @property
    def mode(self) -> AdjustmentMode:
        """The adjustment mode's object (:mod:`avalanche_adahat.core.modes`)."""
        return MODES[self.adjustment_mode]

    @property
    def protection_active(self) -> bool:
        """Whether any rate can differ from 1 in the current task."""
        return self.num_previous_tasks > 0 and self.mode.constrains

    # ------------------------------------------------------------------ hooks
    def before_training(self, strategy, **kwargs):
        self._end_flush()
        self._flush_was_on = flush_subnormals_is_on()  # the thread's own mode, given back
        self._give_flush_back_on_errors(strategy)
        model = _hat_model(strategy.model)
        check_strategy(strategy, HATPlugin, self.per_experience)
        model.begin_training(self.s_max, self.task_embedding_init_mode)
        self._warn_about_optimizer(strategy.optimizer)

    @property
    def per_experience(self) -> bool:
        return self.task_ids == "per_experience"

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        # The first hook of an experience: nothing was adapted or trained yet.
        trained = _hat_model(strategy.model).trained_tasks()
        check_experience(strategy.experience, trained, self.per_experience)
        check_labels_fit_head(strategy.experience, _hat_model(strategy.model), trained)
        if self.per_experience and not isinstance(strategy.experience, AsNewTask):
            strategy.experience = AsNewTask(strategy.experience)

    def before_forward(self, strategy, **kwargs):
        if self.per_experience:  # the batch belongs to the task being trained
            strategy.mbatch[-1] = torch.full_like(strategy.mbatch[-1], self.task_label)

    def before_training_exp(self, strategy, **kwargs):
        model = _hat_model(strategy.model)
        (task_label,) = set(int(t) for t in strategy.experience.task_labels)
        trained = model.trained_tasks()
        check_optimizer_holds(strategy.optimizer, model, task_label)
        # Momentum or Adam moments from the last task must not move parameters
        # that are protected from now on (docs/ALGORITHM.md §6).
        strategy.optimizer.state.clear()
        self._reset_task_state()
        self.task_label = task_label
        self.num_previous_tasks = len(trained)
        self._structure(model)
        self._embeddings = [m.embeddings[str(task_label)] for m in self._masks]
        # Detached views share the parameters' storage: current values at every step.
        self._embedding_values = [e.detach() for e in self._embeddings]
        self._frozen_private = [p for t in trained for p in model.task_private_parameters(t)]
        weights, bias = F.sparsity_affine(
            [m.cumulative for m in self._masks],
            self.mask_sparsity_reg_mode,
            self.sparsity_guard_units,
        )
        # The map then gives [R_1, ..., R_L, c * total]: the regulariser term itself.
        weights[-1].mul_(self.mask_sparsity_reg_factor)
        bias[-1].mul_(self.mask_sparsity_reg_factor)
        self._sparsity_map = (weights, bias)
        self._prepare_rates(model)

    def before_training_epoch(self, strategy, **kwargs):
        self.num_batches = max(1, len(strategy.dataloader))
        self.batch = 0
        if self.task_steps == 0 and not getattr(self, "_warned_short", False):
            self._warned_short = warn_short_schedule(
                self.task_label, self.num_batches, strategy.train_epochs
            )

    def before_training_iteration(self, strategy, **kwargs):
        self.batch = min(self.batch + 1, self.num_batches)
        self.s = F.annealed_scale(self.batch, self.num_batches, self.s_max)
        # This step's gates of all masks as one vector (HAT Eq. 1), from the embedding
        # values they were made from: the forward pass, the regulariser and the
        # compensation all read these.
        model = _unwrap(strategy.model)
        self._step_embeddings = model.task_embeddings(self.task_label)
        self._step_gates = F.gate(self._step_embeddings, self.s)
        model.set_step_gates(self.task_label, self._step_gates)
        self._begin_flush()

    def after_training_iteration(self, strategy, **kwargs):
        self.task_steps += 1
        _unwrap(strategy.model).set_step_gates(None, None)  # frees the step's graph
        self._step_gates = None
        self._end_flush()

    def _begin_flush(self) -> None:
        """Flush subnormal floats (below ``2**-126`` in float32) to zero for this
        training step (see :func:`flush_subnormals_is_on` for why it is safe)."""
        self._flushing = True
        torch.set_flush_denormal(True)

    def _give_flush_back_on_errors(self, strategy) -> None:
        """Wrap the strategy's ``training_epoch`` for this ``train`` call so that an
        exception inside a step still gives the thread its subnormal mode back
        (Avalanche has no hook for errors, and the flag is the thread's, not the
        plugin's). ``after_training`` removes the wrapper: checkpoints never hold it."""
        if "training_epoch" in vars(strategy):
            return
        epoch = strategy.training_epoch

        def training_epoch(**kwargs):
            try:
                return epoch(**kwargs)
            finally:
                self._end_flush()

        strategy.training_epoch = training_epoch

    def after_training(self, strategy, **kwargs):
        vars(strategy).pop("training_epoch", None)
        self._end_flush()

    def _end_flush(self) -> None:
        """Give the thread back its own subnormal mode; also called by the hooks that
        follow a step an exception interrupted (the next training or evaluation)."""
        if self._flushing:
            torch.set_flush_denormal(self._flush_was_on)
            self._flushing = False

    def before_backward(self, strategy, **kwargs):
        loss = strategy.loss
        if self.check_finite and not math.isfinite(loss.item()):
            self._end_flush()
            raise FloatingPointError(
                f"non-finite loss {loss.detach().cpu().tolist()} in experience "
                f"{strategy.experience.current_experience}, batch {self.batch}: stopping before it "
                "corrupts parameters or masks (lower the learning rate or clip gradients)"
            )
        weights, bias = self._sparsity_map
        self._ratios = torch.addmv(bias, weights, self._step_gates)  # [R_1..R_L, c * total]
        self._layer_sparsity = None
        if self.mask_sparsity_reg_factor > 0:
            strategy.loss = loss + self._ratios[-1]  # HAT Eq. 5

    @property
    def layer_sparsity(self) -> Tensor | None:
        """``[R_1, ..., R_L]`` of the last training batch (HAT Sec. 2.6), or ``None``."""
        if self._layer_sparsity is None and self._ratios is not None:
            self._layer_sparsity = self._ratios.detach()[:-1]
        return self._layer_sparsity

    @layer_sparsity.setter
    def layer_sparsity(self, value) -> None:
        if value is not None and not isinstance(value, Tensor):
            value = torch.stack([torch.as_tensor(v) for v in value])
        self._layer_sparsity, self._ratios = value, None

    def before_update(self, strategy, **kwargs):
        # protect="update" under plain SGD: the change is -lr * grad, so the rate
        # scales the gradient (after clipping) instead of a snapshot and a blend.
        scaled_update = self.protect == "update" and update_is_scaled_gradient(strategy.optimizer)
        scale_later = None
        with torch.no_grad():
            self._protect_trained_private(zero_grads=self.protect == "gradient" or scaled_update)
            if self.protection_active:
                rates = self.current_unit_rates(_unwrap(strategy.model))
                if self.protect == "gradient":
                    self._scale_grads(rates)
                elif scaled_update:
                    scale_later = rates
                else:
                    params, outs, ins = self._step_rates(rates, lambda p: p.detach())
                    self._snapshots = (params, self.step_maths.snapshot(params), outs, ins)
            self._compensate_embedding_grads()
        if self.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(strategy.model.parameters(), self.clip_grad_norm)
        if scale_later is not None:
            with torch.no_grad():
                self._scale_grads(scale_later)

    def _scale_grads(self, rates: list[UnitRates]) -> None:
        """HAT Eq. 2 / AdaHAT Eq. 8 on the covered gradients present."""
        kept = [r for r in rates if r.covered.param.grad is not None]
        if kept:
            self.step_maths.scale(*self._step_rates(kept, lambda p: p.grad))

    def _step_rates(self, rates: list[UnitRates], tensor_of) -> tuple[list, list, list]:
        """``(tensors, out rates, in rates)`` of this step for :class:`StepMaths`: each
        parameter's unit rates viewed to broadcast, or, in a random mode, its
        parameter-sized random rates (drawn here) as the out rate."""
        tensors = [tensor_of(r.covered.param) for r in rates]
        if self.mode.random:
            return tensors, [r.full(random=True) for r in rates], [None] * len(rates)
        return tensors, [r.views[0] for r in rates], [r.views[1] for r in rates]

    def _protect_trained_private(self, zero_grads: bool) -> None:
        """Rate 0 on trained tasks' heads and BatchNorms, in every mode (docs/ALGORITHM.md §3).

        They receive gradients only when a trained task's samples are replayed
        (Replay, Cumulative, GEM/A-GEM memories) and belong to that task alone.
        ``zero_grads`` (``protect="gradient"``, or an update that is ``-lr * grad``):
        their gradients are zeroed; otherwise their values are restored after the step.
        """
        frozen = [p for p in self._frozen_private if p.grad is not None]
        if zero_grads:
            for p in frozen:
                p.grad.zero_()
        else:
            self._private_snapshots = [(p, p.detach().clone()) for p in frozen]

    def _compensate_embedding_grads(self) -> None:
        """HAT Sec. 2.5 on every mask's embedding gradient, as one vector."""
        grads = [e.grad for e in self._embeddings]
        values, self._step_embeddings = self._step_embeddings, None
        if values is None or any(g is None for g in grads):
            kept = [(v, g) for v, g in zip(self._embedding_values, grads) if g is not None]
            if not kept:
                return
            values = torch.cat([v for v, _ in kept])
            grads = [g for _, g in kept]
        factor = F.compensation_factor(values, self.s, self.s_max, self.clamp_threshold)
        torch._foreach_mul_(grads, factor.split([g.numel() for g in grads]))

    def after_update(self, strategy, **kwargs):
        if not (self._snapshots or self._private_snapshots) and self.embedding_clamp is None:
            return
        with torch.no_grad():
            if self._snapshots:
                self.step_maths.blend(*self._snapshots)
            for p, before in self._private_snapshots:
                p.copy_(before)
            self._snapshots, self._private_snapshots = (), []
            if self.embedding_clamp is not None:
                for e in self._embeddings:
                    e.clamp_(-self.embedding_clamp, self.embedding_clamp)

    def before_eval(self, strategy, **kwargs):
        self._end_flush()
        if self.task_inference is not None:
            model = _hat_model(strategy.model)
            model.set_router(TI.TaskRouter(self.task_inference, self.calibrate_task_inference))

    def after_eval(self, strategy, **kwargs):
        if self.task_inference is not None:
            _hat_model(strategy.model).set_router(None)

    def before_eval_exp(self, strategy, **kwargs):
        if self.task_inference is not None:
            return  # the task is predicted, not read
        model = _hat_model(strategy.model)
        warn_untrained_tasks(strategy.experience, model, self.task_label, self._warned_untrained)

    def _input_statistics(self, model, dataset):
        """The input space's statistics to update (``input_space``), or ``None``."""
        if self.task_inference != "lda_cascade" or self.input_space is False:
            return None
        if self.input_space is None and dataset[0][0].numel() > INPUT_SPACE_AUTO_FEATURES:
            return None
        return model.feature_statistics(self.cov_rank, name="input_statistics")

    def after_training_exp(self, strategy, **kwargs):
        model = _hat_model(strategy.model)
        if self.task_steps == 0:  # nothing learned: no masks to keep, the task stays untrained
            model.set_step_gates(None, None)
            warn_at_caller(
                f"task {self.task_label} took no optimizer step (training stopped before its "
                "first minibatch), so its masks were not stored: it counts as untrained and "
                "can be trained again"
            )
            return
        self.layer_sparsity = self.layer_sparsity  # detached: nothing of the graph is kept
        model.store_task_masks(self.task_label)
        model.set_step_gates(None, None)
        if self.calibrate_task_inference:
            stats = TI.score_statistics(model, strategy.experience.dataset, self.task_label)
            model.store_task_score_stats(self.task_label, stats)
        if self.task_inference in TI.FEATURE_RULES:
            # lda_cascade: this task's data in every frozen task network so far
            cascade = self.task_inference == "lda_cascade"
            spaces = model.trained_tasks() if cascade else [self.task_label]
            dataset = strategy.experience.dataset
            update_statistics(
                model,
                model.feature_statistics(self.cov_rank),
                dataset,
                self.task_label,
                spaces,
                input_statistics=self._input_statistics(model, dataset),
            )
        self._rate_plan = None  # the masks changed: rates are laid out anew if asked for
        self._snapshots, self._private_snapshots = (), []
        self.step_maths.release()
        self._step_embeddings = None

    # ------------------------------------------------------------------ rates
    def current_unit_rates(self, model: HATModule) -> list[UnitRates]:
        """The unit-sized rate factors of every covered parameter for this step."""
        if self._rate_plan is None or self._rate_plan.model_id != id(model):
            self._prepare_rates(model)
        if not self._rates_fixed:
            # [R_1..R_L, total] as computed (slots index only the first L), else as set.
            sparsity = self.layer_sparsity if self._ratios is None else self._ratios.detach()
            self._write_rates(self._rate_plan, sparsity)
        return self._rate_plan.unit_rates

    def _structure(self, model: HATModule) -> None:
        """Cache the masks, covered parameters and mask indices of ``model``."""
        if self._structure_of != id(model):
            self._masks = model.hat_masks()
            self._covered = model.covered_parameters()
            self._mask_index = {id(m): i for i, m in enumerate(self._masks)}
            self._structure_of = id(model)

    def _prepare_rates(self, model: HATModule) -> None:
        """Lay out the unit measures that the rates read, once per task (see :class:`RatePlan`)."""
        self._structure(model)
        self._rate_plan = RatePlan.build(model, self._covered, self._mask_index)
        self._rates_fixed = not self.mode.per_batch
        if self._rates_fixed:
            self._write_rates(self._rate_plan, None)

    def _write_rates(self, plan: RatePlan, sparsity: Tensor | None) -> None:
        """Write the rates of all slots of ``plan`` into ``plan.rates`` (docs/ALGORITHM.md §3)."""
        r = self._layer_r(sparsity)
        if isinstance(r, Tensor) and r.dim() == 1:
            r = r[plan.slot_layer]  # each slot reads the r_l of the layer it rates for
        rates = F.unit_rates(
            self.adjustment_mode,
            plan.cumulative,
            plan.summative,
            r=r,
            alpha=self.alpha,
            num_previous_tasks=self.num_previous_tasks,
        )
        plan.rates.copy_(rates)

    def _layer_r(self, sparsity: Tensor | None) -> Tensor | float:
        return 1.0  # HAT modes do not use r

    @torch.no_grad()
    def rate_sums(self, model: HATModule) -> list[tuple[CoveredParameter, Tensor, int]]:
        """Per covered parameter: the sum of its entries' rates this step and their
        number, without building the parameter-sized rate (rates drawn at random
        counted as 1 where free, 0 where used; see :meth:`AdjustmentMode.counted_rate`)."""
        sums = []
        for r in self.current_unit_rates(model):
            pair_sum, pairs = F.mean_outer_max(r.out_rate, r.in_rate)
            kernel = r.covered.param.numel() // pairs  # a conv's kernel positions
            sums.append((r.covered, pair_sum * kernel, pairs * kernel))
        return sums

    @torch.no_grad()
    def network_capacity(self, model: HATModule) -> Tensor:
        """Mean adjustment rate over all covered parameters (AdaHAT Sec. 4.1).

        1 on the first task. For ``hat_random`` the random rate on a used
        parameter is counted at its expectation, 0.5.
        """
        if not self.protection_active:
            return torch.ones(())
        sums = self.rate_sums(model)
        total = sum(s for _, s, _ in sums)
        return self.mode.counted_rate(total / sum(n for _, _, n in sums))

    def _warn_about_optimizer(self, optimizer) -> None:
        reason = None if self._warned else gradient_mode_caveat(optimizer, self.protect, self.mode)
        if reason:
            self._warned = True
            warnings.warn(
                f"protect='gradient': {reason}; use protect='update' to apply the rate to the "
                "optimizer's update instead",
                stacklevel=3,
            )


class AdaHATPlugin(HATPlugin, supports_distributed=True):
    """AdaHAT (Wang et al., ECML PKDD 2024) as an Avalanche plugin.

    :class:`HATPlugin` with an :class:`~avalanche_adahat.core.config.AdaHATConfig`
    (AdaHAT's adjustment modes, ``adjustment_intensity``, ``epsilon``, and its
    defaults: ``mask_sparsity_reg_factor`` 0.1, ``protect="update"``). The
    paper's configuration: ``AdaHATPlugin(**PAPER_ADAHAT)``.
    """

    config_class = AdaHATConfig

    def before_training(self, strategy, **kwargs):
        super().before_training(strategy, **kwargs)
        if self.config.adjustment_intensity is None:
            self.adjustment_intensity = default_adjustment_intensity(
                strategy.optimizer, self.protect
            )

    def _write_rates(self, plan, sparsity):
        if self.adjustment_mode != "adahat" or sparsity is None:
            return super()._write_rates(plan, sparsity)
        # Eqs. 8-9 on every slot, each with its layer's R_l; the terms that do not
        # depend on R_l are fixed for the task.
        key = (self.adjustment_intensity, self.epsilon)
        if plan.adahat_terms is None or plan.adahat_terms[0] != key:
            plan.adahat_terms = (key, *F.adahat_rate_terms(plan.summative, *key))
        F.adahat_rates_from_terms(*plan.adahat_terms[1:], sparsity[plan.slot_layer], out=plan.rates)

    def _layer_r(self, sparsity):
        if not self.mode.per_batch or sparsity is None:  # adahat_no_reg: r = alpha / epsilon
            return F.adahat_r(self.adjustment_intensity, 0.0, self.epsilon)
        return F.adahat_r(self.adjustment_intensity, sparsity, self.epsilon)  # one r_l per layer


def _unwrap(model):
    """``model`` without a ``DistributedDataParallel`` wrapper (no checks: per-step hooks)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.module
    return model


def _hat_model(model) -> HATModule:
    """The HAT backbone behind ``model`` (unwrapping ``DistributedDataParallel``), checked."""
    model = _unwrap(model)
    if not isinstance(model, HATModule):
        raise TypeError(
            f"model must be a HAT backbone (an avalanche_adahat.nn.module.HATModule such as "
            f"avalanche_adahat.models.HATMLP) with HAT masks, got {type(model).__name__}"
        )
    if not model.hat_masks():
        raise TypeError(f"model {type(model).__name__} has no HAT masks (HATMask modules)")
    return model
