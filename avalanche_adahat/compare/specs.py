"""The strategy specs of ``compare``, part one: :class:`StrategySpec` and :class:`HATSpec`.

A :class:`StrategySpec` knows its class (one of ``avalanche.training.supervised``), its
documented defaults, the parameters it accepts, the model it trains
(:meth:`StrategySpec.build_model`), how to build it (:meth:`StrategySpec.build`) and
what the trained strategy keeps about past data (:meth:`StrategySpec.memory`).
:class:`HATSpec` is the HAT family: network capacity is recorded, and its
hyperparameters are checked by the library's config (:mod:`avalanche_adahat.core.config`).
The Avalanche baselines with needs of their own are in :mod:`.baseline_specs`, the
table of strategies (:data:`~.strategy_specs.STRATEGIES`) in :mod:`.strategy_specs`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..core.modes import MODES
from .errors import CompareError
from .registry import MODELS, SCENARIOS, shared_head_mlp

if TYPE_CHECKING:
    from .settings import CompareConfig

__all__ = ["HATSpec", "StrategySpec"]

#: Keywords compare passes to every strategy itself: not strategy parameters.
_COMMON_KEYS = {
    "model", "optimizer", "criterion", "train_mb_size", "train_epochs", "eval_mb_size",
    "device", "plugins", "evaluator", "eval_every",
}  # fmt: skip


@dataclass
class StrategySpec:
    """A strategy of ``compare``: its help line, class, documented defaults and builder.

    ``cls_name`` names a class of ``avalanche.training.supervised``. The
    methods are what a subclass changes for a strategy with its own needs
    (see :class:`HATSpec`, :class:`PackNetSpec`).
    """

    help: str
    cls_name: str
    defaults: dict[str, Any] = field(default_factory=dict)
    #: HAT masks (``strategy.hat_plugin``): network capacity is recorded.
    hat_family: bool = False
    #: The ``--scenario`` values the strategy runs in.
    scenarios: tuple[str, ...] = SCENARIOS
    #: Trains on every experience seen so far (``Cumulative``): it keeps all their samples.
    keeps_all_data: bool = False

    def strategy_class(self) -> type[Any]:
        from avalanche.training import supervised

        return getattr(supervised, self.cls_name)

    def allowed_params(self) -> set[str]:
        """The keywords of the class that ``--set`` may give (not those compare passes)."""
        signature = inspect.signature(self.strategy_class().__init__)
        allowed = set(signature.parameters) - _COMMON_KEYS - {"self"}
        return allowed - {"kwargs", "base_kwargs", "adjustment_mode"}

    def check(self, config: CompareConfig, params: dict) -> None:
        """Raise :class:`CompareError` where ``config`` cannot run this strategy."""

    def check_scenario(self, name: str, config: CompareConfig) -> None:
        """Raise :class:`CompareError` where the strategy cannot run ``config.scenario``."""
        scenario = config.scenario
        if scenario not in self.scenarios:
            raise CompareError(
                f"strategy {name!r} runs in --scenario {' or '.join(self.scenarios)} only, "
                f"not {scenario}"
            )
        if scenario == "class" and not self.hat_family and config.model != "mlp":
            raise CompareError(
                f"--scenario class: {name!r} trains a plain MLP with one head over all "
                f"classes, so it needs --model mlp (got {config.model!r})"
            )

    def build_model(self, config: CompareConfig, input_shape, num_classes: int) -> torch.nn.Module:
        """The model this strategy trains: the configured backbone (task scenario; there
        ``num_classes`` is the classes per task) or, in the class scenario, a plain MLP
        with one head over all ``num_classes`` classes (:func:`shared_head_mlp`)."""
        if config.scenario == "class":
            return shared_head_mlp(input_shape, num_classes, config.model_params)
        return MODELS[config.model](input_shape, num_classes, dict(config.model_params))

    def build(self, params: dict, plugins: list, *, scenario: str = "task", **common):
        """The strategy with hyperparameters ``params``, ``plugins`` and ``common``
        (model, optimizer, criterion, minibatch sizes, epochs, device, evaluator)."""
        return self.strategy_class()(plugins=plugins, **common, **params)

    def memory(self, strategy, sample_bytes: int) -> tuple[int | None, int | None]:
        """``(memory_bytes, stored_samples)`` of the trained ``strategy``: what it keeps
        about past data besides the network it trains, measured on its state.

        Stored samples (Replay's and GDumb's buffers, A-GEM's per-experience buffers,
        iCaRL's exemplars, everything Cumulative trains on) count ``sample_bytes`` each
        (one sample as the benchmark stores it: a byte a pixel for uint8 images),
        iCaRL's class means their own size; a strategy that keeps none (Naive, EWC, SI, LwF, MAS, PackNet) has 0.
        Copies of parameters (EWC's, SI's, LwF's previous model) are not counted."""
        samples, extra = _stored_samples(strategy, self.keeps_all_data)
        return samples * sample_bytes + extra, samples


@dataclass
class HATSpec(StrategySpec):
    """``avalanche_adahat.HAT`` or ``AdaHAT`` (``cls_name``) in one ``adjustment_mode``."""

    mode: str = "hat"
    hat_family: bool = field(default=True, init=False)

    def strategy_class(self) -> type[Any]:
        from ..training import strategies

        return getattr(strategies, self.cls_name)

    def allowed_params(self) -> set[str]:
        """The fields of the strategy's config (:mod:`avalanche_adahat.core.config`), less the
        mode the spec fixes."""
        return set(self.strategy_class().plugin_class.config_class.field_names()) - {
            "adjustment_mode"
        }

    def check(self, config: CompareConfig, params: dict) -> None:
        """Make the strategy's config from ``params``: its checks are the library's."""
        if config.scenario == "class" and params.get("task_ids") == "given":
            raise CompareError(
                "--scenario class has no task labels: the HAT family runs with "
                "task_ids='per_experience' (do not set task_ids='given')"
            )
        config_class = self.strategy_class().plugin_class.config_class
        try:
            config_class(**self._hyperparameters(params, config.scenario))
        except (TypeError, ValueError) as error:
            raise CompareError(f"{config_class.__name__}: {error}") from None

    def _hyperparameters(self, params: dict, scenario: str) -> dict:
        params = {**params, "adjustment_mode": self.mode}
        if not MODES[self.mode].needs_alpha:  # only the constant-rate mode reads alpha
            params.pop("alpha", None)
        if scenario == "class":
            params["task_ids"] = "per_experience"  # rule and calibration: the library's defaults
        return params

    def build_model(self, config: CompareConfig, input_shape, num_classes: int) -> torch.nn.Module:
        """The configured HAT backbone; in the class scenario with heads sized from the
        data (one per experience, over the global class ids of its classes)."""
        if config.scenario == "class":
            return MODELS[config.model](input_shape, None, dict(config.model_params))
        return super().build_model(config, input_shape, num_classes)

    def build(self, params: dict, plugins: list, *, scenario: str = "task", **common):
        return super().build(self._hyperparameters(params, scenario), plugins, **common)

    def memory(self, strategy, sample_bytes: int) -> tuple[int | None, int | None]:
        """No stored samples; the bytes of the task router's feature statistics
        (``model.task_router_bytes()``, where the model provides it; else ``None``)."""
        for owner in (strategy.model, getattr(strategy, "hat_plugin", None)):
            router_bytes = getattr(owner, "task_router_bytes", None)
            if callable(router_bytes):
                return int(router_bytes()), 0
        return None, 0


def _stored_samples(strategy, keeps_all_data: bool) -> tuple[int, int]:
    """``(samples, other_bytes)`` that ``strategy`` keeps: the samples of its replay
    buffers (``storage_policy.buffer``: Replay, GDumb; ``buffers``: A-GEM), iCaRL's
    exemplars (``x_memory``, counted as samples) and class means (``other_bytes``), and
    with ``keeps_all_data`` the dataset it trains on (Cumulative)."""
    samples, other = 0, 0
    if keeps_all_data and getattr(strategy, "dataset", None) is not None:
        samples += len(strategy.dataset)
    for plugin in strategy.plugins:
        policy = getattr(plugin, "storage_policy", None)
        if policy is not None and getattr(policy, "buffer", None) is not None:
            samples += len(policy.buffer)
        buffers = getattr(plugin, "buffers", None)
        if isinstance(buffers, list):
            samples += sum(len(b) for b in buffers)
        exemplars = getattr(plugin, "x_memory", None)
        if isinstance(exemplars, list):
            samples += sum(len(x) for x in exemplars)
            means = getattr(plugin, "class_means", None) or {}
            other += sum(m.numel() * m.element_size() for m in means.values())
    return samples, other
