"""HAT and AdaHAT metrics and pictures in TensorBoard, on Split Digits.

Trains HAT and AdaHAT (a small HATMLP, plain SGD, a few epochs per task) on
scikit-learn's digits split into 5 task-incremental tasks, with a
``TensorboardLogger`` logging accuracy and every HAT metric (network capacity,
mask usage, per-layer sparsity ``R_l`` and adjustment rates), then writes the
capacity curve, the mask map of each layer and the accuracy matrix as PNGs and
logs them as TensorBoard images through the logger's writer. About half a
minute on a laptop CPU; nothing is downloaded.

    python examples/tensorboard_metrics.py --logdir runs/hat_metrics
    tensorboard --logdir runs/hat_metrics
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.image as mpimg
import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.logging import TensorboardLogger
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import HAT, AdaHAT
from avalanche_adahat.data import split_digits
from avalanche_adahat.metrics import accuracy_matrix, capacity_curve, hat_metrics
from avalanche_adahat.models import HATMLP
from avalanche_adahat.plots import plot_accuracy_matrix, plot_capacity, plot_mask_map


def run(name: str, logdir: Path, epochs: int, seed: int) -> dict:
    """Train one strategy; log its metrics and pictures under ``logdir / name``."""
    torch.manual_seed(seed)
    benchmark = split_digits(5, seed=seed)
    model = HATMLP(64, (32, 32), 2)
    logger = TensorboardLogger(logdir / name)
    evaluator = EvaluationPlugin(
        accuracy_metrics(epoch=True, experience=True, stream=True),
        loss_metrics(epoch=True),
        hat_metrics(minibatch=True, experience=True),
        loggers=[logger],
    )
    common = dict(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=32,
        train_epochs=epochs,
        eval_mb_size=512,
        evaluator=evaluator,
    )
    if name == "AdaHAT":
        # AdaHAT's defaults under SGD: every unit on at a task's start, regulariser factor
        # 0.75, intensity 20 per task (docs/ALGORITHM.md §8).
        strategy = AdaHAT(**common)
    else:
        strategy = HAT(**common)

    results = []
    for experience in benchmark.train_stream:
        print(f"{name}: training task {experience.task_label}", flush=True)
        strategy.train(experience)
        results.append(strategy.eval(benchmark.test_stream))

    # Pictures: PNG files next to the event file, and the same images in TensorBoard.
    step = strategy.clock.train_iterations
    metrics = evaluator.get_all_metrics()
    _, capacity, starts, labels = capacity_curve(metrics)
    pictures = {
        "Pictures/capacity": plot_capacity(
            capacity, logdir / name / "capacity.png", starts, task_labels=labels,
            title=f"{name}: network capacity",
        ),
        "Pictures/accuracy_matrix": plot_accuracy_matrix(
            accuracy_matrix(results), logdir / name / "accuracy_matrix.png"
        ),
    }  # fmt: skip
    for k in range(len(model.hat_masks())):
        pictures[f"Pictures/mask_map_layer{k}"] = plot_mask_map(
            model, logdir / name / f"mask_map_layer{k}.png", layer=k
        )
    for tag, path in pictures.items():
        image = mpimg.imread(path)[..., :3]  # RGBA floats in [0, 1] -> RGB
        logger.writer.add_image(tag, image, global_step=step, dataformats="HWC")
    logger.writer.flush()
    return {
        "final_capacity": capacity[-1],
        "avg_acc": next(v for k, v in results[-1].items() if k.startswith("Top1_Acc_Stream/")),
        "pictures": [str(p) for p in pictures.values()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--logdir", type=Path, default=Path("runs/hat_metrics"), help="TensorBoard folder"
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per task (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--strategies", nargs="+", default=["HAT", "AdaHAT"], choices=["HAT", "AdaHAT"]
    )
    args = parser.parse_args(argv)
    if args.epochs <= 0:
        parser.error(f"--epochs must be positive, got {args.epochs}")
    for name in args.strategies:
        summary = run(name, args.logdir, args.epochs, args.seed)
        print(
            f"{name}: average accuracy {summary['avg_acc']:.4f}, "
            f"final capacity {summary['final_capacity']:.4f}"
        )
        for path in summary["pictures"]:
            print(f"  wrote {path}")
    print(f"tensorboard --logdir {args.logdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
