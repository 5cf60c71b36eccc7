"""``avalanche-adahat compare``: HAT and AdaHAT against Avalanche's baselines.

One command trains every chosen strategy on one task-incremental benchmark for
every seed, evaluates every seen test experience after each training
experience, and writes ``results.json``, ``results.csv``, ``results.md`` and
PNG plots to ``--output``.

- Benchmarks, models and strategies live in registries (:data:`BENCHMARKS`,
  :data:`MODELS`, :data:`STRATEGIES`); :func:`register_model` adds a backbone.
- The accuracy matrix ``A[i][j]`` is the accuracy on test experience ``j``
  after training experience ``i``, for ``j <= i``. A task-incremental model has
  no head for a task it has not trained, so ``A[i][j]`` for ``j > i`` is
  ``null``. ``avg_acc`` is the mean of the last row, ``bwt`` the mean over
  ``j < N-1`` of ``A[N-1][j] - A[j][j]``, ``forgetting`` the mean over
  ``j < N-1`` of ``max_{i < N-1} A[i][j] - A[N-1][j]``.
- Network capacity (AdaHAT Sec. 4.1, HAT family only) is recorded per task at
  the first training step of the task (``capacity_start``: the paper's curve)
  and at its last step (``capacity_end``); ``capacity`` is the last task's end value.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser as a package (a dependency there)
    import tomli as tomllib

from . import benchmarks as bm

__all__ = [
    "BENCHMARKS",
    "MODELS",
    "STRATEGIES",
    "CompareError",
    "main",
    "register_model",
    "run_compare",
    "summarize",
    "write_report",
]


class CompareError(Exception):
    """A bad option or missing data: reported as one line, exit status 2."""


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
        "apt-get install dataset-fashion-mnist",
    ),
    "permuted_fmnist": BenchmarkSpec(
        "local Fashion-MNIST under one pixel permutation per task (all 10 classes each)",
        lambda n, seed, root: bm.permuted_fmnist(n, seed, data_root=root or bm.DEBIAN_FMNIST),
        10,
        "apt-get install dataset-fashion-mnist",
    ),
    "split_mnist": BenchmarkSpec(
        "Avalanche's SplitMNIST (downloads into --data-root where Avalanche can)",
        _avalanche_classic("SplitMNIST", fixed_class_order=list(range(10))),
        5,
        "let Avalanche download MNIST into --data-root (needs network)",
    ),
    "permuted_mnist": BenchmarkSpec(
        "Avalanche's PermutedMNIST (downloads into --data-root where Avalanche can)",
        _avalanche_classic("PermutedMNIST"),
        10,
        "let Avalanche download MNIST into --data-root (needs network)",
    ),
    "split_cifar10": BenchmarkSpec(
        "Avalanche's SplitCIFAR10 (downloads into --data-root where Avalanche can)",
        _avalanche_classic("SplitCIFAR10", fixed_class_order=list(range(10))),
        5,
        "let Avalanche download CIFAR-10 into --data-root (needs network)",
    ),
    "split_cifar100": BenchmarkSpec(
        "Avalanche's SplitCIFAR100 (downloads into --data-root where Avalanche can)",
        _avalanche_classic("SplitCIFAR100", fixed_class_order=list(range(100))),
        10,
        "let Avalanche download CIFAR-100 into --data-root (needs network)",
    ),
    "split_tinyimagenet": BenchmarkSpec(
        "Avalanche's SplitTinyImageNet (downloads into --data-root where Avalanche can)",
        _avalanche_classic("SplitTinyImageNet", fixed_class_order=list(range(200))),
        10,
        "let Avalanche download Tiny ImageNet into --data-root (needs network)",
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


def _build_mlp(input_shape, num_classes, params):
    from .models import HATMLP

    return HATMLP(math.prod(input_shape), num_classes=num_classes, **_mlp_params(params))


def _mlp_params(params: dict) -> dict:
    p = dict(params)
    p["hidden_sizes"] = tuple(p.get("hidden_sizes", (256, 100, 64)))
    return p


register_model("mlp", _build_mlp)


def _optional_model(name: str, class_names: tuple[str, ...]) -> None:
    """Register a backbone other developers add to ``avalanche_adahat.models``, if importable."""
    from . import models

    cls = next((getattr(models, c) for c in class_names if hasattr(models, c)), None)
    if cls is None:
        return

    def build(input_shape, num_classes, params):
        sig = inspect.signature(cls)
        kwargs = dict(params)
        for key in ("in_channels", "input_channels", "channels"):
            if key in sig.parameters and key not in kwargs:
                kwargs[key] = input_shape[0]
        for key in ("input_shape", "input_size"):
            if key in sig.parameters and key not in kwargs:
                kwargs[key] = tuple(input_shape) if key == "input_shape" else input_shape[-1]
        if "num_classes" in sig.parameters:
            kwargs.setdefault("num_classes", num_classes)
        return cls(**kwargs)

    register_model(name, build)


try:
    _optional_model("alexnet", ("HATAlexNet", "AlexNet", "HATAlexNetLike"))
    _optional_model("resnet18", ("HATResNet18", "ResNet18", "hat_resnet18"))
except Exception:  # pragma: no cover - a half-written backbone must not break compare
    pass


# =========================================================================== strategies
HAT_FAMILY = (
    "adahat",
    "hat",
    "hat_random",
    "hat_const_alpha",
    "hat_const_1",
    "adahat_no_sum",
    "adahat_no_reg",
)


@dataclass
class StrategySpec:
    help: str
    defaults: dict[str, Any] = field(default_factory=dict)


_ADAHAT = {"adjustment_intensity": 1e-6, "epsilon": 0.1, "mask_sparsity_reg_factor": 0.1}
_HAT = {"mask_sparsity_reg_factor": 0.75}
STRATEGIES: dict[str, StrategySpec] = {
    "adahat": StrategySpec("AdaHAT (avalanche_adahat.AdaHAT, adjustment_mode='adahat')", _ADAHAT),
    "hat": StrategySpec("HAT (avalanche_adahat.HAT, adjustment_mode='hat')", _HAT),
    "hat_random": StrategySpec("HAT with uniform(0,1) rates on used parameters", _HAT),
    "hat_const_alpha": StrategySpec(
        "HAT with constant rate alpha on used parameters", {**_HAT, "alpha": 0.5}
    ),
    "hat_const_1": StrategySpec("HAT masks, no gradient constraint (rate 1)", _HAT),
    "adahat_no_sum": StrategySpec("AdaHAT ablation: task count instead of summative mask", _ADAHAT),
    "adahat_no_reg": StrategySpec("AdaHAT ablation: no sparsity term in r", _ADAHAT),
    "naive": StrategySpec("Avalanche Naive (fine-tuning)"),
    "ewc": StrategySpec("Avalanche EWC", {"ewc_lambda": 100.0, "mode": "separate"}),
    "si": StrategySpec("Avalanche SynapticIntelligence", {"si_lambda": 1.0}),
    "lwf": StrategySpec("Avalanche LwF", {"alpha": 1.0, "temperature": 2.0}),
    "mas": StrategySpec("Avalanche MAS", {"lambda_reg": 1.0, "alpha": 0.5}),
    "packnet": StrategySpec(
        "Avalanche PackNet on a PackNetModel MLP (needs --epochs > post_prune_epochs)",
        {"post_prune_epochs": 1, "prune_proportion": 0.5},
    ),
    "agem": StrategySpec("Avalanche GEM-free A-GEM", {"patterns_per_exp": 256, "sample_size": 256}),
    "replay": StrategySpec("Avalanche Replay (class-balanced buffer)", {"mem_size": 1000}),
    "cumulative": StrategySpec("Avalanche Cumulative (joint training on all tasks so far)"),
}
_AVALANCHE_CLASS = {
    "naive": "Naive",
    "ewc": "EWC",
    "si": "SynapticIntelligence",
    "lwf": "LwF",
    "mas": "MAS",
    "packnet": "PackNet",
    "agem": "AGEM",
    "replay": "Replay",
    "cumulative": "Cumulative",
}


def _strategy_class(name: str):
    if name in HAT_FAMILY:
        from .strategies import HAT, AdaHAT

        return AdaHAT if name.startswith("adahat") else HAT
    from avalanche.training import supervised

    return getattr(supervised, _AVALANCHE_CLASS[name])


_COMMON_KEYS = {
    "model", "optimizer", "criterion", "train_mb_size", "train_epochs", "eval_mb_size",
    "device", "plugins", "evaluator", "eval_every",
}  # fmt: skip


def _check_strategy_params(name: str, params: dict) -> None:
    cls = _strategy_class(name)
    allowed = set(inspect.signature(cls.__init__).parameters) - _COMMON_KEYS - {"self"}
    allowed -= {"kwargs", "base_kwargs", "adjustment_mode"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise CompareError(
            f"unknown parameter(s) {', '.join(unknown)} for strategy {name!r} "
            f"({cls.__name__}); allowed: {', '.join(sorted(allowed))}"
        )


# =========================================================================== config
DEFAULTS: dict[str, Any] = {
    "benchmark": "split_digits",
    "n_experiences": None,
    "strategies": ["adahat", "hat", "naive", "ewc"],
    "model": "mlp",
    "model_params": {},
    "epochs": 1,
    "batch_size": 64,
    "eval_batch_size": 1000,
    "optimizer": "adam",
    "lr": 1e-3,
    "seeds": [0],
    "device": "cpu",
    "data_root": None,
    "train_per_task": None,
    "test_per_task": None,
    "threads": None,
    "fast_data": True,
    "progress": "auto",
    "params": {},
    "output": "compare-results",
}


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return text


def _load_config_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CompareError(f"config file {path} not found")
    try:
        if p.suffix == ".toml":
            with open(p, "rb") as f:
                data = tomllib.load(f)
        else:
            data = json.loads(p.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise CompareError(f"cannot parse config file {path}: {e}") from None
    data = data.get("config", data)  # a results.json is a config file too
    unknown = sorted(set(data) - set(DEFAULTS) - {"command"})
    if unknown:
        raise CompareError(
            f"unknown key(s) {', '.join(unknown)} in {path}; allowed: {', '.join(DEFAULTS)}"
        )
    return data


def _split_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _seeds(text) -> list[int]:
    if isinstance(text, list):
        return [int(s) for s in text]
    try:
        return [int(s) for s in _split_list(str(text))]
    except ValueError:
        raise CompareError(f"--seeds must be comma-separated integers, got {text!r}") from None


def build_config(args: argparse.Namespace) -> dict:
    """Defaults < ``--config`` file < command-line options; validated."""
    config = json.loads(json.dumps(DEFAULTS))
    if args.config:
        file_config = _load_config_file(args.config)
        file_config.pop("command", None)
        params = file_config.pop("params", {})
        config.update(file_config)
        for name, values in params.items():
            config["params"].setdefault(name, {}).update(values)
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is None or key == "params":
            continue
        config[key] = value
    if isinstance(config["strategies"], str):
        config["strategies"] = _split_list(config["strategies"])
    config["seeds"] = _seeds(config["seeds"])
    for item in args.set or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise CompareError(f"--set expects NAME.KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        name, param = key.split(".", 1)
        if name == "model":
            config["model_params"][param] = _parse_value(value)
        else:
            config["params"].setdefault(name, {})[param] = _parse_value(value)
    _validate(config)
    return config


def _validate(config: dict) -> None:
    if config["benchmark"] not in BENCHMARKS:
        raise CompareError(
            f"unknown benchmark {config['benchmark']!r}; choose one of {', '.join(BENCHMARKS)}"
        )
    if config["model"] not in MODELS:
        raise CompareError(f"unknown model {config['model']!r}; choose one of {', '.join(MODELS)}")
    if not config["strategies"]:
        raise CompareError("--strategies is empty")
    for name in config["strategies"]:
        if name not in STRATEGIES:
            raise CompareError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    if len(set(config["strategies"])) != len(config["strategies"]):
        raise CompareError(f"--strategies lists a strategy twice: {config['strategies']}")
    for name in config["params"]:
        if name not in STRATEGIES:
            raise CompareError(f"parameters given for unknown strategy {name!r}")
        _check_strategy_params(name, config["params"][name])
    for key in ("epochs", "batch_size", "eval_batch_size"):
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise CompareError(
                f"--{key.replace('_', '-')} must be a positive integer, got {value!r}"
            )
    for key in ("n_experiences", "train_per_task", "test_per_task", "threads"):
        value = config[key]
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise CompareError(
                f"--{key.replace('_', '-')} must be a positive integer, got {value!r}"
            )
    if not (isinstance(config["lr"], (int, float)) and config["lr"] > 0):
        raise CompareError(f"--lr must be a number > 0, got {config['lr']!r}")
    if config["optimizer"] not in ("sgd", "adam"):
        raise CompareError(f"--optimizer must be sgd or adam, got {config['optimizer']!r}")
    if not config["seeds"]:
        raise CompareError("--seeds is empty")
    if not isinstance(config["fast_data"], bool):
        raise CompareError(f"fast_data must be true or false, got {config['fast_data']!r}")
    if config["progress"] not in ("auto", "bar", "lines", "none"):
        raise CompareError(
            f"--progress must be auto, bar, lines or none, got {config['progress']!r}"
        )
    if "packnet" in config["strategies"]:
        post = strategy_params(config, "packnet")["post_prune_epochs"]
        if config["epochs"] <= post:
            raise CompareError(
                f"packnet needs --epochs > post_prune_epochs ({post}), got --epochs "
                f"{config['epochs']}; raise --epochs or --set packnet.post_prune_epochs=..."
            )
        if config["model"] != "mlp":
            raise CompareError("packnet runs on --model mlp only (a PackNetModel MLP)")
    try:
        torch.device(config["device"])
    except RuntimeError as e:
        raise CompareError(f"--device {config['device']!r}: {e}") from None
    if str(config["device"]).startswith("cuda") and not torch.cuda.is_available():
        raise CompareError(f"--device {config['device']}: CUDA is not available here")


def strategy_params(config: dict, name: str) -> dict:
    """The strategy's hyperparameters: documented defaults updated by the configuration."""
    return {**STRATEGIES[name].defaults, **config["params"].get(name, {})}


