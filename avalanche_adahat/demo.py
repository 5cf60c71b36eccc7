"""``python -m avalanche_adahat demo``: AdaHAT, HAT and Avalanche's Naive on Split Digits.

The embedded default job of the README's quick start: scikit-learn's bundled
digits, 5 task-incremental tasks of 2 classes, the same MLP, optimizer and
seed for every strategy; prints each one's average accuracy and forgetting.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import torch
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.logging import InteractiveLogger
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.supervised import Naive

from .data.benchmarks import split_digits
from .models import HATMLP
from .training.strategies import HAT, AdaHAT

__all__ = ["main", "run_demo"]

# Settings measured on Split Digits (see CHANGELOG / README): 20 epochs of SGD at lr 0.1.
DEMO_SETTINGS: dict[str, Any] = {
    "hidden_sizes": (100, 100),
    "lr": 0.1,
    "epochs": 20,
    "batch_size": 32,
}


def run_demo(
    seed: int = 0, epochs: int = DEMO_SETTINGS["epochs"], verbose: bool = False
) -> dict[str, dict[str, float]]:
    """Train each strategy on Split Digits; return ``{name: {avg_acc, forgetting, seconds}}``."""
    benchmark = split_digits(5, seed=seed)
    results = {}
    # A model this small runs fastest on one thread, and two threads competing with
    # another busy process can be ten times slower.
    torch.set_num_threads(1)
    for name in ("AdaHAT", "HAT", "Naive"):
        torch.manual_seed(seed)
        model = HATMLP(64, DEMO_SETTINGS["hidden_sizes"], 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=DEMO_SETTINGS["lr"])
        evaluator = EvaluationPlugin(
            accuracy_metrics(stream=True),
            forgetting_metrics(stream=True),
            loggers=[InteractiveLogger()] if verbose else [],
        )
        common = dict(
            model=model,
            optimizer=optimizer,
            train_mb_size=DEMO_SETTINGS["batch_size"],
            train_epochs=epochs,
            eval_mb_size=256,
            evaluator=evaluator,
        )
        if name == "AdaHAT":
            strategy = AdaHAT(**common)
        elif name == "HAT":
            strategy = HAT(**common)
        else:
            strategy = Naive(**common)
        start = time.perf_counter()
        for experience in benchmark.train_stream:
            print(f"  {name}: training task {experience.task_label} ...", flush=True)
            strategy.train(experience)
            # Evaluating after every task is what Avalanche's forgetting needs; only the
            # tasks trained so far (an untrained task's head is chance level).
            metrics = strategy.eval(benchmark.test_stream[: experience.current_experience + 1])
        # Avalanche names a stream's accuracy after its last experience's task label, and
        # eval() also returns the values of earlier evaluations (of shorter streams).
        last = f"Task{experience.task_label:03d}"
        results[name] = {
            "avg_acc": metrics[f"Top1_Acc_Stream/eval_phase/test_stream/{last}"],
            "forgetting": _metric(metrics, "StreamForgetting/eval_phase/test_stream"),
            "seconds": time.perf_counter() - start,
        }
    return results


def _metric(metrics: dict, prefix: str) -> float:
    return next(v for k, v in metrics.items() if k.startswith(prefix))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="avalanche-adahat demo",
        description="AdaHAT, HAT and Naive on Split Digits (5 task-incremental tasks).",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--epochs", type=int, default=DEMO_SETTINGS["epochs"], help="epochs per task (default 20)"
    )
    parser.add_argument("--verbose", action="store_true", help="show Avalanche's progress bars")
    args = parser.parse_args(argv)
    if args.epochs <= 0:
        parser.exit(2, f"error: --epochs must be a positive integer, got {args.epochs}\n")
    print(
        "Split Digits (scikit-learn digits, 5 tasks x 2 classes, task-incremental), "
        f"MLP 64-{'-'.join(map(str, DEMO_SETTINGS['hidden_sizes']))}, "
        f"SGD lr {DEMO_SETTINGS['lr']}, {args.epochs} epochs/task, seed {args.seed}"
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        results = run_demo(args.seed, args.epochs, args.verbose)
    print(f"\n{'strategy':<10}{'avg accuracy':>14}{'forgetting':>12}{'seconds':>10}")
    for name, r in results.items():
        print(f"{name:<10}{r['avg_acc']:>14.4f}{r['forgetting']:>12.4f}{r['seconds']:>10.1f}")
    return 0
