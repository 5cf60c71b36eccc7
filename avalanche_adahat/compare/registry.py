"""What ``compare`` can run, part one: benchmarks and backbones, each spec with its builder
(the strategies are in :mod:`.strategy_specs`).

- :data:`BENCHMARKS`: ``name -> BenchmarkSpec``, whose ``build(n, seed, data_root)``
  returns a task-incremental Avalanche benchmark and, for every split
  benchmark, ``build_class(n, seed, data_root, class_order=None)`` a
  class-incremental one (no task labels, global class ids: ``--scenario
  class``; ``class_order`` from :func:`class_order`, ``--class-order``); the
  benchmarks that Avalanche downloads (MNIST, CIFAR, Tiny ImageNet) need
  ``--data-root`` (``data_root_help`` says what goes there);
- :data:`MODELS`: ``name -> builder(input_shape, num_classes, params)``, a HAT
  backbone; :func:`register_model` adds one;
- the strategies: :data:`.strategy_specs.STRATEGIES`.

Class-incremental scenario (``--scenario class``): the HAT family trains one
new task per experience (``task_ids="per_experience"``) and predicts each test
sample's task with the rule of its ``task_inference`` parameter (default: the
library's); Avalanche's ``StreamingLDA`` classifies raw inputs; every other strategy trains a plain MLP with the configured hidden
sizes ending in one fixed ``Linear`` over all the benchmark's classes
(:func:`shared_head_mlp`, Avalanche's ``SimpleMLP`` without dropout).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import benchmarks as bm
from ..data.fast_data import sources_from_flat_datasets
from ..models import HATMLP, HATAlexNet, HATResNet18

__all__ = [
    "BENCHMARKS",
    "MODELS",
    "BenchmarkSpec",
    "SCENARIOS",
    "mlp_params",
    "register_model",
    "shared_head_mlp",
]


# =========================================================================== benchmarks
@dataclass
class BenchmarkSpec:
    help: str
    build: Callable[..., Any]
    default_n: int | None  # None: fixed number of experiences (e.g. CIFAR-10 -> 5)
    needs_data: str | None = None  # how to get the data, for the error message
    #: ``build_class(n, seed, data_root)``: the class-incremental benchmark (no task
    #: labels, global class ids); ``None``: ``--scenario class`` refuses the benchmark.
    build_class: Callable[..., Any] | None = None
    #: Training settings under which every strategy learns each task (``epochs``,
    #: ``batch_size``, ``lr``); options not given fall back to these, then to
    #: :data:`TRAINING_FALLBACK`.
    training: dict[str, Any] = field(default_factory=dict)
    #: The number of classes of a split benchmark (for ``--class-order``).
    n_classes: int | None = None
    #: Set: ``--data-root`` is required (the benchmark downloads where its data is
    #: missing); what to put there, for the error message.
    data_root_help: str | None = None


#: Training settings of a benchmark whose spec gives none.
TRAINING_FALLBACK = {"epochs": 1, "batch_size": 64, "lr": 1e-3}
#: The digits benchmarks' settings: the cheapest of 16 tried under which every strategy's
#: diagonal is above 0.8 on every task and HAT >= Naive, 3 seeds (docs/ADAHAT_STUDY.md).
DIGITS_TRAINING = {"epochs": 10, "batch_size": 16, "lr": 3e-3}


#: ``--scenario``: task-incremental (task labels given) or class-incremental (none).
SCENARIOS = ("task", "class")

# Where Avalanche (torchvision's datasets) reads each downloaded benchmark under --data-root.
_MNIST_LAYOUT = "DIR/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (torchvision's MNIST)"
_CIFAR10_LAYOUT = (
    "DIR/cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta: "
    "cifar-10-python.tar.gz extracted)"
)
_CIFAR100_LAYOUT = "DIR/cifar-100-python/ (train, test, meta: cifar-100-python.tar.gz extracted)"
_TINY_LAYOUT = "DIR/tiny-imagenet-200/ (wnids.txt, train/, val/: tiny-imagenet-200.zip extracted)"


def class_order(mode, seed: int, n_classes: int) -> list[int] | None:
    """The class order of ``--class-order``: ``None`` for ``"natural"`` (classes 0, 1, 2, ...),
    else the permutation Avalanche draws for ``seed`` (``"seed"``: the run's seed; an
    integer: that seed, the same for every run): ``torch.randperm(n_classes)`` after
    ``torch.manual_seed``, as ``nc_benchmark(seed=..., fixed_class_order=None)`` does, drawn
    from a generator of its own (the global one is left alone)."""
    if mode == "natural":
        return None
    order_seed = seed if mode == "seed" else int(mode)
    return torch.randperm(n_classes, generator=torch.Generator().manual_seed(order_seed)).tolist()


def data_root_error(name: str) -> str:
    """The message of a benchmark that needs ``--data-root`` and was given none."""
    return (
        f"benchmark {name} needs --data-root DIR: {BENCHMARKS[name].data_root_help} "
        "(nothing is downloaded without it)"
    )


def _class_split_digits(n_experiences, seed, data_root, class_order=None):
    return bm.split_digits(n_experiences, seed=seed, return_task_id=False, class_order=class_order)


def _with_sources(benchmark):
    benchmark.tensor_sources = {
        "train": sources_from_flat_datasets(benchmark.train_stream),
        "test": sources_from_flat_datasets(benchmark.test_stream),
    }
    return benchmark


def _class_split_fmnist(n_experiences, seed, data_root, class_order=None):
    """Avalanche's ``SplitFMNIST(return_task_id=False)`` (global class ids; classes in
    natural order unless ``class_order`` is given)."""
    from avalanche.benchmarks.classic import SplitFMNIST

    benchmark = SplitFMNIST(
        n_experiences,
        return_task_id=False,
        seed=seed,
        fixed_class_order=list(range(10)) if class_order is None else list(class_order),
        dataset_root=bm.torchvision_fmnist_root(data_root or bm.DEBIAN_FMNIST),
    )
    return _with_sources(benchmark)


def _avalanche_classic(name: str, **fixed):
    def build(n_experiences, seed, data_root):
        from avalanche.benchmarks import classic

        kwargs = dict(fixed)
        if n_experiences is not None:
            kwargs["n_experiences"] = n_experiences
        cls = getattr(classic, name)
        if "Permuted" not in name:
            kwargs.update(class_ids_from_zero_in_each_exp=True)
        root = None if data_root is None else Path(data_root)
        return cls(return_task_id=True, seed=seed, dataset_root=root, **kwargs)

    return build


def _avalanche_classic_class(name: str, n_classes: int):
    """Class-incremental builder of Avalanche's ``classic.<name>``: no task labels, global
    class ids, Avalanche's own transforms; classes in natural order unless ``class_order``."""

    def build(n_experiences, seed, data_root, class_order=None):
        from avalanche.benchmarks import classic

        # a Path, not a str: Avalanche's TinyImagenet reads a bare name as a dataset name
        root = None if data_root is None else Path(data_root)
        order = list(range(n_classes)) if class_order is None else list(class_order)
        benchmark = getattr(classic, name)(
            n_experiences, return_task_id=False, seed=seed, fixed_class_order=order,
            dataset_root=root,
        )  # fmt: skip
        return _with_sources(benchmark)

    return build