# =========================================================================== running
def _load_benchmark(config: dict, seed: int):
    spec = BENCHMARKS[config["benchmark"]]
    n = config["n_experiences"] or spec.default_n
    try:
        benchmark = spec.build(n, seed, config["data_root"])
    except bm.DataNotFoundError as e:
        raise CompareError(str(e)) from None
    except ValueError as e:
        raise CompareError(f"benchmark {config['benchmark']}: {e}") from None
    except Exception as e:  # Avalanche's download path: network or files missing
        root = config["data_root"] or "Avalanche's default data folder (~/.avalanche/data)"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CompareError(
            f"benchmark {config['benchmark']}: data not available in {root} "
            f"({type(e).__name__}: {first}); {spec.needs_data or 'check --data-root'}"
        ) from None
    if config["train_per_task"] or config["test_per_task"]:
        benchmark = _subsample(benchmark, config["train_per_task"], config["test_per_task"], seed)
    return benchmark


def _subsample(benchmark, train_n: int | None, test_n: int | None, seed: int):
    """The same benchmark with at most ``train_n`` / ``test_n`` random samples per experience.

    Each experience keeps its dataset's targets and task label (the datasets are
    already task-incremental with class ids from 0); ``tensor_sources`` are cut
    with the same indices.
    """
    from avalanche.benchmarks import dataset_benchmark

    g = torch.Generator().manual_seed(seed)
    sources = getattr(benchmark, "tensor_sources", None) or {}
    new_sources: dict[str, list] = {}

    def cut(stream, n, name):
        out, cut_sources = [], []
        for k, exp in enumerate(stream):
            ds = exp.dataset
            source = sources[name][k] if name in sources else None
            if n is not None and len(ds) > n:
                keep = torch.randperm(len(ds), generator=g)[:n].sort().values
                ds = ds.subset(keep.tolist())
                source = source.subset(keep) if source is not None else None
            out.append(ds)
            cut_sources.append(source)
        new_sources[name] = cut_sources
        return out

    subsampled = dataset_benchmark(
        cut(benchmark.train_stream, train_n, "train"), cut(benchmark.test_stream, test_n, "test")
    )
    subsampled.tensor_sources = new_sources
    return subsampled


