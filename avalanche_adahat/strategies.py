"""``HAT`` and ``AdaHAT``: ``SupervisedTemplate`` wrappers, in the style of Avalanche's ``EWC``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.plugins.evaluation import default_evaluator
from avalanche.training.templates import SupervisedTemplate
from torch.nn import CrossEntropyLoss, Module
from torch.optim import Optimizer

from .plugins import AdaHATPlugin, HATPlugin, _hat_model

__all__ = ["AdaHAT", "HAT"]


class HAT(SupervisedTemplate):
    """Hard Attention to the Task (Serra et al., ICML 2018).

    A ``SupervisedTemplate`` with a :class:`~avalanche_adahat.HATPlugin`
    (``self.hat_plugin``); the HAT keywords are documented there. The model
    must be a HAT backbone such as :class:`~avalanche_adahat.models.HATMLP`.

    The other keywords are Avalanche's: ``criterion`` (default
    ``CrossEntropyLoss()``), ``train_mb_size``, ``train_epochs``,
    ``eval_mb_size``, ``device``, ``plugins`` (the caller's list is not
    modified), ``evaluator``, ``eval_every`` and any ``BaseTemplate`` keyword.
    """

    def __init__(
        self,
        *,
        model: Module,
        optimizer: Optimizer,
        criterion=None,
        adjustment_mode: str = "hat",
        s_max: float = 400.0,
        clamp_threshold: float = 50.0,
        mask_sparsity_reg_factor: float = 0.75,
        mask_sparsity_reg_mode: str = "original",
        task_embedding_init_mode: str = "N01",
        alpha: float | None = None,
        embedding_clamp: float | None = None,
        clip_grad_norm: float | None = None,
        protect: str = "gradient",
        sparsity_guard_units: int = 10,
        check_finite: bool = True,
        task_ids: str = "given",
        task_inference: str | None = None,
        calibrate_task_inference: bool | None = None,
        train_mb_size: int = 64,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins: Sequence[SupervisedPlugin] | None = None,
        evaluator: EvaluationPlugin | Callable[[], EvaluationPlugin] = default_evaluator,
        eval_every: int = -1,
        **base_kwargs,
    ):
        hat_plugin = HATPlugin(
            adjustment_mode=adjustment_mode,
            s_max=s_max,
            clamp_threshold=clamp_threshold,
            mask_sparsity_reg_factor=mask_sparsity_reg_factor,
            mask_sparsity_reg_mode=mask_sparsity_reg_mode,
            task_embedding_init_mode=task_embedding_init_mode,
            alpha=alpha,
            embedding_clamp=embedding_clamp,
            clip_grad_norm=clip_grad_norm,
            protect=protect,
            sparsity_guard_units=sparsity_guard_units,
            check_finite=check_finite,
            task_ids=task_ids,
            task_inference=task_inference,
            calibrate_task_inference=calibrate_task_inference,
        )
        _init_template(
            self, hat_plugin, model, optimizer, criterion, train_mb_size, train_epochs,
            eval_mb_size, device, plugins, evaluator, eval_every, base_kwargs,
        )  # fmt: skip


class AdaHAT(SupervisedTemplate):
    """Adaptive Hard Attention to the Task (Wang et al., ECML PKDD 2024).

    A ``SupervisedTemplate`` with an :class:`~avalanche_adahat.AdaHATPlugin`
    (``self.hat_plugin``); the keywords are documented there and in
    :class:`~avalanche_adahat.HATPlugin`. Other keywords as in :class:`HAT`.
    """

    def __init__(
        self,
        *,
        model: Module,
        optimizer: Optimizer,
        criterion=None,
        adjustment_mode: str = "adahat",
        adjustment_intensity: float | None = None,
        epsilon: float = 0.1,
        s_max: float = 400.0,
        clamp_threshold: float = 50.0,
        mask_sparsity_reg_factor: float = 0.1,
        mask_sparsity_reg_mode: str = "original",
        task_embedding_init_mode: str = "N01",
        embedding_clamp: float | None = None,
        clip_grad_norm: float | None = None,
        protect: str = "update",
        sparsity_guard_units: int = 10,
        check_finite: bool = True,
        task_ids: str = "given",
        task_inference: str | None = None,
        calibrate_task_inference: bool | None = None,
        train_mb_size: int = 64,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins: Sequence[SupervisedPlugin] | None = None,
        evaluator: EvaluationPlugin | Callable[[], EvaluationPlugin] = default_evaluator,
        eval_every: int = -1,
        **base_kwargs,
    ):
        hat_plugin = AdaHATPlugin(
            adjustment_mode=adjustment_mode,
            adjustment_intensity=adjustment_intensity,
            epsilon=epsilon,
            s_max=s_max,
            clamp_threshold=clamp_threshold,
            mask_sparsity_reg_factor=mask_sparsity_reg_factor,
            mask_sparsity_reg_mode=mask_sparsity_reg_mode,
            task_embedding_init_mode=task_embedding_init_mode,
            embedding_clamp=embedding_clamp,
            clip_grad_norm=clip_grad_norm,
            protect=protect,
            sparsity_guard_units=sparsity_guard_units,
            check_finite=check_finite,
            task_ids=task_ids,
            task_inference=task_inference,
            calibrate_task_inference=calibrate_task_inference,
        )
        _init_template(
            self, hat_plugin, model, optimizer, criterion, train_mb_size, train_epochs,
            eval_mb_size, device, plugins, evaluator, eval_every, base_kwargs,
        )  # fmt: skip


def _init_template(
    strategy: SupervisedTemplate,
    hat_plugin: HATPlugin,
    model, optimizer, criterion, train_mb_size, train_epochs, eval_mb_size,
    device, plugins, evaluator, eval_every, base_kwargs,
) -> None:  # fmt: skip
    _hat_model(model)
    for p in plugins or []:
        if isinstance(p, HATPlugin):
            raise ValueError(
                f"{type(strategy).__name__} already includes its own {type(hat_plugin).__name__} "
                f"(strategy.hat_plugin); remove the {type(p).__name__} from plugins= or use "
                "Naive(plugins=[...]) with one HAT plugin"
            )
    strategy.hat_plugin = hat_plugin
    SupervisedTemplate.__init__(
        strategy,
        model=model,
        optimizer=optimizer,
        criterion=CrossEntropyLoss() if criterion is None else criterion,
        train_mb_size=train_mb_size,
        train_epochs=train_epochs,
        eval_mb_size=eval_mb_size,
        device=device,
        plugins=[*(plugins or []), hat_plugin],
        evaluator=evaluator,
        eval_every=eval_every,
        **base_kwargs,
    )
