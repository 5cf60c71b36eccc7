"""Why HAT costs more under Adam than AdaHAT: ``torch.sqrt`` of exact zeros on CPU.

HAT's gradient rate is 0 on every parameter an earlier task uses, so Adam's
second moment ``exp_avg_sq`` of those parameters stays exactly 0, and Adam takes
``exp_avg_sq.sqrt()`` at every step. This script times, on one thread:

1. ``torch.sqrt`` of a tensor of ones, of zeros and of subnormals (flush off and
   on), against NumPy's ``sqrt`` of the same buffers;
2. one ``torch.optim.Adam`` step on the parameters of a 784-400-400 MLP whose
   gradients are dense (Naive-like), 85% exact zeros (HAT-like), or 85% scaled by
   1e-3 (AdaHAT-like soft rates), for the for-loop, ``foreach`` and ``fused``
   implementations.

    python benchmarks/adam_zeros.py
"""

from __future__ import annotations

import time

import numpy as np
import torch


def _per_call_us(fn, reps: int = 200) -> float:
    for _ in range(5):
        fn()
    start = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - start) / reps * 1e6


def sqrt_table(n: int = 400 * 784) -> list[str]:
    out = torch.empty(n)
    lines = ["| input | flush | torch.sqrt (us) | numpy.sqrt (us) |", "| --- | --- | ---: | ---: |"]
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        for name, value in (("ones", 1.0), ("zeros", 0.0), ("subnormal 1e-40", 1e-40)):
            x = torch.full((n,), value)
            xn, on = x.numpy(), out.numpy()
            t = _per_call_us(lambda x=x: torch.sqrt(x, out=out))
            u = _per_call_us(lambda xn=xn, on=on: np.sqrt(xn, out=on))
            lines.append(f"| {name} | {'on' if flush else 'off'} | {t:.0f} | {u:.0f} |")
    torch.set_flush_denormal(False)
    return lines


def adam_step_ms(grads: str, **adam) -> float:
    torch.manual_seed(0)
    shapes = [(400, 784), (400,), (400, 400), (400,)]
    params = [torch.nn.Parameter(torch.randn(s) * 0.05) for s in shapes]
    optimizer = torch.optim.Adam(params, lr=1e-3, **adam)
    for p in params:
        g = torch.randn(p.shape) * 1e-3
        head = g.view(-1)[: int(0.85 * g.numel())]
        if grads == "85% zeros (HAT)":
            head.zero_()
        elif grads == "85% x 1e-3 (AdaHAT)":
            head.mul_(1e-3)
        p.grad = g
    torch.set_flush_denormal(True)  # as inside the plugin's training step
    ms = _per_call_us(optimizer.step) / 1e3
    torch.set_flush_denormal(False)
    return ms


def adam_table() -> list[str]:
    kinds = ("dense (Naive)", "85% zeros (HAT)", "85% x 1e-3 (AdaHAT)")
    lines = ["| Adam | " + " | ".join(kinds) + " |", "| --- |" + " ---: |" * len(kinds)]
    for name, kwargs in (
        ("for-loop (CPU default)", {"foreach": False}),
        ("foreach=True", {"foreach": True}),
        ("fused=True", {"fused": True}),
    ):
        cells = " | ".join(f"{adam_step_ms(k, **kwargs):.2f} ms" for k in kinds)
        lines.append(f"| {name} | {cells} |")
    return lines


def main() -> int:
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, MKL {torch.backends.mkl.is_available()}, one thread\n")
    print("\n".join(sqrt_table()))
    print()
    print("\n".join(adam_table()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