def _benchmark_shape(benchmark) -> tuple[tuple[int, ...], int]:
    x = benchmark.train_stream[0].dataset[0][0]
    classes = max(len(e.classes_in_this_experience) for e in benchmark.train_stream)
    return tuple(x.shape), classes


class CapacityRecorder:
    """Avalanche plugin: the HAT family's network capacity at each task's first and last step."""

    def __new__(cls, *args, **kwargs):  # build lazily: a SupervisedPlugin subclass
        from avalanche.core import SupervisedPlugin

        class _Recorder(SupervisedPlugin):
            def __init__(self):
                super().__init__()
                self.start: list[float] = []
                self.end: list[float] = []
                self._first = False

            def before_training_exp(self, strategy, **kw):
                self._first = True

            def after_training_iteration(self, strategy, **kw):
                if self._first:
                    self._first = False
                    self.start.append(_capacity(strategy))

            def after_training_exp(self, strategy, **kw):
                self.end.append(_capacity(strategy))

        return _Recorder()


def _capacity(strategy) -> float:
    return float(strategy.hat_plugin.network_capacity(strategy.model))


def _make_model(config: dict, name: str, input_shape, num_classes):
    if name == "packnet":
        from avalanche.models.packnet import PackNetModel

        params = _mlp_params(config["model_params"])
        sizes = [math.prod(input_shape), *params["hidden_sizes"]]
        layers: list[torch.nn.Module] = [torch.nn.Flatten()]
        for a, b in zip(sizes, sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        # PackNetModel calls its wrappee without task labels: one shared head, whose
        # weights PackNet prunes and freezes per task like the backbone's.
        layers.append(torch.nn.Linear(sizes[-1], num_classes))
        return PackNetModel(torch.nn.Sequential(*layers))
    return MODELS[config["model"]](input_shape, num_classes, dict(config["model_params"]))


def _make_optimizer(config: dict, model: torch.nn.Module):
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config["lr"])
    return torch.optim.Adam(model.parameters(), lr=config["lr"])


