"""Whole training epochs of HAT / AdaHAT against Avalanche's ``Naive``, as users run them.

Every strategy trains the same task-incremental stream (2 classes per task) from
deep copies of one initial model with the same optimizer (``--optimizers``: SGD lr
0.01, Adam lr 1e-3, or Adam with ``fused=True``; batch 64, one epoch per task, so
every epoch runs the full annealing schedule of ``s``). Tasks 1 and 2 are trained
untimed (task 2 is the first whose rates constrain, where ``compile_step``
compiles); every later task is one timed ``strategy.train(experience)`` per
strategy, the strategies taking turns in a rotating order, so each task gives one
paired ratio to ``Naive``; the table shows the median over tasks (process CPU
time, one thread by default).

``Naive`` trains the same HAT backbone (its forward gates every layer with
``sigmoid(s_max e^t)``) and flushes subnormal floats during each step as the HAT
plugin does (``_FlushSubnormals``): without it, on CPUs that take microcode assists
on subnormal operands, the baseline itself runs up to twice as slow and the ratios
would flatter HAT. Every strategy reads its batches from whole tensors
(:class:`avalanche_adahat.data.fast_data.FastDataPlugin`), so per-sample loading (about
0.5 ms per Fashion-MNIST image through PIL) does not dilute the ratios.

``AdaHAT (gradient)`` is AdaHAT with ``protect="gradient"`` (the papers' step).
``(compiled)`` rows run with ``compile_step=True`` (:mod:`avalanche_adahat.core.step`);
the seconds their compilation took (wall time, in task 2) are printed under the
table. ``HAT (subnormals kept)`` is HAT with the plugin's subnormal flush switched off:
the regression row for the slowdown that flush removes (gates
``sigmoid(s e)`` below float32's smallest normal number once ``s`` is large).

Data: ``blobs`` (Gaussian blobs, realistic class structure, any input shape),
``digits`` (scikit-learn's 8x8 digits, MLPs only), ``fmnist`` (Split
Fashion-MNIST from the local Debian package, MLPs only; skipped when absent).

    python benchmarks/epoch_ratio.py --models mlp_small,mlp_hat --data blobs,digits
    python benchmarks/epoch_ratio.py --models mlp_hat --data fmnist --optimizers sgd,adam
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import statistics
import sys
import time
import warnings

import torch
from torch import nn
from torch.utils.data import TensorDataset

warnings.filterwarnings("ignore")

from avalanche.benchmarks import nc_benchmark  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402
from avalanche.training import Naive  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin  # noqa: E402

from avalanche_adahat import HAT, AdaHAT, HATPlugin  # noqa: E402
from avalanche_adahat import models as hat_models  # noqa: E402
from avalanche_adahat.data import benchmarks as bm  # noqa: E402
from avalanche_adahat.data.fast_data import FastDataPlugin, sources_from_flat_datasets  # noqa: E402

MODELS = {
    "mlp_small": (lambda d: hat_models.HATMLP(d, (256, 100, 64), 2), "MLP d-256-100-64"),
    "mlp_hat": (lambda d: hat_models.HATMLP(d, (2000, 2000), 2), "MLP d-2000-2000"),
    "alexnet": (lambda d: hat_models.HATAlexNet(3, 32, 2), "HATAlexNet 3x32x32"),
    "resnet18": (lambda d: hat_models.HATResNet18(in_channels=3, num_classes=2), "HATResNet18"),
}
IMAGE_MODELS = ("alexnet", "resnet18")
STRATEGIES = (
    "Naive",
    "HAT",
    "AdaHAT",
    "AdaHAT (gradient)",
    "HAT (compiled)",
    "AdaHAT (compiled)",
    "HAT (subnormals kept)",
)
#: name -> (optimizer class, keywords)
OPTIMIZERS = {
    "sgd": (torch.optim.SGD, {"lr": 0.01}),
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
    "adam_fused": (torch.optim.Adam, {"lr": 1e-3, "fused": True}),
}


class _FlushSubnormals(SupervisedPlugin):
    """Naive's training steps with subnormals flushed, as HATPlugin's are (benchmark only)."""

    def before_training_iteration(self, strategy, **kwargs):
        torch.set_flush_denormal(True)

    def after_training_iteration(self, strategy, **kwargs):
        torch.set_flush_denormal(False)


class _KeepSubnormals(HATPlugin):
    """HATPlugin without the subnormal flush (benchmark only)."""

    def before_training_iteration(self, strategy, **kwargs):
        super().before_training_iteration(strategy, **kwargs)
        self.flush.end()


def blobs(shape, n_tasks, per_task, seed=0):
    g = torch.Generator().manual_seed(seed)
    dim = int(torch.tensor(shape).prod())
    centers = torch.randn(2 * n_tasks, dim, generator=g)
    y = torch.arange(2 * n_tasks).repeat_interleave(per_task // 2 + per_task // 8)
    x = (centers[y] + 0.8 * torch.randn(len(y), dim, generator=g)).reshape(len(y), *shape)
    train_idx = torch.cat([torch.nonzero(y == c).flatten()[: per_task // 2] for c in y.unique()])
    test_idx = torch.cat([torch.nonzero(y == c).flatten()[per_task // 2 :] for c in y.unique()])

    def ds(idx):
        d = TensorDataset(x[idx], y[idx])
        d.targets = y[idx]
        return d

    benchmark = nc_benchmark(
        ds(train_idx), ds(test_idx), n_experiences=n_tasks, task_labels=True, shuffle=False,
        fixed_class_order=list(range(2 * n_tasks)), class_ids_from_zero_in_each_exp=True,
    )  # fmt: skip
    benchmark.tensor_sources = {
        "train": sources_from_flat_datasets(benchmark.train_stream),
        "test": sources_from_flat_datasets(benchmark.test_stream),
    }
    return benchmark


def raise_malloc_thresholds(threshold: int = 1 << 30) -> bool:
    """glibc only: serve blocks up to ``threshold`` from the heap and keep up to as much
    freed memory (``mallopt`` of ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``, as the
    environment variables ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do). A
    parameter-sized temporary freed at one step (an optimizer's, a gradient) is then reused
    at the next instead of being returned to the system and faulted in again, whatever each
    strategy's heap history did to glibc's dynamic thresholds. False where glibc's
    ``mallopt`` is missing or refuses."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, threshold)) and bool(
        libc.mallopt(m_trim_threshold, threshold)
    )


