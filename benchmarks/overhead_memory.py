"""Peak memory for ``benchmarks/overhead.py``, measured in one child process per strategy.

On CPU: the growth of the resident set size during task-3 iterations (Linux
``VmHWM`` reset through ``/proc/self/clear_refs``) over the resident set size
before the model was built; on CUDA: ``torch.cuda.max_memory_allocated`` over the
allocation before the model was built. Both include the model, its gradients and
the step's temporaries. A child is ``overhead.py --memory-child STRATEGY``.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys

import torch
from overhead_cases import (
    STRATEGIES,
    make_scenario,
    make_strategy,
    model_specs,
    run_train_iterations,
    start_task3,
)

#: The script each memory child runs (with ``--memory-child``).
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "overhead.py")


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(strategy_name: str, args, device: torch.device) -> dict:
    """Peak memory of ``memory_iters`` task-3 training iterations of one strategy."""
    specs, _ = model_specs()
    out = {}
    for model_name in args.models:
        spec = specs[model_name]
        scenario = make_scenario(spec.input_shape, args.batch_size, args.memory_iters, 1)
        _trim()
        if device.type == "cuda":
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated(device)
        else:
            base = (_proc_status_kib("VmRSS") or 0) * 1024
        torch.manual_seed(args.seed)
        strategy = make_strategy(strategy_name, spec.build(), args.batch_size, device)
        batches = start_task3(strategy, scenario, args.seed)
        _trim()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            ok = True
        else:
            ok = _reset_peak_rss()
        run_train_iterations(strategy, batches, args.memory_iters)
        if device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated(device)
        else:
            peak = (_proc_status_kib("VmHWM") or 0) * 1024 if ok else None
        out[model_name] = None if peak is None else peak - base
        del strategy, batches, scenario
        _trim()
    return out


def run_memory_children(args) -> dict[str, dict]:
    """One set of memory child processes, one per strategy, run concurrently:
    ``{strategy: {model: peak bytes or None}}``."""
    procs = {}
    for name in STRATEGIES:
        cmd = [
            sys.executable,
            SCRIPT,
            "--memory-child",
            name,
            "--models",
            ",".join(args.models),
            "--batch-size",
            str(args.batch_size),
            "--device",
            args.device,
            "--threads",
            str(args.threads),
            "--memory-iters",
            str(args.memory_iters),
            "--seed",
            str(args.seed),
        ]
        procs[name] = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"memory child {name} failed:\n{stderr[-3000:]}")
        out[name] = json.loads(stdout.strip().splitlines()[-1])
    return out


def measure_memory(args) -> tuple[dict, dict]:
    """``--memory-repeats`` sets of child processes, one per strategy (a set runs
    concurrently); ``({model: {strategy: median bytes}}, {model: {strategy: [bytes...]}})``.

    Each child measures only its own process, so running them at the same time
    changes no number, only the wall time. The resident-set peak of a few
    iterations moves with the allocator's caching from one process to the next,
    hence the median over several.
    """
    readings: dict[str, dict[str, list]] = {m: {n: [] for n in STRATEGIES} for m in args.models}
    for _ in range(args.memory_repeats):
        for name, data in run_memory_children(args).items():
            for model_name, peak in data.items():
                readings[model_name][name].append(peak)
    medians = {
        m: {
            n: None if None in values else statistics.median(values)
            for n, values in by_strategy.items()
        }
        for m, by_strategy in readings.items()
    }
    return medians, readings