def _make_strategy(config: dict, name: str, model, evaluator, plugins):
    cls = _strategy_class(name)
    params = strategy_params(config, name)
    if name in HAT_FAMILY:
        params["adjustment_mode"] = name
        if name != "hat_const_alpha":
            params.pop("alpha", None)
    strategy = cls(
        model=model,
        optimizer=_make_optimizer(config, model),
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=config["batch_size"],
        train_epochs=config["epochs"],
        eval_mb_size=config["eval_batch_size"],
        device=config["device"],
        plugins=None if name == "packnet" else plugins,
        evaluator=evaluator,
        **params,
    )
    if name == "packnet":
        # Avalanche 0.6's PackNet nests its `plugins` argument as one item of its plugin
        # list (`plugins=[plugins, PackNetPlugin(...)]`), where it is never called: add
        # ours (and drop the nested None) after construction.
        strategy.plugins = list(plugins) + [p for p in strategy.plugins if p is not None]
    return strategy


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _progress_mode(config: dict) -> str:
    if config["progress"] == "auto":
        return "bar" if sys.stdout.isatty() else "lines"
    return config["progress"]


def run_one(config: dict, name: str, seed: int, benchmark) -> dict:
    """Train ``name`` on ``benchmark`` with ``seed``; the per-seed result dict."""
    import warnings

    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.logging import InteractiveLogger
    from avalanche.training.plugins import EvaluationPlugin

    progress = _progress_mode(config)
    input_shape, num_classes = _benchmark_shape(benchmark)
    _seed_everything(seed)
    model = _make_model(config, name, input_shape, num_classes)
    loggers = [InteractiveLogger()] if progress == "bar" else []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=loggers)
    recorder = CapacityRecorder() if name in HAT_FAMILY else None
    sources = getattr(benchmark, "tensor_sources", None)
    fast = bm.FastDataPlugin(sources) if sources and config.get("fast_data", True) else None
    plugins = [p for p in (fast, recorder) if p is not None]
    strategy = _make_strategy(config, name, model, evaluator, plugins)
    n = len(benchmark.train_stream)
    matrix: list[list[float | None]] = []
    train_seconds = 0.0
    started = time.perf_counter()
    for i, experience in enumerate(benchmark.train_stream):
        start = time.perf_counter()
        strategy.train(experience)
        train_seconds += time.perf_counter() - start
        metrics = strategy.eval(benchmark.test_stream[: i + 1])
        row: list[float | None] = [None] * n
        for j, test_exp in enumerate(benchmark.test_stream[: i + 1]):
            row[j] = _exp_accuracy(metrics, test_exp)
        matrix.append(row)
        if progress == "lines":
            accs = " ".join(f"{a:.3f}" for a in row[: i + 1])
            print(
                f"  [{name} seed {seed}] task {i + 1}/{n} trained ({train_seconds:.1f}s): {accs}",
                flush=True,
            )
    result = {"seed": seed, **matrix_metrics(matrix), "acc_matrix": matrix}
    result["train_seconds"] = train_seconds
    result["wall_seconds"] = time.perf_counter() - started
    # experiences (training and evaluation) fed from tensor batches / Avalanche's loaders
    result["data_loading"] = dict(fast.counts) if fast else None
    if recorder is not None:
        result["capacity_start"] = recorder.start
        result["capacity_end"] = recorder.end
        result["capacity"] = recorder.end[-1] if recorder.end else None
    else:
        result.update(capacity_start=None, capacity_end=None, capacity=None)
    return result


