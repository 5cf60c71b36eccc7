"""The timing driver of ``benchmarks/overhead.py``: interleaved training and evaluation
rounds of every strategy on one backbone, ATen operator counts, HAT's persistent state."""

from __future__ import annotations

import copy
import math
import statistics

import torch
from overhead_adjust import bench_adjustment
from overhead_cases import (
    STRATEGIES,
    ModelSpec,
    make_scenario,
    make_strategy,
    run_train_iterations,
    start_task3,
)


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
    plan = plugin.task.rate_plan
    state = [plan.cumulative, plan.summative, plan.slot_layer, plan.rates]
    state += list(plugin.task.sparsity_map or ())
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
