"""``HAT`` and ``AdaHAT``: ``SupervisedTemplate`` wrappers, in the style of Avalanche's ``EWC``."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.plugins.evaluation import default_evaluator
from avalanche.training.templates import SupervisedTemplate
from torch.nn import CrossEntropyLoss, Module
from torch.optim import Optimizer

from ..core.checks import check_training_schedule
from ..core.config import AdaHATConfig, HATConfig
from .plugin import AdaHATPlugin, HATPlugin, _hat_model

__all__ = ["AdaHAT", "HAT"]


def _init_taking(config_class: type[HATConfig]):
    """The ``__init__`` of a HAT strategy, whose signature also lists the fields of
    ``config_class`` as keywords: the hyperparameters are written once, in
    :mod:`avalanche_adahat.core.config`, and Avalanche's check of misspelled keywords
    (which reads the signatures) and ``help()`` both see them."""

    def __init__(
        self,
        *,
        model: Module,
        optimizer: Optimizer,
        criterion=None,
        config: HATConfig | None = None,
        train_mb_size: int = 64,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins: Sequence[SupervisedPlugin] | None = None,
        evaluator: EvaluationPlugin | Callable[[], EvaluationPlugin] = default_evaluator,
        eval_every: int = -1,
        **kwargs,
    ):
        check_training_schedule(train_mb_size, train_epochs)
        names = config_class.field_names()
        hyperparameters = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        hat_plugin = self.plugin_class(config, **hyperparameters)
        _hat_model(model)
        for p in plugins or []:
            if isinstance(p, HATPlugin):
                raise ValueError(
                    f"{type(self).__name__} already includes its own "
                    f"{type(hat_plugin).__name__} (strategy.hat_plugin); remove the "
                    f"{type(p).__name__} from plugins= or use Naive(plugins=[...]) with one "
                    "HAT plugin"
                )
        self.hat_plugin = hat_plugin
        SupervisedTemplate.__init__(
            self,
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
            **kwargs,
        )

    signature = inspect.signature(__init__)
    *named, rest = signature.parameters.values()
    fields = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
        for f in dataclasses.fields(config_class)
    ]
    __init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*named, *fields, rest]
    )
    return __init__


class HAT(SupervisedTemplate):
    """Hard Attention to the Task (Serra et al., ICML 2018).

    A ``SupervisedTemplate`` with a :class:`~avalanche_adahat.HATPlugin`
    (``self.hat_plugin``) made from ``config`` (a
    :class:`~avalanche_adahat.core.config.HATConfig`) or from its fields given as
    keywords, e.g. ``HAT(model=..., optimizer=..., s_max=400)``. The model must be
    a HAT backbone such as :class:`~avalanche_adahat.models.HATMLP`.

    The other keywords are Avalanche's: ``criterion`` (default
    ``CrossEntropyLoss()``), ``train_mb_size``, ``train_epochs``,
    ``eval_mb_size``, ``device``, ``plugins`` (the caller's list is not
    modified), ``evaluator``, ``eval_every`` and any ``BaseTemplate`` keyword.
    """

    plugin_class: type[HATPlugin] = HATPlugin
    __init__ = _init_taking(HATConfig)


class AdaHAT(HAT):
    """Adaptive Hard Attention to the Task (Wang et al., ECML PKDD 2024).

    :class:`HAT` with an :class:`~avalanche_adahat.AdaHATPlugin`, made from an
    :class:`~avalanche_adahat.core.config.AdaHATConfig` (``config``) or its fields as
    keywords. The paper's configuration: ``AdaHAT(..., **PAPER_ADAHAT)``.
    """

    plugin_class = AdaHATPlugin
    __init__ = _init_taking(AdaHATConfig)