def _exp_accuracy(metrics: dict, test_exp) -> float:
    suffix = f"/Exp{test_exp.current_experience:03d}"
    for key, value in metrics.items():
        if key.startswith("Top1_Acc_Exp/eval_phase/test_stream") and key.endswith(suffix):
            return float(value)
    raise KeyError(f"no accuracy for test experience {test_exp.current_experience}")


def matrix_metrics(matrix: list[list[float | None]]) -> dict[str, float | None]:
    """``avg_acc``, ``bwt`` and ``forgetting`` of an ``N x N`` accuracy matrix (module docstring)."""
    n = len(matrix)
    last = matrix[-1]
    avg = sum(last) / n
    if n == 1:
        return {"avg_acc": avg, "bwt": None, "forgetting": None}
    bwt = sum(last[j] - matrix[j][j] for j in range(n - 1)) / (n - 1)
    forgetting = sum(max(matrix[i][j] for i in range(j, n - 1)) - last[j] for j in range(n - 1)) / (
        n - 1
    )
    return {"avg_acc": avg, "bwt": bwt, "forgetting": forgetting}


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return mean, std


def _mean_curve(curves: list[list[float] | None]):
    curves = [c for c in curves if c]
    if not curves:
        return None
    length = min(len(c) for c in curves)
    return [sum(c[k] for c in curves) / len(curves) for k in range(length)]


def _mean_matrix(matrices):
    n = len(matrices[0])
    return [
        [
            None if matrices[0][i][j] is None else sum(m[i][j] for m in matrices) / len(matrices)
            for j in range(n)
        ]
        for i in range(n)
    ]


def summarize(per_seed: dict[int, dict]) -> dict:
    """The strategy-level entry of ``results.json``: means over seeds (and ``*_std``)."""
    runs = list(per_seed.values())
    out: dict[str, Any] = {}
    for key in ("avg_acc", "bwt", "forgetting", "capacity", "train_seconds"):
        out[key], out[f"{key}_std"] = _mean_std([r[key] for r in runs])
    out["acc_matrix"] = _mean_matrix([r["acc_matrix"] for r in runs])
    out["capacity_start"] = _mean_curve([r["capacity_start"] for r in runs])
    out["capacity_end"] = _mean_curve([r["capacity_end"] for r in runs])
    out["per_seed"] = {str(seed): r for seed, r in per_seed.items()}
    return out


def versions() -> dict[str, str]:
    import avalanche

    from . import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "avalanche": getattr(avalanche, "__version__", "unknown"),
        "avalanche_adahat": __version__,
    }


