"""Where an epoch's time goes: process CPU time per part of the training step, per strategy.

The stream, models, optimizers and strategies of ``benchmarks/epoch_ratio.py`` (same
names, same builders). Tasks 1 and 2 are trained untimed; then every strategy's
``optimizer.step``, ``forward`` and ``backward`` and the HAT plugin's hooks are wrapped
with process-time counters, and tasks 3..N are trained once per strategy in rotating
order. The table gives, per strategy, the seconds summed over the timed tasks: the
whole epoch, the optimizer step (under plain SGD it includes the rated update of the
covered parameters, ``training/sgd_step.py``), forward, backward, the plugin's hooks
together, and the rest (data, Avalanche's loop); and the epoch's ratio to ``Naive``.

    python benchmarks/step_breakdown.py --model mlp_hat --data fmnist --optimizer sgd \\
        --strategies "HAT,HAT (compiled),AdaHAT,AdaHAT (compiled)"
"""

from __future__ import annotations

import argparse
import collections
import copy
import time

import torch
from epoch_ratio import (
    MODELS,
    OPTIMIZERS,
    STRATEGIES,
    make_benchmark,
    make_strategy,
    raise_malloc_thresholds,
)

#: the plugin's hooks that run inside a training step
HOOKS = (
    "before_training_iteration",
    "before_backward",
    "before_update",
    "after_update",
    "after_training_iteration",
)
PARTS = ("epoch", "optimizer.step", "forward", "backward", "hooks", "rest")


def _count(counters: dict, key: str, obj, attr: str) -> None:
    """Replace ``obj.attr`` by a wrapper adding its process time to ``counters[key]``."""
    inner = getattr(obj, attr)

    def timed(*args, **kwargs):
        start = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            counters[key] += time.process_time() - start

    setattr(obj, attr, timed)


def breakdown(
    model_name: str, data: str, optimizer: str, names: list[str], tasks: int, per_task: int
):
    """``{strategy: {part: seconds}}`` over tasks 3..N (see the module docstring)."""
    benchmark = make_benchmark(data, model_name, tasks, per_task)
    if benchmark is None:
        raise SystemExit(f"no {data} data for {model_name} (Fashion-MNIST not installed?)")
    stream = benchmark.train_stream
    torch.manual_seed(0)
    initial = MODELS[model_name][0](stream[0].dataset[0][0].numel())
    sources = getattr(benchmark, "tensor_sources", None)
    cpu = torch.device("cpu")
    strategies = {
        n: make_strategy(n, copy.deepcopy(initial), cpu, optimizer, sources) for n in names
    }
    counters = {n: collections.defaultdict(float) for n in names}
    for name, strategy in strategies.items():
        strategy.train(stream[0])
        strategy.train(stream[1])
        c = counters[name]
        _count(c, "optimizer.step", strategy.optimizer, "step")
        _count(c, "forward", strategy, "forward")
        _count(c, "backward", strategy, "backward")
        plugin = getattr(strategy, "hat_plugin", None)
        for hook in HOOKS if plugin is not None else ():
            _count(c, "hooks", plugin, hook)
    for k, experience in enumerate(stream[2:]):
        for name in names[k % len(names) :] + names[: k % len(names)]:
            start = time.process_time()
            strategies[name].train(experience)
            counters[name]["epoch"] += time.process_time() - start
    for c in counters.values():
        c["rest"] = c["epoch"] - sum(c[p] for p in PARTS[1:-1])
    return {n: dict(c) for n, c in counters.items()}


def table(result: dict) -> str:
    naive = result["Naive"]["epoch"]
    lines = [
        "| strategy | " + " | ".join(f"{p} (s)" for p in PARTS) + " | epoch x Naive |",
        "| --- |" + " ---: |" * (len(PARTS) + 1),
    ]
    for name, parts in result.items():
        cells = " | ".join(f"{parts.get(p, 0.0):.2f}" for p in PARTS)
        lines.append(f"| {name} | {cells} | {parts['epoch'] / naive:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mlp_hat", choices=sorted(MODELS))
    parser.add_argument("--data", default="fmnist", help="blobs, digits or fmnist")
    parser.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZERS))
    parser.add_argument("--tasks", type=int, default=5, help="tasks of the blobs stream")
    parser.add_argument("--per-task", type=int, default=1280, help="samples per blobs task")
    parser.add_argument("--strategies", default="HAT,AdaHAT", help=f"among {', '.join(STRATEGIES)}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--malloc-thresholds",
        action="store_true",
        help="raise glibc's mmap and trim thresholds first (epoch_ratio.raise_malloc_thresholds)",
    )
    args = parser.parse_args(argv)
    if args.malloc_thresholds and not raise_malloc_thresholds():
        parser.error("--malloc-thresholds: glibc's mallopt is not available here")
    only = [s for s in args.strategies.split(",") if s != "Naive"]
    if not set(only) <= set(STRATEGIES):
        parser.error(f"--strategies: unknown {sorted(set(only) - set(STRATEGIES))}")
    torch.set_num_threads(args.threads)
    result = breakdown(
        args.model, args.data, args.optimizer, ["Naive", *only], args.tasks, args.per_task
    )
    print(f"{args.model}, {args.data}, {args.optimizer}: seconds over the timed tasks")
    print()
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