def _downloaded(
    classic: str, data: str, n: int, n_classes: int, layout: str, *, split: bool = True
) -> BenchmarkSpec:
    """One of Avalanche's classic benchmarks, which reads (or downloads) its data in
    ``--data-root``: the option is required, so that nothing is downloaded unasked."""
    fixed = {"fixed_class_order": list(range(n_classes))} if split else {}
    return BenchmarkSpec(
        f"Avalanche's {classic} (needs --data-root: {layout}, or downloaded there)",
        _avalanche_classic(classic, **fixed),
        n,
        f"let Avalanche download {data} into --data-root (needs network)",
        build_class=_avalanche_classic_class(classic, n_classes) if split else None,
        n_classes=n_classes if split else None,
        data_root_help=(
            f"a folder holding {data} as {layout}, or an empty folder for Avalanche to "
            "download it into (needs network)"
        ),
    )


_FMNIST = "apt-get install dataset-fashion-mnist"
BENCHMARKS: dict[str, BenchmarkSpec] = {
    "split_digits": BenchmarkSpec(
        "scikit-learn's bundled 8x8 digits, classes split into tasks (n divides 10)",
        lambda n, seed, root: bm.split_digits(n, seed=seed),
        5,
        build_class=_class_split_digits,
        training=DIGITS_TRAINING,
        n_classes=10,
    ),
    "permuted_digits": BenchmarkSpec(
        "scikit-learn's digits under one pixel permutation per task (all 10 classes each)",
        lambda n, seed, root: bm.permuted_digits(n, seed),
        5,
        training=DIGITS_TRAINING,
    ),
    "split_fmnist": BenchmarkSpec(
        "Avalanche's SplitFMNIST (return_task_id=True) reading local Fashion-MNIST idx files",
        lambda n, seed, root: bm.split_fmnist(n, seed, data_root=root or bm.DEBIAN_FMNIST),
        5,
        _FMNIST,
        build_class=_class_split_fmnist,
        n_classes=10,
    ),
    "permuted_fmnist": BenchmarkSpec(
        "local Fashion-MNIST under one pixel permutation per task (all 10 classes each)",
        lambda n, seed, root: bm.permuted_fmnist(n, seed, data_root=root or bm.DEBIAN_FMNIST),
        10,
        _FMNIST,
    ),
    "split_mnist": _downloaded("SplitMNIST", "MNIST", 5, 10, _MNIST_LAYOUT),
    "permuted_mnist": _downloaded("PermutedMNIST", "MNIST", 10, 10, _MNIST_LAYOUT, split=False),
    "split_cifar10": _downloaded("SplitCIFAR10", "CIFAR-10", 5, 10, _CIFAR10_LAYOUT),
    "split_cifar100": _downloaded("SplitCIFAR100", "CIFAR-100", 10, 100, _CIFAR100_LAYOUT),
    "split_tinyimagenet": _downloaded("SplitTinyImageNet", "Tiny ImageNet", 10, 200, _TINY_LAYOUT),
}


# =========================================================================== models
ModelBuilder = Callable[[tuple[int, ...], int | None, dict], torch.nn.Module]
MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str, builder: ModelBuilder) -> None:
    """Add a backbone: ``builder(input_shape, num_classes, params) -> HAT model``.

    ``input_shape`` is one sample's shape (e.g. ``(1, 28, 28)``),
    ``num_classes`` the classes per task (``None`` for the HAT family in the class
    scenario: heads sized from the data), ``params`` the ``model`` section of
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


def shared_head_mlp(input_shape, num_classes: int, params: dict) -> torch.nn.Sequential:
    """The class-incremental baselines' model: ``Flatten``, ``Linear + ReLU`` per hidden
    size of the ``mlp`` parameters, one ``Linear`` head over all ``num_classes``."""
    sizes = [math.prod(input_shape), *mlp_params(params)["hidden_sizes"]]
    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(sizes[-1], num_classes))
    return torch.nn.Sequential(*layers)


register_model("mlp", _build_mlp)
register_model("alexnet", _build_alexnet)
register_model("resnet18", _build_resnet18)