def run_compare(config: dict, command: str | None = None) -> dict:
    """Run every strategy for every seed; write the outputs; return ``results.json``'s content."""
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    out_dir = Path(config["output"])
    strategies: dict[str, dict[int, dict]] = {name: {} for name in config["strategies"]}
    started = time.perf_counter()
    for seed in config["seeds"]:
        benchmark = _load_benchmark(config, seed)
        for name in config["strategies"]:
            if _progress_mode(config) != "none":
                print(f"{config['benchmark']}: {name}, seed {seed}", flush=True)
            strategies[name][seed] = run_one(config, name, seed, benchmark)
    results = {
        "config": {**config, "command": command},
        "versions": versions(),
        "wall_seconds": time.perf_counter() - started,
        "strategies": {name: summarize(per) for name, per in strategies.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_outputs(results, out_dir)
    return results


# =========================================================================== outputs
def write_outputs(results: dict, out_dir: Path) -> None:
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _write_csv(results, out_dir / "results.csv")
    (out_dir / "results.md").write_text(results_markdown(results))
    _plots(results, out_dir)


def _write_csv(results: dict, path: Path) -> None:
    fields = ["strategy", "seed", "avg_acc", "bwt", "forgetting", "capacity", "train_seconds"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for name, s in results["strategies"].items():
            for seed, r in s["per_seed"].items():
                writer.writerow([name, seed, *(_csv(r[k]) for k in fields[2:])])
            writer.writerow([name, "mean", *(_csv(s[k]) for k in fields[2:])])
            writer.writerow([name, "std", *(_csv(s[f"{k}_std"]) for k in fields[2:])])


def _csv(value) -> str:
    return "" if value is None else f"{value:.6g}"


def _pm(mean, std, digits: int = 4) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"


def results_markdown(results: dict, heading: str = "##") -> str:
    """One section: the exact command, the settings, the table and the capacity curve."""
    c = results["config"]
    n = len(next(iter(results["strategies"].values()))["acc_matrix"])
    lines = [
        f"{heading} {c['benchmark']}, {n} tasks, {c['epochs']} epoch(s)/task, seeds "
        f"{','.join(map(str, c['seeds']))}: {', '.join(results['strategies'])}",
        "",
        "```",
        c.get("command") or "(command not recorded)",
        "```",
        "",
        f"Model `{c['model']}`{' ' + json.dumps(c['model_params']) if c['model_params'] else ''}, "
        f"{c['optimizer']} lr {c['lr']}, batch {c['batch_size']}, {c['epochs']} epoch(s)/task"
        + (f", {c['train_per_task']} training samples/task" if c["train_per_task"] else "")
        + (f", {c['test_per_task']} test samples/task" if c["test_per_task"] else "")
        + f"; wall time {results['wall_seconds']:.0f} s; "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items())
        + "."
        + _data_loading_note(results),
        "",
        "| strategy | seeds | avg accuracy | BWT | forgetting | capacity (end) | train s / seed |",
        "| --- | ---: | --- | --- | --- | --- | --- |",
    ]
    for name, s in results["strategies"].items():
        lines.append(
            f"| {name} | {len(s['per_seed'])} | {_pm(s['avg_acc'], s['avg_acc_std'])} "
            f"| {_pm(s['bwt'], s['bwt_std'])} "
            f"| {_pm(s['forgetting'], s['forgetting_std'])} "
            f"| {_pm(s['capacity'], s['capacity_std'], 3)} | {s['train_seconds']:.1f} |"
        )
    params = {name: strategy_params(c, name) for name in c["strategies"]}
    params = {k: v for k, v in params.items() if v}
    lines += ["", "Mean ± sample std over seeds. Hyperparameters: " + "; ".join(
        f"{k} {json.dumps(v)}" for k, v in params.items()) + "."]  # fmt: skip
    curves = {
        name: s["capacity_start"]
        for name, s in results["strategies"].items()
        if s.get("capacity_start")
    }
    if curves:
        tasks = max(len(v) for v in curves.values())
        shown = [k for k in range(tasks) if k < 10 or (k + 1) % 10 == 0]
        lines += [
            "",
            "Network capacity at the first training step of each task (mean over seeds):",
            "",
            "| strategy | " + " | ".join(f"task {k + 1}" for k in shown) + " |",
            "| --- |" + " --- |" * len(shown),
        ]
        for name, curve in curves.items():
            cells = [f"{curve[k]:.3f}" if k < len(curve) else "" for k in shown]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def _data_loading_note(results: dict) -> str:
    """How the experiences were fed (``data_loading`` of each run; absent in older results)."""
    counts = [
        r.get("data_loading", "absent")
        for s in results["strategies"].values()
        for r in s["per_seed"].values()
    ]
    if any(c == "absent" for c in counts):
        return ""
    if all(c is None for c in counts):
        return " Data: Avalanche's own per-sample loaders (`--no-fast-data`)."
    tensor = sum(c["tensor"] for c in counts if c)
    avalanche = sum(c["avalanche"] for c in counts if c)
    note = (
        f" Data: {tensor} of {tensor + avalanche} training/evaluation experiences (all runs) "
        "fed from whole-tensor batches checked equal to Avalanche's datasets"
    )
    if avalanche:
        by = sorted(
            name
            for name, s in results["strategies"].items()
            if any(
                r["data_loading"] and r["data_loading"]["avalanche"] for r in s["per_seed"].values()
            )
        )
        note += f", the rest by Avalanche's own loaders ({', '.join(by)})"
    return note + "."


def _plots(results: dict, out_dir: Path) -> None:
    """accuracy.png (bars with seed spread), acc_matrix_<name>.png, capacity.png (HAT family)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:  # another developer's plotting module, when it exists
        from . import plots as shared_plots  # type: ignore[attr-defined]
    except ImportError:
        shared_plots = None

    strategies = results["strategies"]
    names = list(strategies)
    means = [strategies[k]["avg_acc"] for k in names]
    stds = [strategies[k]["avg_acc_std"] or 0.0 for k in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 1.5), 3.5))
    ax.bar(names, means, yerr=stds, capsize=4, color="tab:blue")
    ax.set_ylabel("average accuracy (last row)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{results['config']['benchmark']}: mean ± std over seeds")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy.png", dpi=120)
    plt.close(fig)

    for name in names:
        matrix = strategies[name]["acc_matrix"]
        path = out_dir / f"acc_matrix_{name}.png"
        if len(matrix) <= 12 and hasattr(shared_plots, "plot_accuracy_matrix"):
            try:
                shared_plots.plot_accuracy_matrix(matrix, path, title=name)
                continue
            except Exception:  # fall back to the local plot
                pass
        n = len(matrix)
        data = [[math.nan if v is None else v for v in row] for row in matrix]
        fig, ax = plt.subplots(figsize=(min(12, 1 + 0.5 * n), min(10, 0.8 + 0.45 * n)))
        im = ax.imshow(data, vmin=0, vmax=1, cmap="viridis")
        ax.set_xlabel("test task")
        ax.set_ylabel("after training task")
        ax.set_title(f"{name}: accuracy matrix")
        if n <= 12:
            ax.set_xticks(range(n), [str(k + 1) for k in range(n)])
            ax.set_yticks(range(n), [str(k + 1) for k in range(n)])
            for i in range(n):
                for j in range(i + 1):
                    ax.text(j, i, f"{data[i][j]:.2f}", ha="center", va="center", fontsize=7)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    curves = {k: v["capacity_start"] for k, v in strategies.items() if v.get("capacity_start")}
    if curves:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, curve in curves.items():
            ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=name)
        ax.set_xlabel("task (capacity at its first training step)")
        ax.set_ylabel("network capacity")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "capacity.png", dpi=120)
        plt.close(fig)


def write_report(result_dirs: list[str], output: str, preamble: str | None = None) -> None:
    """Assemble ``docs/RESULTS.md``: a preamble, then each run's ``results.md`` and notes."""
    parts = []
    if preamble:
        parts.append(Path(preamble).read_text().rstrip() + "\n")
    out = Path(output)
    for d in result_dirs:
        d = Path(d)
        if not (d / "results.json").is_file():
            raise CompareError(f"{d} has no results.json (run compare with --output {d} first)")
        results = json.loads((d / "results.json").read_text())
        section = results_markdown(results)
        rel = os.path.relpath(d, out.parent)
        images = [p.name for p in sorted(d.glob("*.png"))]
        show = [p for p in ("accuracy.png", "capacity.png") if p in images]
        section += "\n" + "".join(f"![{p}]({rel}/{p})\n" for p in show)
        section += f"\nAll files of this run: `{rel}/` ({', '.join(images)}).\n"
        notes = d / "NOTES.md"
        if notes.is_file():
            section += "\n" + notes.read_text().rstrip() + "\n"
        parts.append(section)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))


