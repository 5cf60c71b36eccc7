"""What ``compare`` can run, part two: the strategies (:data:`STRATEGIES`).

``name -> StrategySpec``, which knows its class, its documented defaults, the
parameters it accepts, the model it trains (:meth:`StrategySpec.build_model`) and
how to build it (:meth:`StrategySpec.build`). :class:`HATSpec` is the HAT family
(its ``hat_family`` field: network capacity is recorded; its hyperparameters are
checked by the library's config, :mod:`avalanche_adahat.core.config`),
:class:`PackNetSpec` Avalanche's PackNet with its own model and plugin list,
:class:`ICaRLSpec` Avalanche's ICaRL and :class:`StreamingLDASpec` Avalanche's
StreamingLDA on raw inputs (both class-incremental only). Each spec also measures
what its trained strategy keeps about past data (:meth:`StrategySpec.memory`).
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.task_rules import FEATURE_RULES
from ..core.task_rules import RULES as TASK_INFERENCE_RULES
from .errors import CompareError
from .registry import MODELS, SCENARIOS, mlp_params, shared_head_mlp

__all__ = [
    "STRATEGIES",
    "HATSpec",
    "ICaRLSpec",
    "PackNetSpec",
    "RawInputs",
    "StrategySpec",
    "StreamingLDASpec",
]


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
    #: Trains on every experience seen so far (``Cumulative``): it keeps all their samples.
    keeps_all_data: bool = False

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
    #: Only the constant-rate mode reads ``alpha``; the others drop it.
    uses_alpha: bool = False
    hat_family: bool = field(default=True, init=False)

    def strategy_class(self) -> type:
        from ..training import strategies

        return getattr(strategies, self.cls_name)

    def allowed_params(self) -> set[str]:
        """The fields of the strategy's config (:mod:`avalanche_adahat.core.config`), less the
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

    def memory(self, strategy, sample_bytes: int) -> tuple[int | None, int | None]:
        """No stored samples; the bytes of the task router's feature statistics
        (``model.task_router_bytes()``, where the model provides it; else ``None``)."""
        for owner in (strategy.model, getattr(strategy, "hat_plugin", None)):
            router_bytes = getattr(owner, "task_router_bytes", None)
            if callable(router_bytes):
                return int(router_bytes()), 0
        return None, 0


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


class RawInputs(torch.nn.Flatten):
    """StreamingLDA's feature extractor on raw inputs: each sample flattened, nothing learnt.

    It carries what ``StreamingLDA`` needs besides a model: ``input_size`` (the
    features per sample) and ``num_classes`` (every class of the benchmark)."""

    def __init__(self, input_shape, num_classes: int):
        super().__init__()
        self.input_size = math.prod(input_shape)
        self.num_classes = num_classes


@dataclass
class StreamingLDASpec(StrategySpec):
    """Avalanche's ``StreamingLDA`` (Hayes & Kanan, 2020) on raw inputs (class-incremental
    only): a :class:`RawInputs` feature extractor (no network, no training, no optimizer),
    class means and one shared covariance updated one sample at a time, a linear
    discriminant over all classes seen. One pass over each experience whatever
    ``--epochs`` (a second pass would count every sample twice), in minibatches of the
    evaluation's size (see :meth:`build`); the shrinkage and the streaming covariance
    update are Avalanche's defaults unless ``--set`` changes them."""

    scenarios: tuple[str, ...] = ("class",)

    def allowed_params(self) -> set[str]:
        fixed = {"slda_model", "input_size", "num_classes", "output_layer_name"}
        return super().allowed_params() - fixed

    def check_scenario(self, name: str, config: dict) -> None:
        """Class scenario only; any ``--model`` (StreamingLDA trains none)."""
        scenario = config.get("scenario", "task")
        if scenario not in self.scenarios:
            raise CompareError(f"strategy {name!r} runs in --scenario class only, not {scenario}")

    def build_model(self, config: dict, input_shape, num_classes: int) -> torch.nn.Module:
        return RawInputs(input_shape, num_classes)

    def build(self, params: dict, plugins: list, *, scenario: str = "task", **common):
        model = common.pop("model")
        common.pop("optimizer", None)  # StreamingLDA has no optimizer
        common["train_epochs"] = 1
        # It fits one sample at a time whatever the minibatch, but recomputes the inverse
        # covariance (a d x d pseudo-inverse) at every training minibatch: minibatches as
        # large as the evaluation's change no statistic and save most of that cost.
        common["train_mb_size"] = max(common["train_mb_size"], common.get("eval_mb_size") or 0)
        with warnings.catch_warnings():  # it flags every plugin that has backward callbacks
            warnings.filterwarnings("ignore", message=".*implements incompatible callbacks")
            return self.strategy_class()(
                slda_model=model, input_size=model.input_size, num_classes=model.num_classes,
                plugins=plugins, **common, **params,
            )  # fmt: skip

    def memory(self, strategy, sample_bytes: int) -> tuple[int | None, int | None]:
        """Its statistics (what ``StreamingLDA.save_model`` keeps): class means, class
        counts, the shared covariance; no stored samples."""
        kept = (strategy.muK, strategy.cK, strategy.Sigma)
        return sum(t.numel() * t.element_size() for t in kept), 0


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
    # "hat" itself takes the rule of its task_inference parameter, the library's default);
    # the feature-statistics rules have no calibration, so no "_cal" variant.
    **{
        f"hat_{rule}{'_cal' if cal else ''}": HATSpec(
            f"HAT, task inference by {rule}{' calibrated' if cal else ''} (--scenario class)",
            "HAT",
            {**_HAT, "task_inference": rule, **({"calibrate_task_inference": True} if cal else {})},
            mode="hat",
            scenarios=("class",),
        )
        for rule in TASK_INFERENCE_RULES
        for cal in ((False,) if rule in FEATURE_RULES else (False, True))
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
        "Avalanche Cumulative (joint training on all tasks so far: the upper bound)",
        "Cumulative",
        keeps_all_data=True,
    ),
    "streaming_lda": StreamingLDASpec(
        "Avalanche StreamingLDA on raw inputs (--scenario class only): flattened inputs, "
        "class means + shared covariance, no network, no training, one pass per "
        "experience; shrinkage_param Avalanche's default (1e-4)",
        "StreamingLDA",
    ),
}
