"""Avalanche plugins running HAT and AdaHAT inside any ``SupervisedTemplate``.

Each hook does one thing (docs/ALGORITHM.md §5 gives the order inside an iteration):

- ``before_training``: check the model, hand it ``s_max`` and the init mode;
- ``before_training_exp``: check the task label, reset the optimizer state,
  prepare the rate factors that are fixed for the whole task;
- ``before_training_epoch`` / ``before_training_iteration``: anneal ``s`` (HAT Eq. 3);
- ``before_backward``: add the mask sparsity regulariser (HAT Eq. 5);
- ``before_update``: adjust backbone gradients (HAT Eq. 2 / AdaHAT Eq. 8; under
  plain SGD inside the optimizer's step, :mod:`.sgd_step`), compensate embedding
  gradients (HAT Sec. 2.5), clip;
- ``after_update``: optional embedding clamp, ``protect="update"`` blending;
- ``after_training_exp``: store ``M^t`` and update ``M^{<t}`` and ``S^{<t}``.

The hooks delegate: the task's state and its steps to :class:`.TaskState`, the
rates to :class:`.AdjustmentRates`, the subnormal flush to
:class:`~avalanche_adahat.core.subnormals.SubnormalFlush`, the parameter-sized maths
to :class:`~avalanche_adahat.core.step.StepMaths`, the checks to :mod:`.composition`.
"""

from __future__ import annotations

import math
import warnings

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor

from ..core._warnings import warn_at_caller
from ..core.config import INPUT_SPACE_AUTO_FEATURES, PAPER_ADAHAT, AdaHATConfig, HATConfig
from ..core.modes import MODES, AdjustmentMode
from ..core.optimizers import (
    DEFAULT_ADJUSTMENT_INTENSITY,
    default_adjustment_intensity,
    default_mask_settings,
    gradient_mode_caveat,
    update_is_scaled_gradient,
)
from ..core.step import StepMaths
from ..core.subnormals import SubnormalFlush
from ..core.task_rules import describe
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
from .rate_plan import UnitRates
from .rates import AdjustmentRates
from .sgd_step import RatedSGDStep
from .task_state import TaskAttribute, TaskState

__all__ = [
    "DEFAULT_ADJUSTMENT_INTENSITY",
    "PAPER_ADAHAT",
    "AdaHATPlugin",
    "HATPlugin",
    "default_adjustment_intensity",
]


class HATPlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """HAT (Serra et al., ICML 2018) as an Avalanche plugin.

    The model must be a :class:`~avalanche_adahat.nn.module.HATModule` (for
    example :class:`~avalanche_adahat.models.HATMLP`), and every training
    experience must carry one task label not trained before.

    Takes a :class:`~avalanche_adahat.core.config.HATConfig` (``config``) or its
    fields as keywords (documented there), e.g. ``HATPlugin(s_max=400)``. The
    plugin's attributes of the same names start as the config's values.

    The task being trained is :attr:`task` (a :class:`.TaskState`, made anew at the
    start of every task); its label, step counters, gate scale and layer sparsity
    are also attributes of the plugin.
    """

    config_class: type[HATConfig] = HATConfig

    task_label = TaskAttribute()  # t, None before the first task
    task_steps = TaskAttribute()  # optimizer steps taken in the current task
    num_previous_tasks = TaskAttribute()  # trained tasks before the current one
    num_batches = TaskAttribute()  # B, minibatches of the current epoch (HAT Eq. 3)
    batch = TaskAttribute()  # b, the current minibatch, 1-based
    s = TaskAttribute()  # the annealed gate scale of the current step (HAT Eq. 3)
    #: ``[R_1, ..., R_L]`` of the last training batch (HAT Sec. 2.6), or ``None``.
    layer_sparsity = TaskAttribute()

    def __init__(self, config: HATConfig | None = None, **hyperparameters):
        super().__init__()
        self.config = self.config_class.from_arguments(config, hyperparameters)
        for name in self.config.field_names():
            setattr(self, name, getattr(self.config, name))
        self._warned = False
        self._warned_untrained: set[int] = set()
        self._warned_short = False  # the short-schedule hint, given once
        self.flush = SubnormalFlush()
        self.step_maths = StepMaths(self.compile_step)
        self.rates = AdjustmentRates(self)
        self.sgd_step = RatedSGDStep()
        self.task = TaskState(self.s_max)

    @property
    def mode(self) -> AdjustmentMode:
        """The adjustment mode's object (:mod:`avalanche_adahat.core.modes`)."""
        return MODES[self.adjustment_mode]

    @property
    def protection_active(self) -> bool:
        """Whether any rate can differ from 1 in the current task."""
        return self.rates.protection_active(self.task)

    @property
    def per_experience(self) -> bool:
        return self.task_ids == "per_experience"

    # ------------------------------------------------------------------ hooks
    def before_training(self, strategy, **kwargs):
        self.flush.start()
        self.flush.guard_epochs(strategy)
        model = _hat_model(strategy.model)
        check_strategy(strategy, HATPlugin, self.per_experience)
        model.begin_training(self.s_max, self.task_embedding_init_mode)
        self._warn_about_optimizer(strategy.optimizer)

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
        check_optimizer_holds(strategy.optimizer, model, task_label)
        # Momentum or Adam moments from the last task must not move parameters
        # that are protected from now on (docs/ALGORITHM.md §6).
        strategy.optimizer.state.clear()
        self.task = TaskState.begin(model, task_label, self.s_max)
        self.task.build_sparsity_map(
            model,
            self.mask_sparsity_reg_mode,
            self.sparsity_guard_units,
            self.mask_sparsity_reg_factor,
        )
        self.rates.prepare(self.task, model)

    def before_training_epoch(self, strategy, **kwargs):
        self.task.start_epoch(len(strategy.dataloader))
        if self.task_steps == 0 and not self._warned_short:
            self._warned_short = warn_short_schedule(
                self.task_label, self.num_batches, strategy.train_epochs
            )

    def before_training_iteration(self, strategy, **kwargs):
        self.task.start_step(_unwrap(strategy.model), self.s_max)
        self.flush.begin()

    def after_training_iteration(self, strategy, **kwargs):
        self.task.end_step(_unwrap(strategy.model))
        self.sgd_step.disarm()  # a step that never ran (e.g. skipped by a GradScaler)
        self.flush.end()

    def after_training(self, strategy, **kwargs):
        self.flush.unguard_epochs(strategy)

    def before_backward(self, strategy, **kwargs):
        loss = strategy.loss
        if self.check_finite and not math.isfinite(loss.item()):
            self.flush.end()
            raise FloatingPointError(
                f"non-finite loss {loss.detach().cpu().tolist()} in experience "
                f"{strategy.experience.current_experience}, batch {self.batch}: stopping before it "
                "corrupts parameters or masks (lower the learning rate or clip gradients)"
            )
        regulariser = self.task.sparsity_regulariser()
        if self.mask_sparsity_reg_factor > 0:
            strategy.loss = loss + regulariser  # HAT Eq. 5

    def before_update(self, strategy, **kwargs):
        # Under plain SGD the change is -lr * grad: the optimizer's step applies the
        # rates (RatedSGDStep), after any clipping, which sees the gradients unscaled
        # under protect="update" (as the snapshot path's does) and scaled under
        # protect="gradient" (so that case keeps scaling the gradients first).
        in_sgd_step = update_is_scaled_gradient(strategy.optimizer) and (
            self.protect == "update" or self.clip_grad_norm is None
        )
        with torch.no_grad():
            self.task.hold_trained_private(zero_grads=self.protect == "gradient" or in_sgd_step)
            rates = self.rates.adjust_step(self.task, _unwrap(strategy.model), in_sgd_step)
            self.task.compensate_embedding_grads(self.s_max, self.clamp_threshold)
        if self.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(strategy.model.parameters(), self.clip_grad_norm)
        if rates is not None:
            optimizer = strategy.optimizer
            self.sgd_step.arm(optimizer, lambda: self.rates.sgd_step(rates, optimizer))

    def after_update(self, strategy, **kwargs):
        self.task.after_update(self.step_maths, self.embedding_clamp)

    def before_eval(self, strategy, **kwargs):
        self.flush.end()
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
        self.task.end()
        self.step_maths.release()
        model.store_task_masks(self.task_label)
        model.set_step_gates(None, None)
        self._store_task_inference_statistics(model, strategy.experience.dataset)

    def _store_task_inference_statistics(self, model: HATModule, dataset) -> None:
        """What task inference needs of the task just trained (docs/ALGORITHM.md §10)."""
        if self.calibrate_task_inference:
            means = TI.score_statistics(model, dataset, self.task_label)
            model.store_task_calibration(self.task_label, means)
        rule = None if self.task_inference is None else describe(self.task_inference)
        if rule is not None and rule.uses_features:
            # a cascade: this task's data in every frozen task network so far
            cascade = rule.cascade
            spaces = model.trained_tasks() if cascade else [self.task_label]
            update_statistics(
                model,
                model.feature_statistics(self.cov_rank),
                dataset,
                self.task_label,
                spaces,
                input_statistics=self._input_statistics(model, dataset),
            )

    def _input_statistics(self, model, dataset):
        """The input space's statistics to update (``input_space``), or ``None``."""
        fuses = self.task_inference is not None and describe(self.task_inference).fuses_input_space
        if not fuses or self.input_space is False:
            return None
        if self.input_space is None and dataset[0][0].numel() > INPUT_SPACE_AUTO_FEATURES:
            return None
        return model.feature_statistics(self.cov_rank, name="input_statistics")

    # ------------------------------------------------------------------ rates
    def current_unit_rates(self, model: HATModule) -> list[UnitRates]:
        """The unit-sized rate factors of every covered parameter for this step."""
        return self.rates.current_unit_rates(self.task, model)

    def rate_sums(self, model: HATModule) -> list[tuple[CoveredParameter, Tensor, int]]:
        """Per covered parameter: the sum of its entries' rates this step and their
        number (see :meth:`.AdjustmentRates.rate_sums`)."""
        return self.rates.rate_sums(self.task, model)

    def network_capacity(self, model: HATModule) -> Tensor:
        """Mean adjustment rate over all covered parameters (AdaHAT Sec. 4.1).

        1 on the first task. For ``hat_random`` the random rate on a used
        parameter is counted at its expectation, 0.5.
        """
        return self.rates.network_capacity(self.task, model)

    def _warn_about_optimizer(self, optimizer) -> None:
        reason = None if self._warned else gradient_mode_caveat(optimizer, self.protect, self.mode)
        if reason:
            self._warned = True
            warnings.warn(
                f"protect='gradient': {reason}; use protect='update' to apply the rate to the "
                "optimizer's update instead",
                stacklevel=3,
            )


