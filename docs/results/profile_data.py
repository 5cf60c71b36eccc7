"""Microseconds per sample of iterating a strategy's train and eval dataloaders.

Builds a benchmark as ``avalanche-adahat compare`` does, then for the first
experience does what Avalanche's ``Naive`` does before an epoch (dataset
adaptation, ``make_train_dataloader`` / ``make_eval_dataloader``, then the
plugins' ``before_training_exp`` / ``before_eval_exp``, where compare's
``FastDataPlugin`` swaps in whole-tensor batches) and times one pass over each
loader (up to ``--limit`` samples), with no model: only the data path.
``--avalanche`` leaves Avalanche's own per-sample loaders in place.

    .venv/bin/python docs/results/profile_data.py permuted_fmnist split_fmnist
    .venv/bin/python docs/results/profile_data.py --avalanche permuted_fmnist split_fmnist
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch


def measure(
    benchmark_name: str, n: int | None, batch: int, eval_batch: int, limit: int, fast: bool
):
    from avalanche.training.supervised import Naive

    from avalanche_adahat.compare import BENCHMARKS
    from avalanche_adahat.data.fast_data import FastDataPlugin

    spec = BENCHMARKS[benchmark_name]
    t0 = time.perf_counter()
    bench = spec.build(n or spec.default_n, 0, None)
    build_s = time.perf_counter() - t0
    model = torch.nn.Linear(1, 1)
    plugin = FastDataPlugin(bench.tensor_sources) if fast else None
    strategy = Naive(
        plugins=[plugin] if plugin else None,
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=batch,
        eval_mb_size=eval_batch,
    )
    out = {"build_s": build_s}
    for phase, stream in (("train", bench.train_stream), ("eval", bench.test_stream)):
        exp = stream[0]
        strategy.experience = exp
        if phase == "train":
            strategy.train_dataset_adaptation()
            strategy.make_train_dataloader(shuffle=True)
            if plugin:
                plugin.before_training_exp(strategy)
        else:
            strategy.eval_dataset_adaptation()
            strategy.make_eval_dataloader()
            if plugin:
                plugin.before_eval_exp(strategy)
        seen = 0
        t0 = time.perf_counter()
        for mb in strategy.dataloader:
            seen += len(mb[0])
            if seen >= limit:
                break
        out[phase] = (time.perf_counter() - t0) / seen * 1e6
        out[f"{phase}_n"] = seen
    out["loader"] = type(strategy.dataloader).__name__
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("benchmarks", nargs="+")
    p.add_argument("--n-experiences", type=int)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=1000)
    p.add_argument("--limit", type=int, default=20000, help="samples timed per loader")
    p.add_argument("--avalanche", action="store_true", help="Avalanche's own loaders only")
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in args.benchmarks:
        r = measure(
            name, args.n_experiences, args.batch_size, args.eval_batch_size, args.limit,
            not args.avalanche,
        )  # fmt: skip
        print(
            f"{name} [{r['loader']}]: build {r['build_s']:.1f} s; train loader {r['train']:.2f} us/sample "
            f"({r['train_n']} samples, batch {args.batch_size}); eval loader "
            f"{r['eval']:.2f} us/sample ({r['eval_n']} samples, batch {args.eval_batch_size})",
            flush=True,
        )


if __name__ == "__main__":
    main()
