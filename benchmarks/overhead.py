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

An iteration is timed from ``before_training_iteration`` (``before_eval_iteration``)
of a plugin placed first in the plugin list to ``after_training_iteration``
(``after_eval_iteration``) of a plugin placed last, so every other plugin's
hooks are inside the measurement; data loading is outside it. The evaluator has
no metrics and no loggers.

Peak memory is measured in one child process per strategy: on CPU the growth of
the resident set size during task-3 iterations (Linux ``VmHWM`` reset through
``/proc/self/clear_refs``) over the resident set size before the model was
built; on CUDA ``torch.cuda.max_memory_allocated`` over the allocation before
the model was built. Both include the model, its gradients and the step's
temporaries.

The adjustment micro-benchmark times, per covered parameter element, the
gradient adjustment of ``HATPlugin.before_update`` (unit-sized rates combined
by an outer max, docs/ALGORITHM.md §3) against a straightforward implementation that builds
parameter-sized importance tensors every step, as the reference code does.

Run ``python benchmarks/overhead.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import TensorDataset

warnings.filterwarnings("ignore", message=".*QP solver.*")
warnings.filterwarnings("ignore", category=UserWarning, module="avalanche")

from avalanche.benchmarks import nc_benchmark  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402
from avalanche.training import Naive  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin  # noqa: E402
from avalanche.training.templates.base import _group_experiences_by_stream  # noqa: E402

from avalanche_adahat import HAT, AdaHAT  # noqa: E402
from avalanche_adahat import models as hat_models  # noqa: E402
from avalanche_adahat.step import StepMaths  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import epoch_ratio  # noqa: E402

#: ``Naive+plugin`` is Naive with one plugin that does nothing: Avalanche calls every
#: hook of every plugin, so this row is the floor any plugin-based method pays.
STRATEGIES = ("Naive", "Naive+plugin", "HAT", "AdaHAT")


# ---------------------------------------------------------------- models
@dataclass
class ModelSpec:
    name: str
    description: str
    input_shape: tuple[int, ...]
    iters: int  # default timed iterations per strategy (train and eval)
    warmup: int  # default warm-up iterations per strategy
    per_round: int  # iterations of one strategy before switching to the next
    cpu_default: bool = True  # part of the default --models on CPU
    build: object = field(default=None, repr=False)


def _model_specs() -> tuple[dict[str, ModelSpec], list[str]]:
    """The benchmarked backbones, and notes on those that are not importable."""
    specs = {
        "mlp_hat": ModelSpec(
            "mlp_hat",
            "MLP 784-2000-2000 (HAT paper)",
            (784,),
            120,
            3,
            2,
            build=lambda: hat_models.HATMLP(784, (2000, 2000), 2),
        ),
        "mlp_small": ModelSpec(
            "mlp_small",
            "MLP 784-256-100-64 (AdaHAT paper)",
            (784,),
            600,
            20,
            5,
            build=lambda: hat_models.HATMLP(784, (256, 100, 64), 2),
        ),
    }
    notes = []
    cls = getattr(hat_models, "HATAlexNet", None)
    if cls is not None:
        specs["alexnet"] = ModelSpec(
            "alexnet",
            "HATAlexNet, 3x32x32 input",
            (3, 32, 32),
            32,
            2,
            2,
            build=lambda: cls(in_channels=3, input_size=32, num_classes=2),
        )
    else:
        notes.append("alexnet skipped: avalanche_adahat.models has no HATAlexNet")
    cls18 = getattr(hat_models, "HATResNet18", None)
    if cls18 is not None:
        specs["resnet18"] = ModelSpec(
            "resnet18",
            "HATResNet18, 3x32x32 input",
            (3, 32, 32),
            3,
            1,
            1,
            cpu_default=False,  # about 11 s per training iteration on one CPU thread
            build=lambda: cls18(in_channels=3, num_classes=2),
        )
    else:
        notes.append("resnet18 skipped: avalanche_adahat.models has no HATResNet18")
    return specs, notes


