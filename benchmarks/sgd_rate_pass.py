"""The rated update under plain SGD, alone: what it costs over SGD's own update, per way of
computing it, on one model's covered parameters (issue 24; docs/PERFORMANCE.md).

Random binary unit rates (HAT's, half the units used) on the covered weights and biases of
``epoch_ratio.py``'s model; one thread; the best of 5 repeats of ``--steps`` updates each,
ratios to SGD's own ``p.add_(g, alpha=-lr)`` in the same run:

- ``sgd``: SGD's own update of the same parameters (``torch._foreach_add_``);
- ``eager``: the library's eager rated update, ``sgd_outer_max_all_`` (the outer max built
  block by block in a 1 MiB workspace, multiplied, added);
- ``compiled``: ``StepMaths(compile=True).sgd_step`` (one inductor loop);
- ``cached addcmul``: a parameter-sized rate made once per task (one float per covered
  entry kept for the task) and ``torch._foreach_addcmul_``. The column ``same bits as
  eager`` says whether it updates the parameters to the same bits as the eager path.

    python benchmarks/sgd_rate_pass.py --model mlp_hat
"""

from __future__ import annotations

import argparse
import time

import torch
from epoch_ratio import MODELS

from avalanche_adahat.core import functional as F
from avalanche_adahat.core.step import StepMaths


def covered_operands(model_name: str, inputs: int, seed: int = 0):
    """``(params, grads, out_rates, in_rates)``: the covered parameters of the model, random
    gradients and random 0/1 unit rates viewed to broadcast."""
    torch.manual_seed(seed)
    model = MODELS[model_name][0](inputs)
    params, grads, outs, ins = [], [], [], []
    for c in model.covered_parameters():
        p = c.param.detach().clone()
        out_rate = (torch.rand(c.out_mask.num_units) < 0.5).float()
        in_rate = None
        if c.in_mask is not None:
            in_rate = c.expand_in((torch.rand(c.in_mask.num_units) < 0.5).float())
        out_view, in_view = F.rate_views(out_rate, in_rate, p.dim())
        params.append(p)
        grads.append(torch.randn_like(p))
        outs.append(out_view)
        ins.append(in_view)
    return params, grads, outs, ins


def best_ms(fn, steps: int, repeats: int = 5) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        best = min(best, (time.perf_counter() - start) / steps * 1e3)
    return best


def bits_equal(a: list, b: list) -> bool:
    """Whether two lists of float32 tensors hold the same bits (``-0.0`` differs from ``0.0``)."""
    return all(
        torch.equal(x.view(torch.int32), y.view(torch.int32)) for x, y in zip(a, b, strict=True)
    )


def measure(model_name: str, inputs: int, steps: int, lr: float = 0.05) -> list[tuple]:
    params, grads, outs, ins = covered_operands(model_name, inputs)
    alphas = [-lr] * len(params)
    eager, compiled = StepMaths(compile=False), StepMaths(compile=True)
    # one parameter-sized rate per weight, made once (what a per-task cache would hold)
    full = [(o if i is None else torch.maximum(o, i)).expand(p.shape).contiguous()
            for p, o, i in zip(params, outs, ins)]  # fmt: skip

    def run_eager(ps):
        eager.sgd_step(ps, grads, outs, ins, alphas)

    def run_cached(ps):
        torch._foreach_addcmul_(ps, grads, full, value=-lr)

    def run_compiled(ps):
        compiled.sgd_step(ps, grads, outs, ins, alphas)

    reference = [p.clone() for p in params]
    run_eager(reference)

    def same_bits(fn) -> str:
        ps = [p.clone() for p in params]
        fn(ps)
        return "yes" if bits_equal(ps, reference) else "no"

    ways = {"eager": run_eager, "compiled": run_compiled, "cached addcmul": run_cached}
    same = {"eager": "(the reference)"}  # the others checked before timing moves params
    same |= {name: same_bits(ways[name]) for name in ("compiled", "cached addcmul")}
    rows = [("sgd", best_ms(lambda: torch._foreach_add_(params, grads, alpha=-lr), steps), "")]
    for name, fn in ways.items():
        rows.append((name, best_ms(lambda fn=fn: fn(params), steps), same[name]))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mlp_hat", choices=sorted(MODELS))
    parser.add_argument("--inputs", type=int, default=784, help="input features")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = measure(args.model, args.inputs, args.steps)
    sgd = rows[0][1]
    print(f"{args.model}: ms per update of the covered parameters, one thread")
    print()
    print("| update | ms | x SGD's own | same bits as eager |")
    print("| --- | ---: | ---: | --- |")
    for name, ms, same in rows:
        print(f"| {name} | {ms:.2f} | {ms / sgd:.2f}x | {same} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