#: Configuration keys that runs must share to be merged: everything that changes results.
MERGE_KEYS = (
    "benchmark", "n_experiences", "model", "model_params", "epochs", "batch_size",
    "eval_batch_size", "optimizer", "lr", "device", "train_per_task", "test_per_task",
    "fast_data",
)  # fmt: skip


def merge_results(result_dirs: list[str], output: str, command: str | None = None) -> dict:
    """Merge ``compare`` outputs of one setting run in parts (other seeds, other
    strategies, other machines) into one: per-seed results side by side, means
    and spreads recomputed, every part's command kept. Writes ``output``'s files.

    Raises :class:`CompareError` when a setting differs (see :data:`MERGE_KEYS`),
    a strategy's hyperparameters differ, or a (strategy, seed) appears twice.
    """
    if len(result_dirs) < 2:
        raise CompareError("merge needs at least two compare output folders")
    parts = []
    for d in result_dirs:
        path = Path(d) / "results.json"
        if not path.is_file():
            raise CompareError(f"{d} has no results.json (a compare --output folder)")
        parts.append((d, json.loads(path.read_text())))
    first_dir, first = parts[0]
    config = json.loads(json.dumps(first["config"]))
    per_seed: dict[str, dict[int, dict]] = {}
    origin: dict[tuple[str, int], str] = {}
    commands = []
    for d, res in parts:
        c = res["config"]
        for key in MERGE_KEYS:
            if c.get(key) != first["config"].get(key):
                raise CompareError(
                    f"{d} differs from {first_dir} in {key}: {c.get(key)!r} vs "
                    f"{first['config'].get(key)!r}; only runs of one setting can be merged"
                )
        if res["versions"] != first["versions"]:
            raise CompareError(
                f"{d} ran with {res['versions']}, {first_dir} with {first['versions']}"
            )
        for name, summary in res["strategies"].items():
            params = strategy_params(c, name)
            if name in per_seed and params != strategy_params(config, name):
                raise CompareError(
                    f"{name} has other hyperparameters in {d} ({json.dumps(params)}) than in "
                    f"an earlier folder ({json.dumps(strategy_params(config, name))})"
                )
            if name not in per_seed:
                per_seed[name] = {}
                config["params"][name] = c["params"].get(name, {})
            for seed, run in summary["per_seed"].items():
                seed = int(seed)
                if seed in per_seed[name]:
                    raise CompareError(
                        f"{name} seed {seed} is in both {origin[name, seed]} and {d}"
                    )
                per_seed[name][seed], origin[name, seed] = run, d
        commands.append(c.get("command") or f"(command of {d} not recorded)")
    if command:
        commands.append(command)
    config.update(
        strategies=list(per_seed),
        seeds=sorted({seed for runs in per_seed.values() for seed in runs}),
        output=output,
        command="\n".join(commands),
        merged_from=[str(d) for d, _ in parts],
    )
    results = {
        "config": config,
        "versions": first["versions"],
        "wall_seconds": sum(res["wall_seconds"] for _, res in parts),
        "strategies": {
            name: summarize(dict(sorted(runs.items()))) for name, runs in per_seed.items()
        },
    }
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_outputs(results, out_dir)
    return results