# ---------------------------------------------------------------- data
def _dataset(x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
    ds = TensorDataset(x, y)
    ds.targets = y
    return ds


def make_scenario(input_shape, batch_size: int, task3_batches: int, test_batches: int, seed=0):
    """Three task-incremental 2-class tasks of random tensors.

    Tasks 1 and 2 have one training batch each (enough to store their masks);
    task 3 has ``task3_batches``; every task has ``test_batches`` test batches.
    """
    g = torch.Generator().manual_seed(seed)
    per_class_train = [batch_size // 2] * 4 + [batch_size * task3_batches // 2] * 2
    per_class_test = [max(1, batch_size * test_batches // 2)] * 6

    def tensors(counts):
        xs = [torch.randn(n, *input_shape, generator=g) for n in counts]
        ys = [torch.full((n,), c, dtype=torch.long) for c, n in enumerate(counts)]
        return torch.cat(xs), torch.cat(ys)

    train, test = _dataset(*tensors(per_class_train)), _dataset(*tensors(per_class_test))
    return nc_benchmark(
        train,
        test,
        n_experiences=3,
        task_labels=True,
        shuffle=False,
        seed=seed,
        fixed_class_order=list(range(6)),
        class_ids_from_zero_in_each_exp=True,
    )


# ---------------------------------------------------------------- timing plugins
class _Clock:
    """Per-iteration wall time (``perf_counter``) and process CPU time (``process_time``).

    Each record is ``(round, wall_seconds, cpu_seconds)``.
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.enabled = False
        self.round = 0
        self.start = (0.0, 0.0)
        self.train: list[tuple[int, float, float]] = []
        self.eval: list[tuple[int, float, float]] = []

    def now(self) -> tuple[float, float]:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter(), time.process_time()

    def record(self, records: list) -> None:
        wall, cpu = self.now()
        records.append((self.round, wall - self.start[0], cpu - self.start[1]))


class StartTimer(SupervisedPlugin):
    """First plugin of the list: starts the iteration clock."""

    def __init__(self, clock: _Clock):
        super().__init__()
        self.clock = clock

    def before_training_iteration(self, strategy, **kwargs):
        self.clock.start = self.clock.now()

    def before_eval_iteration(self, strategy, **kwargs):
        self.clock.start = self.clock.now()


class StopTimer(SupervisedPlugin):
    """Last plugin of the list: records the iteration time."""

    def __init__(self, clock: _Clock):
        super().__init__()
        self.clock = clock

    def after_training_iteration(self, strategy, **kwargs):
        if self.clock.enabled:
            self.clock.record(self.clock.train)

    def after_eval_iteration(self, strategy, **kwargs):
        if self.clock.enabled:
            self.clock.record(self.clock.eval)


# ---------------------------------------------------------------- strategies
def make_strategy(name: str, model: nn.Module, batch_size: int, device: torch.device):
    clock = _Clock(device)
    kwargs = dict(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        train_mb_size=batch_size,
        train_epochs=1,
        eval_mb_size=batch_size,
        device=device,
        plugins=[StartTimer(clock)],
        evaluator=EvaluationPlugin(loggers=[]),
    )
    if name == "Naive":
        strategy = Naive(criterion=nn.CrossEntropyLoss(), **kwargs)
    elif name == "Naive+plugin":
        kwargs["plugins"] = kwargs["plugins"] + [SupervisedPlugin()]  # every hook a no-op
        strategy = Naive(criterion=nn.CrossEntropyLoss(), **kwargs)
    elif name == "HAT":
        strategy = HAT(**kwargs)
    elif name == "AdaHAT":
        strategy = AdaHAT(**kwargs)
    else:
        raise ValueError(name)
    strategy.plugins.append(StopTimer(clock))  # after the evaluator and the clock plugin
    strategy.bench_clock = clock
    return strategy


def start_task3(strategy, scenario, seed: int) -> list:
    """Train tasks 1 and 2, then open task 3 as ``BaseTemplate.train`` does.

    Returns task 3's mini-batches (in loader order, not shuffled).
    """
    torch.manual_seed(seed)  # same task embeddings for every strategy
    for exp in scenario.train_stream[:2]:
        strategy.train(exp, eval_streams=[])
    exp = scenario.train_stream[2]
    strategy.is_training = True
    strategy._stop_training = False
    strategy.model.train()
    strategy.model.to(strategy.device)
    strategy._eval_streams = _group_experiences_by_stream([[exp]])
    strategy._before_training()
    strategy.experience = exp
    strategy._before_training_exp(shuffle=False)
    strategy._before_training_epoch()  # the HAT plugin reads the number of batches here
    return [list(b) for b in strategy.dataloader]


def count_ops(strategy, batches: list, n: int = 4) -> float:
    """ATen operators dispatched per training iteration (forward, backward, hooks, update),
    averaged over ``n`` iterations: on small models the per-step cost is mostly per-op."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Counter.calls += 1
            return func(*args, **(kwargs or {}))

    with Counter():
        run_train_iterations(strategy, batches, n)
    return Counter.calls / n


def run_train_iterations(strategy, batches: list, n: int, offset: int = 0) -> None:
    """``n`` iterations of Avalanche's own ``training_epoch`` over a list of batches."""
    chunk = [list(batches[(offset + i) % len(batches)]) for i in range(n)]
    strategy.dataloader = chunk
    strategy.training_epoch()


def persistent_hat_bytes(strategy) -> dict:
    """Bytes of HAT state (masks, embeddings, plugin per-task state) vs parameter bytes."""
    model = strategy.model
    masks = model.hat_masks()
    emb_ids = {id(p) for m in masks for p in m.embeddings.parameters()}
    buffers = sum(b.numel() * b.element_size() for m in masks for b in m.buffers())
    embeddings = sum(p.numel() * p.element_size() for m in masks for p in m.embeddings.parameters())
    params = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in emb_ids)
    plugin = strategy.hat_plugin
    # The plugin's per-task state: the rate plan's unit vectors (measures, layer
    # index, current rates) and the sparsity regulariser's (layers + 1) x units map.
    plugin.current_unit_rates(model)
    plan = plugin._rate_plan
    state = [plan.cumulative, plan.summative, plan.slot_layer, plan.rates]
    state += list(plugin._sparsity_map or ())
    rates = sum(t.numel() * t.element_size() for t in state)
    units = sum(m.num_units for m in masks)
    return dict(
        units=units,
        tasks=len(model.trained_tasks()),
        param_bytes=params,
        mask_bytes=buffers,
        embedding_bytes=embeddings,
        rate_bytes=rates,
        extra_bytes=buffers + embeddings + rates,
    )


# ---------------------------------------------------------------- adjustment micro-benchmark
def adjust_ours(strategy) -> None:
    """The plugin's own ``before_update`` with only covered gradients present.

    The task embeddings have no gradient here and ``clip_grad_norm`` is off by
    default, so what runs is the adjustment (``current_unit_rates`` and the
    multiplication of each covered gradient by its rate), as shipped.
    """
    strategy.hat_plugin.before_update(strategy)


def adjust_compiled(strategy, maths) -> None:
    """:func:`adjust_ours` with the step maths compiled (``compile_step=True``:
    :func:`avalanche_adahat.step.scale_by_rates` fused by ``torch.compile``)."""
    plugin = strategy.hat_plugin
    eager, plugin.step_maths = plugin.step_maths, maths
    try:
        plugin.before_update(strategy)
    finally:
        plugin.step_maths = eager


def adjust_parameter_sized(strategy) -> None:
    """Straightforward comparison point: parameter-sized importance tensors every step.

    For each covered parameter: expand the output and input units' measures to
    the parameter's shape, ``P = min(S_out[i], S_in[j])`` (one tensor of the
    parameter's size), then the parameter-wise rate (HAT: ``1 - P``; AdaHAT:
    ``r / (P + r)``), then multiply the gradient. This is how the reference code
    builds its parameter-wise masks.
    """
    plugin, model = strategy.hat_plugin, strategy.model
    mode = plugin.adjustment_mode
    masks = model.hat_masks()
    index = {id(m): i for i, m in enumerate(masks)}
    for cp in model.covered_parameters():
        p, grad = cp.param, cp.param.grad
        if grad is None:
            continue
        if mode == "hat":
            unit = lambda m: m.cumulative  # noqa: E731
        elif mode == "adahat":
            unit = lambda m: m.summative  # noqa: E731
        else:
            raise ValueError(f"no parameter-sized reference for mode {mode!r}")
        tail = [1] * (p.dim() - 1)
        measure = unit(cp.out_mask).view(-1, *tail).expand_as(p)
        if cp.in_mask is not None:
            in_units = cp.expand_in(unit(cp.in_mask))
            measure = torch.minimum(measure, in_units.view(1, -1, *tail[1:]).expand_as(p))
        if mode == "hat":
            rate = 1 - measure
        else:
            r = plugin._layer_r(plugin.layer_sparsity)  # one r_l per layer
            r = r[index[id(cp.out_mask)]] if isinstance(r, torch.Tensor) else r
            rate = r / (measure + r)
        grad.mul_(rate)


def bench_adjustment(
    strategy, reps: int, device: torch.device, col: int = 1, compiled: bool = True
) -> dict:
    """Median ns per covered parameter element of each implementation, interleaved
    (the gradient adjustment: the plugin runs with ``protect="gradient"`` here): the
    plugin's eager path, the same compiled (its compilation in the warm-up), and
    parameter-sized tensors as the reference code builds them."""
    plugin, model = strategy.hat_plugin, strategy.model
    plugin.protect = "gradient"
    covered = model.covered_parameters()
    n_params = sum(cp.param.numel() for cp in covered)
    g = torch.Generator(device="cpu").manual_seed(0)
    saved = [torch.randn(cp.param.shape, generator=g).to(device) for cp in covered]
    for p in model.parameters():
        p.grad = None  # embeddings, heads: no gradient, no compensation
    if plugin.clip_grad_norm is not None:
        raise ValueError("the adjustment micro-benchmark needs clip_grad_norm=None")
    for cp, s in zip(covered, saved):
        cp.param.grad = s.clone()

    def reset():
        for cp, s in zip(covered, saved):
            cp.param.grad.copy_(s)

    maths = StepMaths(compile=compiled)  # eager when not compiled: the row says so
    fns = {
        "ours": adjust_ours,
        "compiled": lambda s: adjust_compiled(s, maths),
        "parameter_sized": adjust_parameter_sized,
    }
    # All implementations must adjust the gradients identically (compiled: bitwise).
    with torch.no_grad():
        reset()
        adjust_ours(strategy)
        ours_grads = [cp.param.grad.clone() for cp in covered]
        reset()
        fns["compiled"](strategy)
        assert all(torch.equal(cp.param.grad, a) for cp, a in zip(covered, ours_grads))
        reset()
        adjust_parameter_sized(strategy)
        for cp, a in zip(covered, ours_grads):
            torch.testing.assert_close(cp.param.grad, a, rtol=1e-5, atol=1e-12)

    clock = _Clock(device)
    names = tuple(fns)
    times = {n: [] for n in names}
    with torch.no_grad():
        for i in range(reps + 2):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                reset()
                t0 = clock.now()[col - 1]
                fns[name](strategy)
                dt = clock.now()[col - 1] - t0
                if i >= 2:  # two warm-up repetitions
                    times[name].append(dt)
    for cp in covered:
        cp.param.grad = None
    ours = statistics.median(times["ours"]) / n_params * 1e9
    compiled = statistics.median(times["compiled"]) / n_params * 1e9
    ref = statistics.median(times["parameter_sized"]) / n_params * 1e9
    return dict(
        mode=plugin.adjustment_mode,
        covered_params=n_params,
        ours_ns=ours,
        compiled_ns=compiled,
        compile_s=maths.compile_seconds,
        parameter_sized_ns=ref,
        speedup=ref / ours,
    )


# ---------------------------------------------------------------- timing driver
def bench_model(spec: ModelSpec, args, device: torch.device) -> dict:
    iters = args.iters if args.iters is not None else spec.iters
    warmup = args.warmup if args.warmup is not None else spec.warmup
    per_round = max(1, min(spec.per_round, iters))
    rounds = math.ceil(iters / per_round)
    test_batches = max(1, math.ceil(per_round / 3))
    scenario = make_scenario(spec.input_shape, args.batch_size, per_round, test_batches)
    torch.manual_seed(args.seed)
    initial = spec.build()
    strategies = {}
    batches = {}
    for name in STRATEGIES:
        strategies[name] = make_strategy(name, copy.deepcopy(initial), args.batch_size, device)
        batches[name] = start_task3(strategies[name], scenario, args.seed)

    # warm-up, then interleaved training rounds in rotating order
    for name in STRATEGIES:
        run_train_iterations(strategies[name], batches[name], warmup)
    for k in range(rounds):
        for j in range(len(STRATEGIES)):
            name = STRATEGIES[(k + j) % len(STRATEGIES)]
            s = strategies[name]
            s.bench_clock.enabled, s.bench_clock.round = True, k
            run_train_iterations(s, batches[name], per_round, offset=k * per_round)
            s.bench_clock.enabled = False

    extra = persistent_hat_bytes(strategies["HAT"])
    ops = {name: count_ops(strategies[name], batches[name]) for name in STRATEGIES}
    adjustment = []
    if not args.no_adjust:
        for name in ("HAT", "AdaHAT"):
            adjustment.append(
                bench_adjustment(
                    strategies[name],
                    args.adjust_reps,
                    device,
                    2 if args.clock == "cpu" else 1,
                    compiled=not args.no_compile,
                )  # fmt: skip
            )

    # evaluation rounds: the real strategy.eval on all three tasks' test data
    for name in STRATEGIES:
        strategies[name].eval(scenario.test_stream)  # warm-up
    eval_rounds = math.ceil(iters / (3 * test_batches))
    for k in range(eval_rounds):
        for j in range(len(STRATEGIES)):
            name = STRATEGIES[(k + j) % len(STRATEGIES)]
            s = strategies[name]
            s.bench_clock.enabled, s.bench_clock.round = True, k
            s.eval(scenario.test_stream)
            s.bench_clock.enabled = False

    profile = None
    if args.profile:
        profile = {}
        for name in STRATEGIES:
            with torch.profiler.profile(activities=_activities(device)) as prof:
                run_train_iterations(strategies[name], batches[name], per_round)
            profile[name] = prof.key_averages().table(
                sort_by="self_cpu_time_total", row_limit=args.profile_rows
            )

    col = 2 if args.clock == "cpu" else 1
    naive = strategies["Naive"].bench_clock
    timing = {}
    for name in STRATEGIES:
        clock = strategies[name].bench_clock
        timing[name] = dict(
            train_ms=statistics.median(r[col] for r in clock.train) * 1e3,
            eval_ms=statistics.median(r[col] for r in clock.eval) * 1e3,
            train_ratio=paired_ratio(clock.train, naive.train, col),
            eval_ratio=paired_ratio(clock.eval, naive.eval, col),
            train_n=len(clock.train),
            eval_n=len(clock.eval),
            train_records=clock.train,
            eval_records=clock.eval,
        )
    n_params = sum(p.numel() for p in initial.parameters())
    return dict(
        model=spec.name,
        description=spec.description,
        params=n_params,
        timing=timing,
        persistent=extra,
        ops_per_iteration=ops,
        adjustment=adjustment,
        profile=profile,
    )


def paired_ratio(records: list, baseline: list, col: int) -> float:
    """Median over rounds of (median time in round k) / (baseline's median in round k).

    Rounds are adjacent in time, so a burst of load from other processes moves
    both terms of a round's ratio alike.
    """
    ratios = []
    for k in sorted({r[0] for r in records}):
        a = [r[col] for r in records if r[0] == k]
        b = [r[col] for r in baseline if r[0] == k]
        if a and b:
            ratios.append(statistics.median(a) / statistics.median(b))
    return statistics.median(ratios)


def _activities(device):
    acts = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    return acts


# ---------------------------------------------------------------- memory (child processes)
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
    specs, _ = _model_specs()
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
            os.path.abspath(__file__),
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


# ---------------------------------------------------------------- report
def _mib(b) -> str:
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def _ratio(a, b) -> str:
    return "n/a" if a is None or b in (None, 0) else f"{a / b:.3f}"


def render_markdown(results: list[dict], memory: dict | None, meta: dict) -> str:
    lines = [
        f"Device: {meta['device']}; torch {meta['torch']}; avalanche {meta['avalanche']}; "
        f"threads {meta['threads']}; batch size {meta['batch_size']}; "
        f"{meta['cpu_count']} logical CPUs; {meta['platform']}",
        "",
        f"Per-iteration {meta['clock_text']} at task 3: median over n iterations; "
        "x Naive = median over interleaved rounds of the round's median ratio to Naive. "
        "Peak memory during task-3 training iterations (" + meta["memory_text"] + "):",
        "",
        "| model | params | strategy | train ms/iter (n) | train x Naive | eval ms/iter (n) "
        "| eval x Naive | peak train MiB | peak x Naive |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        t = res["timing"]
        mem = (memory or {}).get(res["model"], {})
        for name in STRATEGIES:
            row = t[name]
            lines.append(
                f"| {res['model']} | {res['params']:,} | {name} "
                f"| {row['train_ms']:.2f} ({row['train_n']}) "
                f"| {row['train_ratio']:.3f} "
                f"| {row['eval_ms']:.2f} ({row['eval_n']}) "
                f"| {row['eval_ratio']:.3f} "
                f"| {_mib(mem.get(name))} | {_ratio(mem.get(name), mem.get('Naive'))} |"
            )
    lines += [
        "",
        "ATen operators dispatched per training iteration at task 3 (forward, backward, "
        "hooks, optimizer step; mean over 4 iterations) and the difference to Naive:",
        "",
        "| model | " + " | ".join(STRATEGIES) + " |",
        "| --- |" + " ---: |" * len(STRATEGIES),
    ]
    for res in results:
        ops = res["ops_per_iteration"]
        cells = [
            f"{ops[n]:.0f}" + ("" if n == "Naive" else f" ({ops[n] - ops['Naive']:+.0f})")
            for n in STRATEGIES
        ]
        lines.append(f"| {res['model']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Persistent extra memory of HAT after two tasks (HATMask buffers: cumulative, "
        "summative, stored masks; task embeddings; the plugin's per-task state: rate plan and sparsity map) "
        "vs. the model's other parameters:",
        "",
        "| model | units | param bytes | mask buffer bytes | embedding bytes | plugin state bytes "
        "| extra / params |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        p = res["persistent"]
        lines.append(
            f"| {res['model']} | {p['units']:,} | {p['param_bytes']:,} | {p['mask_bytes']:,} "
            f"| {p['embedding_bytes']:,} | {p['rate_bytes']:,} "
            f"| {p['extra_bytes'] / p['param_bytes']:.4%} |"
        )
    if any(res["adjustment"] for res in results):
        lines += [
            "",
            "Gradient adjustment alone (the plugin's before_update with only covered "
            "gradients present; eager, and with compile_step=True, compilation time apart) vs. a "
            "parameter-sized implementation (min of expanded unit measures, rate, multiply), "
            f"median {meta['clock']} time in ns per covered parameter element, interleaved:",
            "",
            "| model | mode | covered params | ours ns/param | compiled ns/param "
            "| compile s | parameter-sized ns/param | speed-up (eager) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for res in results:
            for a in res["adjustment"]:
                lines.append(
                    f"| {res['model']} | {a['mode']} | {a['covered_params']:,} "
                    f"| {a['ours_ns']:.3f} | {a['compiled_ns']:.3f} | {a['compile_s']:.1f} "
                    f"| {a['parameter_sized_ns']:.3f} | {a['speedup']:.2f}x |"
                )
    for note in meta["notes"]:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    specs, _ = _model_specs()
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
    specs, notes = _model_specs()
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
