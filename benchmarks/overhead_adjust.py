"""The adjustment micro-benchmark of ``benchmarks/overhead.py``.

It times, per covered parameter element, the gradient adjustment of
``HATPlugin.before_update`` (unit-sized rates combined by an outer max,
docs/ALGORITHM.md §3) against a straightforward implementation that builds
parameter-sized importance tensors every step, as the reference code does.
"""

from __future__ import annotations

import statistics

import torch
from overhead_cases import Clock

from avalanche_adahat.core.step import StepMaths


def adjust_ours(strategy) -> None:
    """The plugin's own gradient adjustment (``protect="gradient"``), as shipped:
    ``current_unit_rates`` and the multiplication of each covered gradient by its rate
    (:meth:`~avalanche_adahat.training.rates.AdjustmentRates.adjust_step`; its
    ``before_update`` would leave them to plain SGD's step instead, ``training/sgd_step.py``).
    """
    plugin = strategy.hat_plugin
    plugin.rates.adjust_step(plugin.task, strategy.model, False)


def adjust_compiled(strategy, maths) -> None:
    """:func:`adjust_ours` with the step maths compiled (``compile_step=True``:
    :func:`avalanche_adahat.core.step.scale_by_rates` fused by ``torch.compile``)."""
    plugin = strategy.hat_plugin
    eager, plugin.step_maths = plugin.step_maths, maths
    try:
        adjust_ours(strategy)
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
            r = plugin.rates.layer_r(plugin.layer_sparsity)  # one r_l per layer
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

    clock = Clock(device)
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
