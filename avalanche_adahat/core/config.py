"""The HAT and AdaHAT hyperparameters: one checked, frozen dataclass each.

:class:`HATConfig` and :class:`AdaHATConfig` are what the plugins, the strategies
and ``compare`` share: a plugin or strategy takes one (``config=``) or its fields
as keywords. Every hyperparameter check runs here, when the config is made, so bad
input fails before anything trains, naming the parameter, the value and what is
allowed.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

from . import task_rules as TI
from .checks import (
    check_bool,
    check_non_negative,
    check_non_negative_int,
    check_one_of,
    check_positive,
    check_positive_int,
    check_unit_interval,
)
from .functional import ADAHAT_MODES, HAT_MODES, INIT_MODES, REG_MODES
from .modes import MODES

__all__ = ["PAPER_ADAHAT", "PROTECT_MODES", "TASK_ID_MODES", "AdaHATConfig", "HATConfig"]

#: ``gradient``: the rate scales the gradient (the papers); ``update``: it scales
#: the change the optimizer made (the same under any optimizer, docs/ALGORITHM.md §6).
PROTECT_MODES = ("gradient", "update")
#: ``given``: the experiences' task labels; ``per_experience``: each training
#: experience is a new task labelled by its index (streams without task labels).
TASK_ID_MODES = ("given", "per_experience")
#: What ``AdaHATConfig.adjustment_intensity`` is per: every optimizer step (the paper's
#: alpha) or the whole task (divided by the task's planned optimizer steps).
INTENSITY_UNITS = ("step", "task")
#: ``input_space=None`` fuses the input space where an input has at most this many values.
INPUT_SPACE_AUTO_FEATURES = 1024


@dataclass(frozen=True)
class HATConfig:
    """HAT's hyperparameters (Serra et al., ICML 2018).

    :param adjustment_mode: how backbone gradients are adjusted (docs/ALGORITHM.md §3):
        ``"hat"`` (HAT Eq. 2: zero on parameters used by earlier tasks),
        ``"hat_random"`` (uniform(0, 1) there), ``"hat_const_alpha"``
        (``alpha`` there), ``"hat_const_1"`` (no constraint). The AdaHAT
        modes are in :class:`AdaHATConfig`.
    :param s_max: maximum gate scale ``s_max`` (HAT Sec. 2.4). Default 400.
    :param clamp_threshold: ``c`` of the embedding-gradient compensation
        ``cosh(clamp(s e, -c, c))`` (HAT Sec. 2.5). Default 50.
    :param mask_sparsity_reg_factor: weight of the mask sparsity regulariser
        (HAT Eq. 5, ``c`` in the paper). Default 0.75 (HAT paper).
    :param mask_sparsity_reg_mode: ``"original"`` (HAT Eq. 5) or ``"cross"``
        (its average with a reward for reusing earlier tasks' units).
    :param task_embedding_init_mode: initialisation of a new task's
        embedding: ``"N01"``, ``"U-11"``, ``"U01"``, ``"U-10"`` or ``"last"``
        (copy the previous task's embedding).
    :param alpha: the constant rate of ``"hat_const_alpha"``, in [0, 1];
        required by that mode and rejected by the others.
    :param embedding_clamp: if set, clamp the training task's embedding to
        ``[-embedding_clamp, embedding_clamp]`` after each step (the original
        HAT code uses 6). Default ``None``: no clamp.
    :param clip_grad_norm: if set, clip the gradient norm of all parameters
        after the adjustment (the original HAT code uses 10000).
    :param protect: ``"gradient"`` (default, as in the papers): the rate
        multiplies the gradient before the optimizer step. ``"update"``: the
        rate multiplies the change the optimizer made to each parameter, so
        that protection means the same under momentum, weight decay and
        adaptive optimizers (docs/ALGORITHM.md §6).
    :param sparsity_guard_units: a sparsity ratio whose denominator counts
        this many units or fewer is taken as 0 (the reference's guard). Default 10.
    :param check_finite: raise ``FloatingPointError`` when the loss is NaN or
        infinite, before it can corrupt parameters or masks (costs one device
        sync per step). Default ``True``.
    :param compile_step: run the parameter-sized maths of each step (the rates
        applied to gradients or updates) through ``torch.compile``
        (:mod:`avalanche_adahat.core.step`): one fused pass per parameter. Pays on long
        runs of large models: compiling takes 2-3 s per model
        (``plugin.step_maths.compile_seconds``) and on the HAT paper's 784-2000-2000 MLP
        saved 3-10 ms per step, so from about 230-850 steps per task
        (docs/PERFORMANCE.md). Equal to eager to float rounding; entries whose rate is 0
        stay bitwise unchanged either way. Default ``False``.
    :param task_ids: ``"given"`` (the experiences' task labels) or
        ``"per_experience"`` (class-incremental streams: each training experience
        is a new task; see docs/CLASS_INCREMENTAL.md).
    :param task_inference: predict each evaluation sample's task with this rule
        (one of :data:`avalanche_adahat.core.task_rules.RULES`); ``None`` reads the
        task labels, except with ``task_ids="per_experience"``, where it means the
        default rule.
    :param calibrate_task_inference: shift each task's logit-rule score by its mean
        on the task's training data; ``None``: on with ``task_ids="per_experience"``
        and a logit rule (:data:`~avalanche_adahat.core.task_rules.LOGIT_RULES`), off
        otherwise. The feature rules (``"lda_cascade"``, the default, and
        ``"mahalanobis"``) need none.
    :param cov_rank: with a feature rule, keep each task space's covariance as its
        ``cov_rank`` leading eigenpairs plus an isotropic rest (``d·k + k + 1``
        float64 values instead of ``d²``); ``None`` (default): the full covariance.
        The input space keeps the same rank.
    :param input_space: with ``task_inference="lda_cascade"``, multiply each task's
        probability by the task posterior of a linear discriminant on the raw
        inputs (flattened) over every class seen, gathered at each task's end like
        the task spaces (docs/ALGORITHM.md §10.3); ``None`` (default): on where an
        input has at most :data:`INPUT_SPACE_AUTO_FEATURES` values (its full
        covariance then holds at most 8 MiB), off for larger inputs.
    """

    adjustment_mode: str = "hat"
    s_max: float = 400.0
    clamp_threshold: float = 50.0
    mask_sparsity_reg_factor: float = 0.75
    mask_sparsity_reg_mode: str = "original"
    task_embedding_init_mode: str = "N01"
    alpha: float | None = None
    embedding_clamp: float | None = None
    clip_grad_norm: float | None = None
    protect: str = "gradient"
    sparsity_guard_units: int = 10
    check_finite: bool = True
    compile_step: bool = False
    task_ids: str = "given"
    task_inference: str | None = None
    calibrate_task_inference: bool | None = None
    cov_rank: int | None = None
    input_space: bool | None = None

    #: The ``adjustment_mode`` values this config takes.
    allowed_modes: ClassVar[tuple[str, ...]] = HAT_MODES
    #: Fields that may be ``None``: chosen when training starts (AdaHAT's, by optimizer).
    chosen_at_training: ClassVar[tuple[str, ...]] = ()
    #: The task-inference rule of ``task_ids="per_experience"`` when none is named.
    default_task_inference: ClassVar[str] = TI.DEFAULT_RULE

    def __post_init__(self) -> None:
        check_one_of("adjustment_mode", self.adjustment_mode, self.allowed_modes)
        check_positive("s_max", self.s_max)
        check_positive("clamp_threshold", self.clamp_threshold)
        if not self._left_for_training("mask_sparsity_reg_factor"):
            check_non_negative("mask_sparsity_reg_factor", self.mask_sparsity_reg_factor)
        check_one_of("mask_sparsity_reg_mode", self.mask_sparsity_reg_mode, REG_MODES)
        if not self._left_for_training("task_embedding_init_mode"):
            check_one_of("task_embedding_init_mode", self.task_embedding_init_mode, INIT_MODES)
        check_one_of("protect", self.protect, PROTECT_MODES)
        check_non_negative_int("sparsity_guard_units", self.sparsity_guard_units)
        check_bool("check_finite", self.check_finite)
        check_bool("compile_step", self.compile_step)
        if MODES[self.adjustment_mode].needs_alpha:
            check_unit_interval(
                "alpha", self.alpha, f" with adjustment_mode={self.adjustment_mode!r}"
            )
        elif self.alpha is not None:
            raise ValueError(
                f"alpha is only used by adjustment_mode='hat_const_alpha', got "
                f"alpha={self.alpha!r} with adjustment_mode={self.adjustment_mode!r}"
            )
        for name in ("embedding_clamp", "clip_grad_norm"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        self._check_task_ids()
        for name in ("s_max", "clamp_threshold", "mask_sparsity_reg_factor"):
            if not self._left_for_training(name):
                object.__setattr__(self, name, float(getattr(self, name)))

    def _left_for_training(self, name: str) -> bool:
        """Whether field ``name`` is ``None``, to be chosen when training starts."""
        return name in self.chosen_at_training and getattr(self, name) is None

    def _check_task_ids(self) -> None:
        """Check the task-identity fields and resolve their ``None`` defaults."""
        check_one_of("task_ids", self.task_ids, TASK_ID_MODES)
        check_one_of("task_inference", self.task_inference, (None, *TI.RULES))
        if self.calibrate_task_inference is not None:
            check_bool("calibrate_task_inference", self.calibrate_task_inference)
        per_experience = self.task_ids == "per_experience"
        if per_experience and self.task_inference is None:
            object.__setattr__(self, "task_inference", self.default_task_inference)
        if self.cov_rank is not None:
            check_positive_int("cov_rank", self.cov_rank)
            if self.task_inference not in TI.FEATURE_RULES:
                raise ValueError(
                    f"cov_rank={self.cov_rank!r} needs a feature rule as task_inference (one "
                    f"of {TI.FEATURE_RULES}), got task_inference={self.task_inference!r}"
                )
        if self.input_space is not None:
            check_bool("input_space", self.input_space)
            fusing = [n for n, d in TI.descriptions().items() if d.fuses_input_space]
            if self.input_space and self.task_inference not in fusing:
                raise ValueError(
                    f"input_space=True fuses the input space into a task_inference of {fusing}, "
                    f"got task_inference={self.task_inference!r}"
                )
        logit_rule = self.task_inference in TI.LOGIT_RULES
        if self.calibrate_task_inference is None:  # on where a logit rule needs it
            object.__setattr__(self, "calibrate_task_inference", per_experience and logit_rule)
        if self.calibrate_task_inference and not logit_rule:
            raise ValueError(
                "calibrate_task_inference=True needs a logit rule as task_inference (one of "
                f"{TI.LOGIT_RULES}), got task_inference={self.task_inference!r}"
            )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_arguments(cls, config: HATConfig | None, hyperparameters: dict[str, Any]):
        """``config`` as given, or one made from ``hyperparameters`` (not both)."""
        if config is None:
            return cls(**hyperparameters)
        if not isinstance(config, cls):
            raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
        if hyperparameters:
            raise ValueError(
                f"give either config= or hyperparameters as keywords, not both (got config "
                f"and {sorted(hyperparameters)}); use config.replace(...) to change a field"
            )
        return config

    def replace(self, **changes):
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class AdaHATConfig(HATConfig):
    """AdaHAT's hyperparameters (Wang et al., ECML PKDD 2024): :class:`HATConfig`'s
    (with ``protect`` ``"update"``, and the first mask and regulariser factor chosen by
    optimizer, below) and:

    :param adjustment_mode: ``"adahat"`` (AdaHAT Eqs. 8-9: rate
        ``r_l / (S + r_l)`` with ``r_l = adjustment_intensity / (epsilon + R_l)``),
        ``"adahat_no_sum"`` (ablation: the number of earlier tasks instead of
        the summative mask, on parameters used by an earlier task; 1 elsewhere.
        This is the form of the paper's ablation code, not the reference
        module's, which throttles every parameter by the 1-based task number),
        ``"adahat_no_reg"`` (ablation: ``r = adjustment_intensity / epsilon``).
    :param adjustment_intensity: ``alpha`` of AdaHAT Eq. 9, > 0, per step or per task
        (``intensity_per``). Default ``None``: chosen when training starts, by optimizer
        family: per task from
        :data:`~avalanche_adahat.core.optimizers.DEFAULT_TASK_INTENSITY` (20 for both
        families; docs/ROBUSTNESS_GRID.md); per step from
        :data:`~avalanche_adahat.core.optimizers.DEFAULT_ADJUSTMENT_INTENSITY` by optimizer
        family and ``protect`` mode (1e-2 for SGD-like optimizers and for
        ``protect="update"``, 1e-7 for adaptive optimizers with
        ``protect="gradient"``), from measured sweeps (docs/INTENSITY_SWEEP.md,
        docs/ADAHAT_STUDY.md). The AdaHAT paper used 1e-6 with Adam; under plain
        SGD so small a value makes AdaHAT behave almost exactly like HAT (docs/ALGORITHM.md §8).
    :param intensity_per: ``"task"``: ``adjustment_intensity`` is an intensity per
        task, and each step of a task planned for ``N`` optimizer steps (``train_epochs``
        times the batches of its data loader) uses ``alpha = adjustment_intensity / N``,
        so that the drift a used parameter accumulates over a task does not grow with
        the schedule's length (docs/ALGORITHM.md §8, docs/ROBUSTNESS_GRID.md).
        ``"step"``: it is Eq. 9's ``alpha`` at every optimizer step, as in the paper.
        Default ``None``: ``"task"`` with ``protect="update"``, ``"step"`` with
        ``protect="gradient"``.
    :param task_embedding_init_mode: as in :class:`HATConfig`. Default ``None``: chosen
        when training starts (:data:`~avalanche_adahat.core.optimizers.DEFAULT_MASK_SETTINGS`):
        with ``intensity_per="task"`` under an SGD-like optimizer ``"U01"`` (every unit of
        a new task starts on), otherwise ``"N01"`` as in the paper.
    :param mask_sparsity_reg_factor: as in :class:`HATConfig`. Default ``None``: chosen
        with ``task_embedding_init_mode``: 0.75 (HAT's) with ``"U01"`` under an SGD-like
        optimizer, otherwise 0.1 as in AdaHAT Exp. 1. Measured on the robustness grid: under
        plain SGD the wide first mask and the sparser masks beat max(HAT, Naive) in every
        SGD cell, where ``"N01"`` with 0.1 fell short in two (docs/ROBUSTNESS_GRID.md); under
        Adam ``"U01"`` forgets on split digits.
    :param epsilon: added to the network sparsity in Eq. 9, > 0. Default 0.1.
    :param protect: default ``"update"``: the rate scales the optimizer's change of
        each parameter, so AdaHAT's soft rates mean the same under Adam as under
        SGD (under plain SGD both modes are the same update). Measured on Permuted
        Fashion-MNIST, 20 tasks, Adam (docs/ADAHAT_STUDY.md): ``update`` beats the
        paper's ``gradient`` with 1e-6. The paper's
        configuration is :data:`PAPER_ADAHAT`. Cost: under plain SGD the gradient is
        scaled (no extra memory); under other optimizers one copy of the covered
        parameters is kept for the task (docs/PERFORMANCE.md).
    """

    adjustment_mode: str = "adahat"
    mask_sparsity_reg_factor: float | None = None  # type: ignore[assignment]
    task_embedding_init_mode: str | None = None  # type: ignore[assignment]
    protect: str = "update"
    adjustment_intensity: float | None = None
    intensity_per: str | None = None
    epsilon: float = 0.1

    allowed_modes: ClassVar[tuple[str, ...]] = ADAHAT_MODES
    chosen_at_training: ClassVar[tuple[str, ...]] = (
        "mask_sparsity_reg_factor",
        "task_embedding_init_mode",
    )
    #: AdaHAT moves earlier tasks' networks a little, so feature statistics gathered
    #: when a task ended go stale (benchmarks/cil_drift.py: class-incremental Split
    #: FMNIST, lda_cascade 0.83 with HAT, 0.22 with AdaHAT's stored statistics): its
    #: default rule reads the heads' logits (calibrated entropy) instead.
    default_task_inference: ClassVar[str] = "entropy"

    def __post_init__(self) -> None:
        if self.alpha is not None:
            raise ValueError(
                "alpha belongs to HATPlugin(adjustment_mode='hat_const_alpha'); AdaHAT's "
                "intensity is adjustment_intensity"
            )
        super().__post_init__()
        if self.adjustment_intensity is not None:
            check_positive("adjustment_intensity", self.adjustment_intensity)
            object.__setattr__(self, "adjustment_intensity", float(self.adjustment_intensity))
        check_positive("epsilon", self.epsilon)
        object.__setattr__(self, "epsilon", float(self.epsilon))
        check_one_of("intensity_per", self.intensity_per, (None, *INTENSITY_UNITS))
        if self.intensity_per is None:
            unit = "task" if self.protect == "update" else "step"
            object.__setattr__(self, "intensity_per", unit)

        if self.task_inference in TI.FEATURE_RULES:
            warnings.warn(
                f"task_inference={self.task_inference!r} with AdaHAT: AdaHAT's soft rates move "
                "earlier tasks' networks, so the feature statistics stored when each task "
                "ended drift from what the final model computes (class-incremental Split "
                "FMNIST: task-id accuracy 0.83 with HAT, 0.22 with AdaHAT; "
                "docs/CLASS_INCREMENTAL.md). Use HAT, or a logit rule such as 'entropy'.",
                UserWarning,
                stacklevel=4,
            )


#: The AdaHAT paper's configuration (Exp. 1: Adam lr 1e-3, alpha 1e-6, epsilon 0.1,
#: reg factor 0.1, the rate on the gradient): ``AdaHAT(..., **PAPER_ADAHAT)``.
PAPER_ADAHAT = {
    "protect": "gradient",
    "adjustment_intensity": 1e-6,
    "intensity_per": "step",
    "epsilon": 0.1,
    "mask_sparsity_reg_factor": 0.1,
    "task_embedding_init_mode": "N01",
}
