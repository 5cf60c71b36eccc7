"""What ``compare`` can run: benchmarks, backbones and strategies, each spec with its builder.

- :data:`BENCHMARKS`: ``name -> BenchmarkSpec``, whose ``build(n, seed, data_root)``
  returns a task-incremental Avalanche benchmark;
- :data:`MODELS`: ``name -> builder(input_shape, num_classes, params)``, a HAT
  backbone; :func:`register_model` adds one;
- :data:`STRATEGIES`: ``name -> StrategySpec``, which knows its class, its
  documented defaults, the parameters it accepts, the model it trains
  (:meth:`StrategySpec.build_model`) and how to build it
  (:meth:`StrategySpec.build`). :class:`HATSpec` is the HAT family (its
  ``hat_family`` field: network capacity is recorded), :class:`PackNetSpec`
  Avalanche's PackNet with its own model and plugin list.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import benchmarks as bm
from ..models import HATMLP, HATAlexNet, HATResNet18
from .errors import CompareError

__all__ = [
    "BENCHMARKS",
    "MODELS",
    "STRATEGIES",
    "BenchmarkSpec",
    "HATSpec",
    "PackNetSpec",
    "StrategySpec",
    "mlp_params",
    "register_model",
]


# =========================================================================== benchmarks
@dataclass
class BenchmarkSpec:
    help: str
    build: Callable[..., Any]
    default_n: int | None  # None: fixed number of experiences (e.g. CIFAR-10 -> 5)
    needs_data: str | None = None  # how to get the data, for the error message


def _avalanche_classic(name: str, **fixed):
    def build(n_experiences, seed, data_root):
        from avalanche.benchmarks import classic

        kwargs = dict(fixed)
        if n_experiences is not None:
            kwargs["n_experiences"] = n_experiences
        cls = getattr(classic, name)
        if "Permuted" not in name:
            kwargs.update(class_ids_from_zero_in_each_exp=True)
        return cls(return_task_id=True, seed=seed, dataset_root=data_root, **kwargs)

    return build


def _downloaded(classic: str, data: str, n: int, **fixed) -> BenchmarkSpec:
    """One of Avalanche's classic benchmarks, which downloads its data into ``--data-root``."""
    return BenchmarkSpec(
        f"Avalanche's {classic} (downloads into --data-root where Avalanche can)",
        _avalanche_classic(classic, **fixed),
        n,
        f"let Avalanche download {data} into --data-root (needs network)",
    )


_FMNIST = "apt-get install dataset-fashion-mnist"
BENCHMARKS: dict[str, BenchmarkSpec] = {
    "split_digits": BenchmarkSpec(
        "scikit-learn's bundled 8x8 digits, classes split into tasks (n divides 10)",
        lambda n, seed, root: bm.split_digits(n, seed=seed),
        5,
    ),
    "permuted_digits": BenchmarkSpec(
        "scikit-learn's digits under one pixel permutation per task (all 10 classes each)",
        lambda n, seed, root: bm.permuted_digits(n, seed),
        5,
    ),
    "split_fmnist": BenchmarkSpec(
        "Avalanche's SplitFMNIST (return_task_id=True) reading local Fashion-MNIST idx files",
        lambda n, seed, root: bm.split_fmnist(n, seed, data_root=root or bm.DEBIAN_FMNIST),
        5,
        _FMNIST,
    ),
    "permuted_fmnist": BenchmarkSpec(
        "local Fashion-MNIST under one pixel permutation per task (all 10 classes each)",
        lambda n, seed, root: bm.permuted_fmnist(n, seed, data_root=root or bm.DEBIAN_FMNIST),
        10,
        _FMNIST,
    ),
    "split_mnist": _downloaded("SplitMNIST", "MNIST", 5, fixed_class_order=list(range(10))),
    "permuted_mnist": _downloaded("PermutedMNIST", "MNIST", 10),
    "split_cifar10": _downloaded("SplitCIFAR10", "CIFAR-10", 5, fixed_class_order=list(range(10))),
    "split_cifar100": _downloaded(
        "SplitCIFAR100", "CIFAR-100", 10, fixed_class_order=list(range(100))
    ),
    "split_tinyimagenet": _downloaded(
        "SplitTinyImageNet", "Tiny ImageNet", 10, fixed_class_order=list(range(200))
    ),
}


# =========================================================================== models
ModelBuilder = Callable[[tuple[int, ...], int, dict], torch.nn.Module]
MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str, builder: ModelBuilder) -> None:
    """Add a backbone: ``builder(input_shape, num_classes, params) -> HAT model``.

    ``input_shape`` is one sample's shape (e.g. ``(1, 28, 28)``),
    ``num_classes`` the classes per task, ``params`` the ``model`` section of
    the configuration (e.g. ``{"hidden_sizes": [256, 100, 64]}``).
    """
    MODELS[name] = builder


def mlp_params(params: dict) -> dict:
    """The ``model_params`` of an MLP, with the default hidden sizes 256, 100, 64."""
    p = dict(params)
    p["hidden_sizes"] = tuple(p.get("hidden_sizes", (256, 100, 64)))
    return p


def _build_mlp(input_shape, num_classes, params):
    return HATMLP(math.prod(input_shape), num_classes=num_classes, **mlp_params(params))


def _build_alexnet(input_shape, num_classes, params):
    shape = {"in_channels": input_shape[0], "input_size": input_shape[-1]}
    return HATAlexNet(**{**shape, "num_classes": num_classes, **params})


def _build_resnet18(input_shape, num_classes, params):
    return HATResNet18(**{"in_channels": input_shape[0], "num_classes": num_classes, **params})


register_model("mlp", _build_mlp)
register_model("alexnet", _build_alexnet)
register_model("resnet18", _build_resnet18)


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

    def build_model(self, config: dict, input_shape, num_classes: int) -> torch.nn.Module:
        """The model this strategy trains: the configured backbone."""
        return MODELS[config["model"]](input_shape, num_classes, dict(config["model_params"]))

    def build(self, params: dict, plugins: list, **common):
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

    def build(self, params: dict, plugins: list, **common):
        params = {**params, "adjustment_mode": self.mode}
        if not self.uses_alpha:
            params.pop("alpha", None)
        return super().build(params, plugins, **common)


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

    def build(self, params: dict, plugins: list, **common):
        strategy = super().build(params, None, **common)
        # Avalanche 0.6's PackNet nests its `plugins` argument as one item of its plugin
        # list (`plugins=[plugins, PackNetPlugin(...)]`), where it is never called: add
        # ours (and drop the nested None) after construction.
        strategy.plugins = list(plugins) + [p for p in strategy.plugins if p is not None]
        return strategy


_ADAHAT = {"adjustment_intensity": 1e-6, "epsilon": 0.1, "mask_sparsity_reg_factor": 0.1}
_HAT = {"mask_sparsity_reg_factor": 0.75}
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
    ),
    "agem": StrategySpec(
        "Avalanche GEM-free A-GEM", "AGEM", {"patterns_per_exp": 256, "sample_size": 256}
    ),
    "replay": StrategySpec(
        "Avalanche Replay (class-balanced buffer)", "Replay", {"mem_size": 1000}
    ),
    "cumulative": StrategySpec(
        "Avalanche Cumulative (joint training on all tasks so far)", "Cumulative"
    ),
}