def make_benchmark(data: str, model: str, n_tasks: int, per_task: int):
    if model in IMAGE_MODELS:
        return blobs((3, 32, 32), n_tasks, per_task) if data == "blobs" else None
    if data == "blobs":
        return blobs((784,), n_tasks, per_task)
    if data == "digits":
        return bm.split_digits(5)
    if data == "fmnist":
        try:
            return bm.split_fmnist(5, 0)
        except FileNotFoundError:
            return None
    raise ValueError(data)


def make_strategy(name, model, device, optimizer="sgd", sources=None):
    optimizer_class, optimizer_kwargs = OPTIMIZERS[optimizer]
    kwargs = dict(
        model=model,
        optimizer=optimizer_class(model.parameters(), **optimizer_kwargs),
        train_mb_size=64,
        train_epochs=1,
        device=device,
        evaluator=EvaluationPlugin(loggers=[]),
        plugins=[FastDataPlugin(sources)] if sources else [],
    )
    if name == "Naive":
        kwargs["plugins"].append(_FlushSubnormals())
        return Naive(criterion=nn.CrossEntropyLoss(), **kwargs)
    if name in ("HAT", "HAT (compiled)"):
        return HAT(compile_step=name != "HAT", **kwargs)
    if name in ("AdaHAT", "AdaHAT (compiled)"):
        return AdaHAT(compile_step=name != "AdaHAT", **kwargs)
    if name == "AdaHAT (gradient)":
        return AdaHAT(protect="gradient", **kwargs)
    kwargs["plugins"].append(_KeepSubnormals())
    return Naive(criterion=nn.CrossEntropyLoss(), **kwargs)