# =========================================================================== command line
def build_parser() -> argparse.ArgumentParser:
    strategies = "\n".join(
        f"  {name:<16}{spec.help}; defaults {json.dumps(spec.defaults) if spec.defaults else '{}'}"
        for name, spec in STRATEGIES.items()
    )
    benchmarks = "\n".join(f"  {name:<19}{spec.help}" for name, spec in BENCHMARKS.items())
    parser = argparse.ArgumentParser(
        prog="avalanche-adahat compare",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Compare HAT, AdaHAT and Avalanche's baselines on one task-incremental benchmark.\n"
            "Writes results.json, results.csv, results.md and PNG plots to --output."
        ),
        epilog=(
            f"benchmarks:\n{benchmarks}\n\nstrategies (defaults overridable with --set "
            f"NAME.KEY=VALUE or a [params.NAME] config section):\n{strategies}\n\n"
            "config file (JSON, or TOML): the keys are the long options with '_' for '-', "
            'e.g.\n  benchmark = "split_fmnist"\n  strategies = ["adahat", "hat"]\n'
            "  seeds = [0, 1, 2]\n  [params.ewc]\n  ewc_lambda = 1000\n  [model_params]\n"
            "  hidden_sizes = [256, 100, 64]\n"
            "A results.json is also a valid --config file: it reruns the same job.\n"
            "Command-line options override the file."
        ),
    )
    a = parser.add_argument
    a("--config", metavar="FILE", help="JSON or TOML file with any of the options below")
    a(
        "--benchmark",
        choices=None,
        metavar="NAME",
        help=f"benchmark (default {DEFAULTS['benchmark']}): {', '.join(BENCHMARKS)}",
    )
    a(
        "--n-experiences",
        type=int,
        metavar="N",
        help="number of tasks (default per benchmark: 5 for split_*, 10 for permuted_*; "
        "CIFAR-100 and Tiny ImageNet: 10)",
    )
    a(
        "--strategies",
        metavar="LIST",
        help=f"comma-separated strategies (default {','.join(DEFAULTS['strategies'])}); see below",
    )
    a(
        "--set",
        action="append",
        metavar="NAME.KEY=VALUE",
        help="override a strategy hyperparameter (e.g. ewc.ewc_lambda=1000, "
        "adahat.adjustment_intensity=0.1) or a model one (model.hidden_sizes=[400,400]); "
        "VALUE is parsed as JSON when it can be; repeatable",
    )
    a(
        "--model",
        metavar="NAME",
        help=f"backbone (default mlp): {', '.join(MODELS)}; MLP default hidden sizes 256,100,64",
    )
    a("--epochs", type=int, help="training epochs per task (default 1)")
    a("--batch-size", type=int, help="training minibatch size (default 64)")
    a("--eval-batch-size", type=int, help="evaluation minibatch size (default 1000)")
    a("--optimizer", metavar="NAME", help="sgd or adam (default adam, as the AdaHAT paper)")
    a("--lr", type=float, help="learning rate (default 1e-3)")
    a("--seeds", metavar="LIST", help="comma-separated seeds, one full run each (default 0)")
    a("--device", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    a(
        "--data-root",
        metavar="DIR",
        help="where the data is looked for: Fashion-MNIST idx files (default "
        f"{bm.DEBIAN_FMNIST}, from `apt-get install dataset-fashion-mnist`); "
        "Avalanche's benchmarks download into it where they can",
    )
    a(
        "--train-per-task",
        type=int,
        metavar="N",
        help="use at most N random training samples per task (default: all)",
    )
    a(
        "--test-per-task",
        type=int,
        metavar="N",
        help="use at most N random test samples per task (default: all)",
    )
    a("--threads", type=int, metavar="N", help="torch.set_num_threads(N) (default: torch's)")
    a(
        "--no-fast-data",
        dest="fast_data",
        action="store_false",
        default=None,
        help="always use Avalanche's own per-sample data loaders (default: feed strategies "
        "whose data are exactly one experience's from whole-tensor batches where the "
        "benchmark provides them: split/permuted digits and Fashion-MNIST)",
    )
    a(
        "--progress",
        metavar="MODE",
        help="bar (Avalanche's InteractiveLogger), lines (one line per task), none; "
        "default auto: bar on a terminal, lines otherwise",
    )
    a("--output", metavar="DIR", help="output folder (default compare-results)")
    return parser  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    import warnings

    argv = sys.argv[1:] if argv is None else list(argv)
    warnings.filterwarnings("ignore", message="no QP solver found")
    parser = build_parser()
    args = parser.parse_args(argv)
    command = "avalanche-adahat compare " + shlex.join(argv)
    try:
        config = build_config(args)
        if _progress_mode(config) != "none":
            print(
                f"compare: {config['benchmark']}, strategies {','.join(config['strategies'])}, "
                f"seeds {','.join(map(str, config['seeds']))} -> {config['output']}",
                flush=True,
            )
        results = run_compare(config, command)
    except CompareError as e:
        print(f"avalanche-adahat compare: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avalanche-adahat compare: interrupted", file=sys.stderr)
        return 130
    print(results_markdown(results))
    print(f"wrote {config['output']}/results.json, results.csv, results.md and plots")
    return 0


def merge_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="avalanche-adahat merge",
        description="Merge compare output folders of one setting (e.g. seeds run separately, "
        "or extra strategies) into one folder: per-seed results side by side, means and "
        "spreads recomputed, every part's command recorded; then results.json, results.csv, "
        "results.md and plots as compare writes them. Refuses runs whose settings, "
        "package versions or strategy hyperparameters differ, and repeated (strategy, seed).",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="compare --output folders")
    parser.add_argument("-o", "--output", required=True, help="folder for the merged results")
    args = parser.parse_args(argv)
    try:
        results = merge_results(
            args.dirs, args.output, "avalanche-adahat merge " + shlex.join(argv)
        )
    except (CompareError, OSError, json.JSONDecodeError) as e:
        print(f"avalanche-adahat merge: error: {e}", file=sys.stderr)
        return 2
    print(results_markdown(results))
    print(f"wrote {args.output}/results.json, results.csv, results.md and plots")
    return 0


def report_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="avalanche-adahat report",
        description="Assemble a Markdown report (e.g. docs/RESULTS.md) from compare output folders: "
        "each folder's table under the exact command that produced it, its plots, and its "
        "NOTES.md if present.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="compare --output folders")
    parser.add_argument("-o", "--output", default="docs/RESULTS.md", help="report file")
    parser.add_argument("--preamble", metavar="FILE", help="Markdown put before the sections")
    args = parser.parse_args(argv)
    try:
        write_report(args.dirs, args.output, args.preamble)
    except (CompareError, OSError) as e:
        print(f"avalanche-adahat report: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0
