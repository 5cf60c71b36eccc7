"""Data-parallel HAT / AdaHAT on several processes with Avalanche's distributed support.

Launch one process per device with ``torchrun``; the backend follows the device
(``nccl`` on GPUs, ``gloo`` on the CPU)::

    torchrun --nproc_per_node=2 examples/distributed_training.py --strategy adahat
    torchrun --nproc_per_node=4 examples/distributed_training.py --device cuda

Run without ``torchrun`` it trains in a single process, with the same results
up to floating-point rounding when the global batch is the same (the per-process
batch is ``--global-batch / world size``).

What it takes (see ``avalanche_adahat.training.distributed``): ``init_distributed``
first, a :class:`~avalanche_adahat.training.distributed.DistributedModelPlugin` so the
model is wrapped in ``DistributedDataParallel`` for every training experience,
loggers in the main process only. Avalanche shards the training and test data
with a ``DistributedSampler``; its metrics are computed on each process's shard
and logged by the main process, so this script also reports the accuracy on the
whole test set (identical on every process, since the models are identical).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
from avalanche.distributed import DistributedHelper
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import HAT, AdaHAT
from avalanche_adahat.data import split_digits
from avalanche_adahat.models import HATMLP
from avalanche_adahat.training.distributed import DistributedModelPlugin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strategy", choices=("hat", "adahat"), default="hat")
    parser.add_argument("--experiences", type=int, default=5, help="experiences to train (<= 5)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--global-batch",
        type=int,
        default=64,
        help="minibatch size summed over all processes; 0: the whole experience (full batch)",
    )
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--out", default=None, help="save each process's state_dict after each experience here"
    )
    args = parser.parse_args(argv)

    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    # Seeds every process identically; initialises torch.distributed (nccl on
    # GPUs, gloo on the CPU) when launched by torchrun, else runs one process.
    DistributedHelper.init_distributed(random_seed=args.seed, use_cuda=use_cuda)
    rank, world = DistributedHelper.rank, DistributedHelper.world_size
    device = DistributedHelper.make_device()
    if not DistributedHelper.is_main_process:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (one line per process is enough)

    benchmark = split_digits(5, seed=args.seed)
    train_stream = benchmark.train_stream[: args.experiences]
    test_stream = benchmark.test_stream[: args.experiences]
    if args.global_batch == 0:
        largest = max(len(e.dataset) for e in train_stream)
        mb_size = math.ceil(largest / world)
    elif args.global_batch % world:
        raise SystemExit(f"--global-batch {args.global_batch} is not a multiple of {world}")
    else:
        mb_size = args.global_batch // world
    print(f"{world} process(es), backend {DistributedHelper.backend if world > 1 else '-'}, "
          f"device {device}, {mb_size} samples per process and minibatch")  # fmt: skip

    model = HATMLP(64, tuple(args.hidden), 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    template = HAT if args.strategy == "hat" else AdaHAT
    strategy = template(
        model=model,
        optimizer=optimizer,
        train_mb_size=mb_size,
        train_epochs=args.epochs,
        eval_mb_size=256,
        device=device,
        plugins=[DistributedModelPlugin()],
        # Metrics as usual on every process; loggers only in the main one.
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
    )

    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for experience in train_stream:
        # Re-seed per experience: the new task's embeddings and head are drawn in
        # model adaptation, and the single-process loader's shuffling consumes the
        # global RNG while the DistributedSampler does not; re-seeding makes the
        # initialisation independent of the number of processes.
        RNGManager.set_random_seeds(args.seed + experience.current_experience)
        strategy.train(experience)
        if out is not None:
            torch.save(
                model.state_dict(), out / f"rank{rank}_exp{experience.current_experience}.pt"
            )
        shard = strategy.eval(test_stream[: experience.current_experience + 1])
        whole = [
            _accuracy(model, e, device) for e in test_stream[: experience.current_experience + 1]
        ]
        print(
            f"after experience {experience.current_experience}: test accuracy per task "
            f"{[round(a, 3) for a in whole]} (whole test set); Avalanche metrics on this "
            f"process's shard: {[round(v, 3) for k, v in sorted(shard.items()) if 'Exp' in k]}"
        )
    print(f"done in {time.perf_counter() - start:.1f} s")
    if DistributedHelper.is_distributed:
        torch.distributed.destroy_process_group()
    return 0


@torch.no_grad()
def _accuracy(model, experience, device) -> float:
    """Accuracy on the whole of ``experience`` (no sharding), with its stored mask."""
    model.eval()
    loader = torch.utils.data.DataLoader(experience.dataset.eval(), batch_size=512)
    correct = total = 0
    for x, y, t in loader:
        pred = model(x.to(device), t.to(device)).argmax(1)
        correct += int((pred == y.to(device)).sum())
        total += len(y)
    return correct / total


if __name__ == "__main__":
    raise SystemExit(main())
