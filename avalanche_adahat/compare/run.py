"""Running ``compare``: the benchmark of a seed, one strategy on it, every strategy and seed."""

from __future__ import annotations

import math
import platform
import random
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from avalanche.core import SupervisedPlugin

from ..data import benchmarks as bm
from ..data.fast_data import FastDataPlugin
from ..metrics.plugin_metrics import accuracy_matrix
from .config import CompareConfig, progress_mode, strategy_params
from .errors import CompareError
from .registry import BENCHMARKS, class_order, data_root_error
from .report import write_outputs
from .results import matrix_metrics, summarize
from .strategy_specs import STRATEGIES

__all__ = ["CapacityRecorder", "load_benchmark", "run_compare", "run_one", "versions"]


# =========================================================================== benchmark
def load_benchmark(config: CompareConfig, seed: int):
    """The configured benchmark for ``seed``, subsampled as configured."""
    spec = BENCHMARKS[config.benchmark]
    n = config.n_experiences or spec.default_n
    build = spec.build_class if config.scenario == "class" else spec.build
    if build is None:
        raise CompareError(f"benchmark {config.benchmark} has no class-incremental version")
    if spec.data_root_help and not config.data_root:  # never download unasked
        raise CompareError(data_root_error(config.benchmark))
    kwargs = {}
    if config.scenario == "class":
        kwargs["class_order"] = class_order(config.class_order, seed, spec.n_classes or 0)
    try:
        benchmark = build(n, seed, config.data_root, **kwargs)
    except bm.DataNotFoundError as e:
        raise CompareError(str(e)) from None
    except ValueError as e:
        raise CompareError(f"benchmark {config.benchmark}: {e}") from None
    except Exception as e:  # Avalanche's download path: network or files missing
        root = config.data_root or "Avalanche's default data folder (~/.avalanche/data)"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CompareError(
            f"benchmark {config.benchmark}: data not available in {root} "
            f"({type(e).__name__}: {first}); {spec.needs_data or 'check --data-root'}"
        ) from None
    order = getattr(benchmark, "classes_order", None)
    if config.train_per_task or config.test_per_task:
        benchmark = _subsample(benchmark, config.train_per_task, config.test_per_task, seed)
    # the classes in the order they were split into experiences (original class ids)
    benchmark.compare_class_order = None if order is None else [int(c) for c in order]
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


def _sample_bytes(benchmark) -> int:
    """The bytes of one stored training sample: as the benchmark stores it where that is
    known (uint8 images: a byte a pixel, e.g. Fashion-MNIST 784, CIFAR 3,072; the digits'
    float32 tensors: 256), else as the model receives it (float32 inputs)."""
    sources = (getattr(benchmark, "tensor_sources", None) or {}).get("train") or [None]
    if sources[0] is not None:
        x = sources[0].x
        return x[0].numel() * x.element_size()
    try:
        from avalanche.benchmarks.utils.dataset_traversal_utils import single_flat_dataset

        flat = single_flat_dataset(benchmark.train_stream[0].dataset)
        data = getattr(flat[0], "data", None) if flat is not None else None
        if isinstance(data, (np.ndarray, torch.Tensor)) and data.ndim >= 2:
            values = math.prod(data.shape[1:])
            return values * (data.itemsize if isinstance(data, np.ndarray) else data.element_size())
    except Exception:  # an unknown layout: the model's input
        pass
    x = torch.as_tensor(benchmark.train_stream[0].dataset[0][0])
    return x.numel() * x.element_size()


def _benchmark_shape(benchmark, scenario: str = "task") -> tuple[tuple[int, ...], int]:
    """One sample's shape and the number of classes: per task (task scenario, class ids
    from 0 in each) or in the whole benchmark (class scenario, global class ids)."""
    x = benchmark.train_stream[0].dataset[0][0]
    if scenario == "class":
        classes = 1 + max(max(e.classes_in_this_experience) for e in benchmark.train_stream)
    else:
        classes = max(len(e.classes_in_this_experience) for e in benchmark.train_stream)
    return tuple(x.shape), classes


# =========================================================================== one strategy
class CapacityRecorder(SupervisedPlugin):
    """Avalanche plugin: the HAT family's network capacity at each task's first and last step."""

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


def _capacity(strategy) -> float:
    return float(strategy.hat_plugin.network_capacity(strategy.model))


