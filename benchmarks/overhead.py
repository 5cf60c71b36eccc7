"""Speed and memory overhead of HAT / AdaHAT against Avalanche's ``Naive``.

For every selected backbone, four strategies train deep copies of one initial
model on identical random data with the same optimizer (SGD, lr 0.01):
Avalanche's ``Naive``, ``Naive`` with one do-nothing plugin (``Naive+plugin``:
what Avalanche's hook dispatch alone costs any plugin-based method),
``avalanche_adahat.HAT`` and ``avalanche_adahat.AdaHAT`` (default settings). Each first trains two one-batch tasks with the real
``strategy.train`` (so the HAT plugin has stored masks and protection is on),
then starts task 3 exactly as ``BaseTemplate.train`` does and runs Avalanche's
own ``training_epoch`` on short lists of mini-batches, alternating between the
strategies (rotating their order every round) after a warm-up. Evaluation
rounds call the real ``strategy.eval`` on all three tasks' test data.

This file is the command line and the run; its sibling modules hold the rest:
``overhead_cases`` (strategies, backbones, data, the iteration clock: how an
iteration is timed), ``overhead_timing`` (the interleaved rounds),
``overhead_adjust`` (the gradient-adjustment micro-benchmark), ``overhead_memory``
(peak memory, one child process per strategy: how it is measured) and
``overhead_report`` (the markdown tables). Python puts this folder first on
``sys.path`` when the script runs, so they import by name.

Run ``python benchmarks/overhead.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

import torch

warnings.filterwarnings("ignore", message=".*QP solver.*")
warnings.filterwarnings("ignore", category=UserWarning, module="avalanche")

import epoch_ratio  # noqa: E402
from overhead_cases import STRATEGIES, model_specs  # noqa: E402
from overhead_memory import measure_memory, memory_child  # noqa: E402
from overhead_report import render_markdown  # noqa: E402
from overhead_timing import bench_model  # noqa: E402


def parse_args(argv=None):
    specs, _ = model_specs()
    names = list(specs)
    parser = argparse.ArgumentParser(
        description=(
            "Time training and evaluation iterations of Avalanche's Naive, Naive with a "
            "do-nothing plugin (the cost of Avalanche's hook dispatch), "
            "avalanche_adahat.HAT and avalanche_adahat.AdaHAT at task 3 (after two "
            "tasks, protection active) on identical models, data and optimizer "
            "(SGD lr 0.01), interleaved in one process; measure peak memory and HAT's "
            "persistent extra memory; time the gradient adjustment alone against a "
            "parameter-sized implementation."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--models",
        default=None,
        help=(
            "comma-separated models among "
            + ", ".join(f"{n} ({s.description})" for n, s in specs.items())
            + ". Default: all importable ones; on CPU resnet18 is left out of the default "
            "(about 11 s per training iteration on one thread) and must be named"
        ),
    )
    parser.add_argument("--batch-size", type=int, default=64, help="mini-batch size (train/eval)")
    parser.add_argument(
        "--iters",
        type=int,
        default=None,
        help=(
            "timed iterations per strategy, for training and for evaluation. Default per model: "
            + ", ".join(f"{n} {s.iters}" for n, s in specs.items())
        ),
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=(
            "untimed task-3 training iterations per strategy before timing. Default per model: "
            + ", ".join(f"{n} {s.warmup}" for n, s in specs.items())
        ),
    )
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    parser.add_argument("--device", default="cpu", choices=devices, help="device to run on")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch.set_num_threads (1 gives stable timings)"
    )
    parser.add_argument(
        "--output",
        default=None,
        help="also write the results to this file: markdown if it ends in .md, else JSON",
    )
    parser.add_argument(
        "--memory-iters",
        type=int,
        default=3,
        help="task-3 training iterations over which peak memory is taken",
    )
    parser.add_argument(
        "--memory-repeats",
        type=int,
        default=3,
        help="sets of memory child processes; the table shows the median of their peaks",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument(
        "--epoch-data",
        default="blobs,digits,fmnist",
        help="data of the headline epoch table (benchmarks/epoch_ratio.py: blobs, digits, "
        "fmnist; fmnist skipped when absent); empty to skip it",
    )
    parser.add_argument("--epoch-tasks", type=int, default=5, help="tasks of the blobs stream")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="skip the (compiled) rows of the epoch table and the compiled adjustment "
        "(its column then times the eager path again)",
    )
    parser.add_argument(
        "--epoch-per-task", type=int, default=1280, help="training samples per blobs task"
    )
    parser.add_argument(
        "--no-adjust", action="store_true", help="skip the adjustment micro-benchmark"
    )
    parser.add_argument(
        "--adjust-reps",
        type=int,
        default=50,
        help="timed repetitions of each adjustment implementation (interleaved)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print a torch.profiler table of one round of training iterations per strategy",
    )
    parser.add_argument("--profile-rows", type=int, default=20, help="rows of each profile table")
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default=None,
        help=(
            "time shown in the table: 'cpu' = process CPU time (time.process_time; robust to "
            "other processes competing for the cores), 'wall' = time.perf_counter (with "
            "torch.cuda.synchronize on CUDA). Both are recorded in the JSON output. Default: "
            "cpu on CPU, wall on CUDA"
        ),
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and embeddings")
    parser.add_argument(
        "--memory-child",
        choices=STRATEGIES,
        default=None,
        help="internal: measure peak memory of one strategy in this process, print JSON",
    )
    args = parser.parse_args(argv)
    if args.clock is None:
        args.clock = "wall" if args.device == "cuda" else "cpu"
    if args.models is None:
        cuda = args.device == "cuda"
        args.models = [n for n, s in specs.items() if s.cpu_default or cuda]
    else:
        args.models = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in args.models if m not in specs]
        if unknown:
            parser.error(f"unknown or unavailable models {unknown}; available: {names}")
    for name in ("batch_size", "threads", "memory_iters", "memory_repeats", "adjust_reps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.iters is not None and args.iters < 1:
        parser.error("--iters must be >= 1")
    if args.warmup is not None and args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args, device)))
        return 0
    specs, notes = model_specs()
    import avalanche

    meta = dict(
        device=(torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"),
        torch=torch.__version__,
        avalanche=getattr(avalanche, "__version__", "?"),
        threads=args.threads,
        batch_size=args.batch_size,
        cpu_count=os.cpu_count(),
        platform=f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        command="python " + " ".join([os.path.relpath(__file__), *sys.argv[1:]]),
        notes=list(notes),
        clock=args.clock,
        clock_text=(
            "process CPU time (time.process_time)"
            if args.clock == "cpu"
            else "wall time (time.perf_counter"
            + (", CUDA synchronized)" if device.type == "cuda" else ")")
        ),
        memory_text=(
            "torch.cuda.max_memory_allocated over the allocation before the model was built"
            if device.type == "cuda"
            else "growth of the peak resident set size over the resident set size before "
            "the model was built; child process per strategy, median of "
            f"{args.memory_repeats} processes"
        ),
    )
    if device.type == "cpu" and "resnet18" in specs and "resnet18" not in args.models:
        meta["notes"].append("resnet18 not run (CPU default; name it with --models to run it)")
    t0 = time.perf_counter()
    epoch_text, epoch_rows = "", []
    if args.epoch_data:
        print("[overhead] whole epochs ...", file=sys.stderr, flush=True)
        epoch_text, epoch_rows = epoch_ratio.epoch_table(
            [m for m in args.models if m in epoch_ratio.MODELS],
            [d for d in args.epoch_data.split(",") if d],
            args.epoch_tasks,
            args.epoch_per_task,
            device,
            compiled=not args.no_compile,
        )
        print(epoch_text, flush=True)
    results = []
    for name in args.models:
        print(f"[overhead] {name}: timing ...", file=sys.stderr, flush=True)
        results.append(bench_model(specs[name], args, device))
    memory = None
    if not args.no_memory:
        print(
            f"[overhead] peak memory ({args.memory_repeats} child processes per strategy) ...",
            file=sys.stderr,
        )
        memory, memory_readings = measure_memory(args)
        meta["memory_readings"] = memory_readings
        if device.type == "cpu" and not os.path.exists("/proc/self/clear_refs"):
            meta["notes"].append("peak RSS not measurable here (no /proc/self/clear_refs)")
    meta["seconds"] = round(time.perf_counter() - t0, 1)
    table = render_markdown(results, memory, meta)
    if epoch_text:
        table = epoch_text + "\n\n" + table
    print(table)
    print(f"Command: {meta['command']}  ({meta['seconds']} s)")
    for res in results:
        for name, text in (res["profile"] or {}).items():
            print(f"\nProfile of {name} on {res['model']} (one round of training iterations):")
            print(text)
    if args.output:
        with open(args.output, "w") as f:
            if args.output.endswith(".md"):
                f.write(table + f"\nCommand: `{meta['command']}` ({meta['seconds']} s)\n")
            else:
                for res in results:
                    res.pop("profile", None)
                json.dump(
                    dict(meta=meta, epochs=epoch_rows, results=results, memory=memory), f, indent=2
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