class AdaHATPlugin(HATPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """AdaHAT (Wang et al., ECML PKDD 2024) as an Avalanche plugin.

    :class:`HATPlugin` with an :class:`~avalanche_adahat.core.config.AdaHATConfig`
    (AdaHAT's adjustment modes, ``adjustment_intensity``, ``epsilon``, and its
    defaults: ``protect="update"``; the intensity, the first mask and the regulariser
    factor by optimizer family). The paper's configuration:
    ``AdaHATPlugin(**PAPER_ADAHAT)``. Its modes' rates read ``adjustment_intensity`` and
    ``epsilon`` (:meth:`.AdjustmentRates.layer_r`). The attribute ``intensity`` is the
    intensity in use (configured, or the default for the optimizer),
    ``adjustment_intensity`` the per-step ``alpha``: with ``intensity_per="task"`` the
    intensity over the planned steps of the task being trained. The fields left ``None``
    (``adjustment_intensity``, ``task_embedding_init_mode``, ``mask_sparsity_reg_factor``)
    are chosen when training starts and set as attributes.
    """

    config_class = AdaHATConfig

    def before_training(self, strategy, **kwargs):
        self._choose_defaults(strategy.optimizer)
        super().before_training(strategy, **kwargs)

    def _choose_defaults(self, optimizer) -> None:
        """The fields left ``None``, chosen for ``optimizer``'s family
        (:mod:`avalanche_adahat.core.optimizers`, docs/ALGORITHM.md §8)."""
        self.intensity = self.config.adjustment_intensity  # per step or per task, as configured
        if self.intensity is None:
            self.intensity = default_adjustment_intensity(
                optimizer, self.protect, self.intensity_per
            )
        self.adjustment_intensity = self.intensity
        for name, value in default_mask_settings(optimizer, self.intensity_per).items():
            if getattr(self.config, name) is None:
                setattr(self, name, value)

    def before_training_exp(self, strategy, **kwargs):
        if self.intensity_per == "task":  # alpha per step: the task's intensity / its steps
            steps = len(strategy.dataloader) * strategy.train_epochs
            self.adjustment_intensity = self.intensity / max(steps, 1)
        super().before_training_exp(strategy, **kwargs)


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