def _make_optimizer(config: CompareConfig, model: torch.nn.Module):
    assert config.lr is not None, "build_config fills lr"
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr)
    return torch.optim.Adam(model.parameters(), lr=config.lr)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _evaluator(progress: str, task_id: bool = False):
    """Accuracy per experience; with ``task_id`` also ``TaskIdAcc_Stream`` (task inference)."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.logging import InteractiveLogger
    from avalanche.training.plugins import EvaluationPlugin

    from ..metrics.task_id import task_id_accuracy_metrics

    loggers = [InteractiveLogger()] if progress == "bar" else []
    metrics = [accuracy_metrics(experience=True)]
    if task_id:
        metrics.append(task_id_accuracy_metrics(experience=False, stream=True))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        return EvaluationPlugin(*metrics, loggers=loggers)


def _task_id_accuracy(metrics: dict) -> float | None:
    """``TaskIdAcc_Stream`` of one evaluation, ``None`` where it was not recorded."""
    values = [float(v) for k, v in metrics.items() if k.startswith("TaskIdAcc_Stream")]
    return values[0] if values else None


def run_one(config: CompareConfig, name: str, seed: int, benchmark) -> dict:
    """Train ``name`` on ``benchmark`` with ``seed``; the per-seed result dict."""
    spec = STRATEGIES[name]
    progress = progress_mode(config)
    scenario = config.scenario
    input_shape, num_classes = _benchmark_shape(benchmark, scenario)
    _seed_everything(seed)
    model = spec.build_model(config, input_shape, num_classes)
    infers_tasks = scenario == "class" and spec.hat_family
    evaluator = _evaluator(progress, task_id=infers_tasks)
    recorder = CapacityRecorder() if spec.hat_family else None
    sources = getattr(benchmark, "tensor_sources", None)
    fast = FastDataPlugin(sources) if sources and config.fast_data else None
    trains = any(p.requires_grad for p in model.parameters())  # StreamingLDA: nothing to train
    strategy = spec.build(
        strategy_params(config, name),
        [p for p in (fast, recorder) if p is not None],
        model=model,
        optimizer=_make_optimizer(config, model) if trains else None,
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=config.batch_size,
        train_epochs=config.epochs,
        eval_mb_size=config.eval_batch_size,
        device=config.device,
        evaluator=evaluator,
        scenario=scenario,
    )
    n = len(benchmark.train_stream)
    matrix: list[list[float | None]] = []
    task_id_curve: list[float | None] = []
    train_seconds = eval_seconds = last_eval_seconds = 0.0
    started = time.perf_counter()
    for i, experience in enumerate(benchmark.train_stream):
        start = time.perf_counter()
        strategy.train(experience)
        train_seconds += time.perf_counter() - start
        start = time.perf_counter()
        metrics = strategy.eval(benchmark.test_stream[: i + 1])
        last_eval_seconds = time.perf_counter() - start
        eval_seconds += last_eval_seconds
        row = _accuracy_row(metrics, i, n)
        matrix.append(row)
        task_id_curve.append(_task_id_accuracy(metrics) if infers_tasks else None)
        if progress == "lines":
            accs = " ".join(f"{a:.3f}" for a in row[: i + 1])
            tid = f"; task-id acc {task_id_curve[-1]:.3f}" if task_id_curve[-1] is not None else ""
            print(
                f"  [{name} seed {seed}] task {i + 1}/{n} trained ({train_seconds:.1f}s): "
                f"{accs}{tid}",
                flush=True,
            )
    result: dict[str, Any] = {"seed": seed, **matrix_metrics(matrix), "acc_matrix": matrix}
    # Class scenario, HAT family: TaskIdAcc_Stream over the seen test experiences after
    # each training experience, and after the last one (None elsewhere).
    result["task_id_acc_curve"] = task_id_curve if infers_tasks else None
    result["task_id_acc"] = task_id_curve[-1] if infers_tasks else None
    result["train_seconds"] = train_seconds
    # every evaluation (after each experience), and the last one (the whole test stream)
    result["eval_seconds"] = eval_seconds
    result["final_eval_seconds"] = last_eval_seconds
    result["wall_seconds"] = time.perf_counter() - started
    # what the strategy keeps about past data besides its network (StrategySpec.memory)
    result["memory_bytes"], result["stored_samples"] = spec.memory(
        strategy, _sample_bytes(benchmark)
    )
    result["class_order"] = getattr(benchmark, "compare_class_order", None)
    # experiences (training and evaluation) fed from tensor batches / Avalanche's loaders
    result["data_loading"] = dict(fast.counts) if fast else None
    if recorder is not None:
        result["capacity_start"] = recorder.start
        result["capacity_end"] = recorder.end
        result["capacity"] = recorder.end[-1] if recorder.end else None
    else:
        result.update(capacity_start=None, capacity_end=None, capacity=None)
    return result


def _accuracy_row(metrics: dict, i: int, n: int) -> list[float | None]:
    """Row ``i`` of the accuracy matrix: test experiences ``0..i``, ``None`` for the later ones."""
    row = accuracy_matrix([metrics], n)[0][: i + 1]
    missing = [j for j, value in enumerate(row) if math.isnan(value)]  # not evaluated
    if missing:
        raise KeyError(f"no accuracy for test experience {missing[0]}")
    return row + [None] * (n - i - 1)


# =========================================================================== every strategy and seed
def versions() -> dict[str, str | None]:
    import avalanche

    from .. import __version__

    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "avalanche": getattr(avalanche, "__version__", "unknown"),
        "avalanche_adahat": __version__,
        "avalanche_adahat_commit": source_commit(),
    }
    return versions


def source_commit() -> str | None:
    """The git commit of the package's source (``-dirty`` when the package has uncommitted
    changes), or ``None`` where the package is not a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        if Path(git("rev-parse", "--show-toplevel") or "/nonexistent").resolve() != root:
            return None
        sha = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--", "avalanche_adahat")
    except OSError:  # no git
        return None
    return (sha + ("-dirty" if dirty else "")) or None


def run_compare(config: CompareConfig, command: str | None = None) -> dict:
    """Run every strategy for every seed; write the outputs; return ``results.json``'s content."""
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(config.output)
    strategies: dict[str, dict[int, dict]] = {name: {} for name in config.strategies}
    started = time.perf_counter()
    for seed in config.seeds:
        benchmark = load_benchmark(config, seed)
        for name in config.strategies:
            if progress_mode(config) != "none":
                print(f"{config.benchmark}: {name}, seed {seed}", flush=True)
            strategies[name][seed] = run_one(config, name, seed, benchmark)
    results = {
        "config": {**config.to_dict(), "command": command},
        "versions": versions(),
        "wall_seconds": time.perf_counter() - started,
        "strategies": {name: summarize(per) for name, per in strategies.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_outputs(results, out_dir)
    return results