def _clock(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def strategy_names(compiled: bool, only=None) -> tuple[str, ...]:
    names = STRATEGIES if only is None else ("Naive", *(n for n in only if n != "Naive"))
    return names if compiled else tuple(n for n in names if "compiled" not in n)


def bench(model_name, data, tasks, per_task, device, compiled=True, optimizer="sgd", only=None):
    """One row: the median over tasks 3.. of each strategy's epoch time over Naive's."""
    benchmark = make_benchmark(data, model_name, tasks, per_task)
    if benchmark is None:
        return None
    stream = benchmark.train_stream
    x0 = stream[0].dataset[0][0]
    torch.manual_seed(0)
    initial = MODELS[model_name][0](x0.numel())
    names = strategy_names(compiled, only)
    sources = getattr(benchmark, "tensor_sources", None)
    strategies = {
        n: make_strategy(n, copy.deepcopy(initial), device, optimizer, sources) for n in names
    }
    for s in strategies.values():
        s.train(stream[0])
        s.train(stream[1])
    times = {n: [] for n in names}
    for k, exp in enumerate(stream[2:]):
        order = names[k % len(names) :] + names[: k % len(names)]
        for n in order:
            start = _clock(device)
            strategies[n].train(exp)
            times[n].append(_clock(device) - start)
    ratios = {n: statistics.median(t / b for t, b in zip(times[n], times["Naive"])) for n in names}
    return {
        "model": model_name,
        "data": data,
        "optimizer": optimizer,
        "samples_per_task": len(stream[1].dataset),
        "timed_tasks": len(stream) - 2,
        "naive_epoch_s": statistics.median(times["Naive"]),
        "ratios": ratios,
        "compile_s": {
            n: s.hat_plugin.step_maths.compile_seconds
            for n, s in strategies.items()
            if "compiled" in n
        },
    }


def epoch_table(
    models, data, tasks, per_task, device, compiled=True, optimizers=("sgd",), only=None
) -> tuple[str, list[dict]]:
    """Markdown table and rows of :func:`bench` for every (model, data, optimizer) that applies."""
    clock = "wall time, CUDA synchronized" if device.type == "cuda" else "process CPU time"
    names = strategy_names(compiled, only)
    lines = [
        f"Epoch time x Naive ({clock}; median over tasks 3..N of paired ratios):",
        "",
        "| model | data | optimizer | samples/task | timed tasks | Naive epoch (s) | "
        + " | ".join(names)
        + " |",
        "| --- | --- | --- | ---: | ---: | ---: |" + " ---: |" * len(names),
    ]
    rows = []
    for model_name in models:
        for name in data:
            for optimizer in optimizers:
                row = bench(model_name, name, tasks, per_task, device, compiled, optimizer, only)
                if row is None:
                    continue
                rows.append(row)
                cells = " | ".join(f"{row['ratios'][n]:.2f}x" for n in names)
                lines.append(
                    f"| {model_name} | {name} | {optimizer} | {row['samples_per_task']} | "
                    f"{row['timed_tasks']} | {row['naive_epoch_s']:.2f} | {cells} |"
                )
                print(lines[-1], file=sys.stderr, flush=True)  # progress
    if rows and compiled:
        lines.append("")
        lines.append(
            "Compilation (s, wall, once per model): "
            + "; ".join(
                f"{r['model']}/{r['data']}/{r['optimizer']}: "
                + ", ".join(f"{n} {t:.1f}" for n, t in r["compile_s"].items())
                for r in rows
            )
        )
    return "\n".join(lines), rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mlp_small,mlp_hat", help=f"among {', '.join(MODELS)}")
    parser.add_argument("--data", default="blobs,digits", help="among blobs, digits, fmnist")
    parser.add_argument("--tasks", type=int, default=5, help="tasks of the blobs stream")
    parser.add_argument(
        "--per-task", type=int, default=1280, help="training samples per blobs task"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-compile", action="store_true", help="skip the (compiled) rows")
    parser.add_argument(
        "--optimizers", default="sgd", help=f"among {', '.join(OPTIMIZERS)} (comma-separated)"
    )
    parser.add_argument(
        "--strategies", default=None, help=f"a subset of: {', '.join(STRATEGIES)} (comma-separated)"
    )
    parser.add_argument(
        "--malloc-thresholds",
        action="store_true",
        help="raise glibc's mmap and trim thresholds first (raise_malloc_thresholds)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    if args.malloc_thresholds:
        print(f"glibc malloc thresholds raised: {raise_malloc_thresholds()}")
    only = None if args.strategies is None else args.strategies.split(",")
    if only is not None and not set(only) <= set(STRATEGIES):
        parser.error(f"--strategies: unknown {sorted(set(only) - set(STRATEGIES))}")
    table, _ = epoch_table(
        args.models.split(","), args.data.split(","), args.tasks, args.per_task,
        torch.device(args.device), compiled=not args.no_compile,
        optimizers=args.optimizers.split(","), only=only,
    )  # fmt: skip
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
