"""What AdaHAT's moving task networks cost the feature-statistics task router.

HAT freezes task ``j``'s masked network once ``j`` is trained, so the class
statistics the ``lda_cascade`` / ``mahalanobis`` rules gathered in its feature
space stay exact. AdaHAT lets used parameters move a little (soft rates), so the
statistics gathered when a task ended drift from the features the final model
computes. This script trains HAT and AdaHAT on class-incremental Split
Fashion-MNIST (5 experiences, MLP 784-400-400, Adam 1e-3, batch 128, 1 epoch,
natural class order) and scores the final model twice: with the statistics as
stored, and with statistics recomputed from every task's training data through
the final model (an oracle that would need the data kept). The gap is the cost
of the drift. Prints a Markdown table::

    .venv/bin/python benchmarks/cil_drift.py --seeds 0,1,2 --output docs/results/cil_drift.md
"""

from __future__ import annotations

import argparse
import statistics as stats
import subprocess
import time

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import HAT, AdaHAT
from avalanche_adahat.data import DEBIAN_FMNIST, FMNIST_MEAN, FMNIST_STD, fmnist_tensors
from avalanche_adahat.inference import FeatureStatistics, update_statistics
from avalanche_adahat.metrics.task_id import task_id_accuracy_metrics
from avalanche_adahat.models import HATMLP

ACC = "Top1_Acc_Stream/eval_phase/test_stream/Task000"
TASK_ACC = "TaskIdAcc_Stream/eval_phase/test_stream/Task000"


def class_incremental_fmnist(data_root, seed: int):
    """Split FMNIST, 5 experiences, natural class order, no task labels, whole tensors."""
    x_tr, y_tr, x_te, y_te = fmnist_tensors(data_root)

    def dataset(x, y):
        x = ((x.float() / 255.0 - FMNIST_MEAN) / FMNIST_STD).unsqueeze(1)
        ds = torch.utils.data.TensorDataset(x, y)
        ds.targets = y
        return ds

    return nc_benchmark(
        dataset(x_tr, y_tr),
        dataset(x_te, y_te),
        n_experiences=5,
        task_labels=False,
        seed=seed,
        fixed_class_order=list(range(10)),
    )


def run(strategy_class, benchmark, seed: int, rule: str) -> dict:
    torch.manual_seed(seed)
    model = HATMLP(784, (400, 400))
    strategy = strategy_class(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        train_mb_size=128,
        train_epochs=1,
        eval_mb_size=1000,
        task_ids="per_experience",
        task_inference=rule,
        evaluator=EvaluationPlugin(
            accuracy_metrics(stream=True), task_id_accuracy_metrics(), loggers=[]
        ),
    )
    for exp in benchmark.train_stream:
        strategy.train(exp)
    stored = strategy.eval(benchmark.test_stream)
    kept = model.task_statistics
    fresh = FeatureStatistics()
    cascade = rule == "lda_cascade"
    for k, exp in enumerate(benchmark.train_stream):
        update_statistics(model, fresh, exp.dataset, k, list(range(k + 1)) if cascade else [k])
    drift = max(
        float(
            (
                (fresh.space(j)["sums"] / fresh.space(j)["counts"][:, None])
                - (kept.space(j)["sums"] / kept.space(j)["counts"][:, None])
            )
            .abs()
            .max()
        )
        for j in kept.spaces()
    )
    model.task_statistics = fresh
    refreshed = strategy.eval(benchmark.test_stream)
    return {
        "acc": stored[ACC],
        "task_acc": stored[TASK_ACC],
        "acc_refreshed": refreshed[ACC],
        "task_acc_refreshed": refreshed[TASK_ACC],
        "max_mean_shift": drift,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rule", default="lda_cascade", choices=["lda_cascade", "mahalanobis"])
    parser.add_argument("--data-root", default=DEBIAN_FMNIST)
    parser.add_argument("--output", default=None, help="write the Markdown table here too")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    rows = {"HAT": [], "AdaHAT": []}
    for seed in seeds:
        benchmark = class_incremental_fmnist(args.data_root, seed)
        for name, cls in (("HAT", HAT), ("AdaHAT", AdaHAT)):
            rows[name].append(run(cls, benchmark, seed, args.rule))
            print(name, seed, rows[name][-1], flush=True)

    def cell(values):
        mean = stats.fmean(values)
        return f"{mean:.4f} ± {stats.stdev(values):.4f}" if len(values) > 1 else f"{mean:.4f}"

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "avalanche_adahat"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"Rule `{args.rule}`, class-incremental Split FMNIST (5 experiences, natural order), "
        f"MLP 784-400-400, Adam 1e-3, batch 128, 1 epoch; seeds {args.seeds}; "
        f"commit {commit}{' (dirty)' if dirty else ''}; {time.perf_counter() - start:.0f} s.",
        "",
        "| strategy | final acc (stored statistics) | task-id acc | final acc (recomputed, oracle) "
        "| task-id acc (oracle) | largest class-mean shift |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, results in rows.items():
        values = {k: [r[k] for r in results] for k in results[0]}
        lines.append(
            f"| {name} | {cell(values['acc'])} | {cell(values['task_acc'])} | "
            f"{cell(values['acc_refreshed'])} | {cell(values['task_acc_refreshed'])} | "
            f"{max(values['max_mean_shift']):.3g} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(
                f"Command: `.venv/bin/python benchmarks/cil_drift.py --seeds {args.seeds} "
                f"--rule {args.rule} --output {args.output}`\n\n" + text
            )


if __name__ == "__main__":
    main()
