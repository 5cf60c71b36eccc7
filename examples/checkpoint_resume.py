"""Checkpoint and resume an AdaHAT run with Avalanche's checkpoint helpers.

Run it, interrupt it (or pass ``--stop-after 2``), run it again: it continues
from the last finished experience and ends exactly where an uninterrupted run
ends (same parameters, masks and accuracies, on the CPU with the same seed)::

    python examples/checkpoint_resume.py --checkpoint /tmp/adahat.pkl --stop-after 2
    python examples/checkpoint_resume.py --checkpoint /tmp/adahat.pkl
"""

from __future__ import annotations

import argparse
import sys

import torch
from avalanche.checkpointing import maybe_load_checkpoint, save_checkpoint
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import EvaluationPlugin

import avalanche_adahat  # noqa: F401  (registers the optimizer pickling fix)
from avalanche_adahat import AdaHAT
from avalanche_adahat.data import split_digits
from avalanche_adahat.models import HATMLP


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (created if absent)")
    parser.add_argument("--experiences", type=int, default=4, help="experiences to train (<= 5)")
    parser.add_argument("--stop-after", type=int, default=None, help="exit after this many")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--result", default=None, help="torch.save the final state and metrics here"
    )
    args = parser.parse_args(argv)

    RNGManager.set_random_seeds(args.seed)  # seeds torch, numpy and random; saved in checkpoints
    benchmark = split_digits(5, seed=args.seed)
    model = HATMLP(64, (32, 32), 2)
    strategy = AdaHAT(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        train_mb_size=32,
        train_epochs=args.epochs,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
    )
    strategy, start = maybe_load_checkpoint(strategy, args.checkpoint)
    print(f"starting at experience {start}")
    test_stream = benchmark.test_stream[: args.experiences]
    for experience in benchmark.train_stream[start : args.experiences]:
        strategy.train(experience)
        strategy.eval(test_stream)
        save_checkpoint(strategy, args.checkpoint)
        done = experience.current_experience + 1
        print(f"finished experience {done - 1}, checkpoint saved")
        if args.stop_after is not None and done >= args.stop_after:
            return 0
    if args.result:
        torch.save(
            {
                "state_dict": strategy.model.state_dict(),
                "metrics": strategy.evaluator.get_all_metrics(),
            },
            args.result,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
