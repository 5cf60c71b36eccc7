"""What ``compare`` can run, part two: the strategies (:data:`STRATEGIES`).

``name -> StrategySpec``, which knows its class, its documented defaults, the
parameters it accepts, the model it trains (:meth:`StrategySpec.build_model`) and
how to build it (:meth:`StrategySpec.build`). :class:`HATSpec` is the HAT family
(its ``hat_family`` field: network capacity is recorded; its hyperparameters are
checked by the library's config, :mod:`avalanche_adahat.config`),
:class:`PackNetSpec` Avalanche's PackNet with its own model and plugin list,
:class:`ICaRLSpec` Avalanche's ICaRL (class-incremental only).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..task_inference import RULES as TASK_INFERENCE_RULES
from .errors import CompareError
from .registry import MODELS, SCENARIOS, mlp_params, shared_head_mlp

__all__ = ["STRATEGIES", "HATSpec", "ICaRLSpec", "PackNetSpec", "StrategySpec"]


# =========================================================================== strategies
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

    def strategy_class(self) -> type:
        from avalanche.training import supervised

        return getattr(supervised, self.cls_name)

    def allowed_params(self) -> set[str]:
        """The keywords of the class that ``--set`` may give (not those compare passes)."""
        signature = inspect.signature(self.strategy_class().__init__)
        allowed = set(signature.parameters) - _COMMON_KEYS - {"self"}
        return allowed - {"kwargs", "base_kwargs", "adjustment_mode"}

    def check(self, config: dict, params: dict) -> None:
        """Raise :class:`CompareError` where ``config`` cannot run this strategy."""

    def check_scenario(self, name: str, config: dict) -> None:
        """Raise :class:`CompareError` where the strategy cannot run ``config["scenario"]``."""
        scenario = config.get("scenario", "task")
        if scenario not in self.scenarios:
            raise CompareError(
                f"strategy {name!r} runs in --scenario {' or '.join(self.scenarios)} only, "
                f"not {scenario}"
            )
        if scenario == "class" and not self.hat_family and config["model"] != "mlp":
            raise CompareError(
                f"--scenario class: {name!r} trains a plain MLP with one head over all "
                f"classes, so it needs --model mlp (got {config['model']!r})"
            )

    def build_model(self, config: dict, input_shape, num_classes: int) -> torch.nn.Module:
        """The model this strategy trains: the configured backbone (task scenario; there
        ``num_classes`` is the classes per task) or, in the class scenario, a plain MLP
        with one head over all ``num_classes`` classes (:func:`shared_head_mlp`)."""
        if config.get("scenario", "task") == "class":
            return shared_head_mlp(input_shape, num_classes, config["model_params"])
        return MODELS[config["model"]](input_shape, num_classes, dict(config["model_params"]))

    def build(self, params: dict, plugins: list, *, scenario: str = "task", **common):
        """The strategy with hyperparameters ``params``, ``plugins`` and ``common``
        (model, optimizer, criterion, minibatch sizes, epochs, device, evaluator)."""
        return self.strategy_class()(plugins=plugins, **common, **params)


@dataclass
class HATSpec(StrategySpec):
    """``avalanche_adahat.HAT`` or ``AdaHAT`` (``cls_name``) in one ``adjustment_mode``."""

    mode: str = "hat"
    #: Only the constant-rate mode reads ``alpha``; the others drop it.
    uses_alpha: bool = False
    hat_family: bool = field(default=True, init=False)

    def strategy_class(self) -> type:
        from .. import strategies

        return getattr(strategies, self.cls_name)

    def allowed_params(self) -> set[str]:
        """The fields of the strategy's config (:mod:`avalanche_adahat.config`), less the
        mode the spec fixes."""
        return set(self.strategy_class().plugin_class.config_class.field_names()) - {
            "adjustment_mode"
        }

    def check(self, config: dict, params: dict) -> None:
        """Make the strategy's config from ``params``: its checks are the library's."""
        if config.get("scenario", "task") == "class" and params.get("task_ids") == "given":
            raise CompareError(
                "--scenario class has no task labels: the HAT family runs with "
                "task_ids='per_experience' (do not set task_ids='given')"
            )
        config_class = self.strategy_class().plugin_class.config_class
        try:
            config_class(**self._hyperparameters(params, config.get("scenario", "task")))
        except (TypeError, ValueError) as error:
            raise CompareError(f"{config_class.__name__}: {error}") from None

    def _hyperparameters(self, params: dict, scenario: str) -> dict:
        params = {**params, "adjustment_mode": self.mode}
        if not self.uses_alpha:
            params.pop("alpha", None)
        if scenario == "class":
            params["task_ids"] = "per_experience"  # rule and calibration: the library's defaults
        return params

    def build_model(self, config: dict, input_shape, num_classes: int) -> torch.nn.Module:
        """The configured HAT backbone; in the class scenario with heads sized from the
        data (one per experience, over the global class ids of its classes)."""
        if config.get("scenario", "task") == "class":
            return MODELS[config["model"]](input_shape, None, dict(config["model_params"]))
        return super().build_model(config, input_shape, num_classes)

    def build(self, params: dict, plugins: list, *, scenario: str = "task", **common):
        return super().build(self._hyperparameters(params, scenario), plugins, **common)


@dataclass
class PackNetSpec(StrategySpec):
    """Avalanche's PackNet on a ``PackNetModel`` MLP built from the ``mlp`` model parameters."""

    def check(self, config: dict, params: dict) -> None:
        post = params["post_prune_epochs"]
        if config["epochs"] <= post:
            raise CompareError(
                f"packnet needs --epochs > post_prune_epochs ({post}), got --epochs "
                f"{config['epochs']}; raise --epochs or --set packnet.post_prune_epochs=..."
            )
        if config["model"] != "mlp":
            raise CompareError("packnet runs on --model mlp only (a PackNetModel MLP)")

    def build_model(self, config: dict, input_shape, num_classes: int) -> torch.nn.Module:
        from avalanche.models.packnet import PackNetModel

        sizes = [math.prod(input_shape), *mlp_params(config["model_params"])["hidden_sizes"]]
        layers: list[torch.nn.Module] = [torch.nn.Flatten()]
        for a, b in zip(sizes, sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        # PackNetModel calls its wrappee without task labels: one shared head, whose
        # weights PackNet prunes and freezes per task like the backbone's.
        layers.append(torch.nn.Linear(sizes[-1], num_classes))
        return PackNetModel(torch.nn.Sequential(*layers))

    def build(self, params: dict, plugins: list, *, scenario: str = "task", **common):
        strategy = super().build(params, None, **common)
        # Avalanche 0.6's PackNet nests its `plugins` argument as one item of its plugin
        # list (`plugins=[plugins, PackNetPlugin(...)]`), where it is never called: add
        # ours (and drop the nested None) after construction.
        strategy.plugins = list(plugins) + [p for p in strategy.plugins if p is not None]
        return strategy


@dataclass
class ICaRLSpec(StrategySpec):
    """Avalanche's ICaRL (class-incremental only): the shared-head MLP's body as the
    feature extractor, its ``Linear`` head as the trained classifier; ICaRL itself
    classifies by nearest class mean of the stored exemplars (``NCMClassifier``) and
    trains with its own loss (``ICaRLLossPlugin``), so ``criterion`` is not passed."""

    scenarios: tuple[str, ...] = ("class",)

    def allowed_params(self) -> set[str]:
        return super().allowed_params() - {"feature_extractor", "classifier"}

    def build(self, params: dict, plugins: list, *, scenario: str = "task", **common):
        model = common.pop("model")
        common.pop("criterion", None)
        body, head = model[:-1], model[-1]
        return self.strategy_class()(
            feature_extractor=body, classifier=head, plugins=plugins, **common, **params
        )


# The library's defaults (docs/ADAHAT_STUDY.md): AdaHAT protect="update" with the measured
# intensity, reg 0.1; HAT reg 0.75. The paper's AdaHAT: --set adahat.protect=gradient
# --set adahat.adjustment_intensity=1e-6.
_ADAHAT: dict[str, Any] = {}
_HAT: dict[str, Any] = {}
STRATEGIES: dict[str, StrategySpec] = {
    "adahat": HATSpec(
        "AdaHAT (avalanche_adahat.AdaHAT, adjustment_mode='adahat')",
        "AdaHAT",
        _ADAHAT,
        mode="adahat",
    ),
    "hat": HATSpec("HAT (avalanche_adahat.HAT, adjustment_mode='hat')", "HAT", _HAT, mode="hat"),
    "hat_random": HATSpec(
        "HAT with uniform(0,1) rates on used parameters", "HAT", _HAT, mode="hat_random"
    ),
    "hat_const_alpha": HATSpec(
        "HAT with constant rate alpha on used parameters",
        "HAT",
        {**_HAT, "alpha": 0.5},
        mode="hat_const_alpha",
        uses_alpha=True,
    ),
    "hat_const_1": HATSpec(
        "HAT masks, no gradient constraint (rate 1)", "HAT", _HAT, mode="hat_const_1"
    ),
    "adahat_no_sum": HATSpec(
        "AdaHAT ablation: task count instead of summative mask",
        "AdaHAT",
        _ADAHAT,
        mode="adahat_no_sum",
    ),
    "adahat_no_reg": HATSpec(
        "AdaHAT ablation: no sparsity term in r", "AdaHAT", _ADAHAT, mode="adahat_no_reg"
    ),
    # HAT with one task-inference rule each, calibrated or not (--scenario class only;
    # "hat" itself takes the rule of its task_inference parameter, the library's default).
    **{
        f"hat_{rule}{'_cal' if cal else ''}": HATSpec(
            f"HAT, task inference by {rule}{' calibrated' if cal else ''} (--scenario class)",
            "HAT",
            {**_HAT, "task_inference": rule, **({"calibrate_task_inference": True} if cal else {})},
            mode="hat",
            scenarios=("class",),
        )
        for rule in TASK_INFERENCE_RULES
        for cal in (False, True)
    },
    "naive": StrategySpec("Avalanche Naive (fine-tuning)", "Naive"),
    "ewc": StrategySpec("Avalanche EWC", "EWC", {"ewc_lambda": 100.0, "mode": "separate"}),
    "si": StrategySpec(
        "Avalanche SynapticIntelligence", "SynapticIntelligence", {"si_lambda": 1.0}
    ),
    "lwf": StrategySpec("Avalanche LwF", "LwF", {"alpha": 1.0, "temperature": 2.0}),
    "mas": StrategySpec("Avalanche MAS", "MAS", {"lambda_reg": 1.0, "alpha": 0.5}),
    "packnet": PackNetSpec(
        "Avalanche PackNet on a PackNetModel MLP (needs --epochs > post_prune_epochs)",
        "PackNet",
        {"post_prune_epochs": 1, "prune_proportion": 0.5},
        scenarios=("task",),
    ),
    "agem": StrategySpec(
        "Avalanche GEM-free A-GEM", "AGEM", {"patterns_per_exp": 256, "sample_size": 256}
    ),
    "replay": StrategySpec(
        "Avalanche Replay (class-balanced buffer)", "Replay", {"mem_size": 1000}
    ),
    **{
        f"replay_{size}": StrategySpec(
            f"Avalanche Replay with {size} stored samples", "Replay", {"mem_size": size}
        )
        for size in (200, 500, 2000)
    },
    "icarl": ICaRLSpec(
        "Avalanche ICaRL (--scenario class only): MLP body + nearest-class-mean classifier",
        "ICaRL",
        {"memory_size": 2000, "buffer_transform": None, "fixed_memory": True},
    ),
    "gdumb": StrategySpec(
        "Avalanche GDumb (greedy class-balanced buffer, retrained from scratch)",
        "GDumb",
        {"mem_size": 2000},
    ),
    "cumulative": StrategySpec(
        "Avalanche Cumulative (joint training on all tasks so far)", "Cumulative"
    ),
}
