"""A prepared check of HAT and AdaHAT on an accelerator, in one command (``--device cuda``).

1. **Guarantees on the device.** HAT and AdaHAT (library defaults) train three tasks of
   split digits under SGD (the rates applied inside the optimizer's step) and under Adam
   (AdaHAT: the snapshot and blend of ``protect="update"``), on ``--device`` and on the CPU
   from the same initial model. Checked: under HAT every entry an earlier task uses
   (rate 0) is bitwise unchanged by the later tasks on the device, and the device's final
   parameters equal the CPU's to float tolerance (different kernels, the same maths).
2. **Epoch ratios on the device**: ``benchmarks/epoch_ratio.py``'s table (wall time,
   synchronised) for ``--models`` on Gaussian blobs.

    python benchmarks/device_check.py --device cuda
    python benchmarks/device_check.py --device cpu --models mlp_small   # what the tests run
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch
from avalanche.training.plugins import EvaluationPlugin
from epoch_ratio import epoch_table

from avalanche_adahat import HAT, AdaHAT
from avalanche_adahat.data import split_digits
from avalanche_adahat.models import HATMLP

OPTIMIZERS = {"sgd": (torch.optim.SGD, {"lr": 0.1}), "adam": (torch.optim.Adam, {"lr": 1e-3})}


def train(cls, optimizer: str, device: torch.device, initial, stream, check_frozen: bool):
    """Three tasks of ``cls`` on ``device``; returns the final parameters on the CPU and
    how many protected entries moved (HAT: must be 0)."""
    torch.manual_seed(0)  # the same shuffles and new embeddings on every device
    model = copy.deepcopy(initial)
    opt_class, kwargs = OPTIMIZERS[optimizer]
    strategy = cls(
        model=model,
        optimizer=opt_class(model.parameters(), **kwargs),
        train_mb_size=32,
        train_epochs=5,
        device=device,
        evaluator=EvaluationPlugin(loggers=[]),
    )
    moved = 0
    for k, experience in enumerate(stream):
        if k > 0 and check_frozen:
            keep = {cp.name: cp.frozen_entries() for cp in model.covered_parameters()}
            before = {cp.name: cp.param.detach().clone() for cp in model.covered_parameters()}
        strategy.train(experience)
        if k > 0 and check_frozen:
            for cp in model.covered_parameters():
                now, was = cp.param.detach()[keep[cp.name]], before[cp.name][keep[cp.name]]
                moved += int((now != was).sum())
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, moved


def guarantees(device: torch.device) -> list[str]:
    """Check 1 of the module docstring; returns the report lines, raises on a failure."""
    stream = split_digits(5, seed=0).train_stream[:3]
    torch.manual_seed(0)
    initial = HATMLP(64, (100, 100), 2)
    lines = ["| strategy | optimizer | protected entries moved | max abs diff to the CPU |"]
    lines.append("| --- | --- | ---: | ---: |")
    failures = []
    for cls in (HAT, AdaHAT):
        for optimizer in OPTIMIZERS:
            hat = cls is HAT
            on_device, moved = train(cls, optimizer, device, initial, stream, check_frozen=hat)
            on_cpu, _ = train(cls, optimizer, torch.device("cpu"), initial, stream, False)
            diff = max(
                (on_device[k].float() - on_cpu[k].float()).abs().max().item() for k in on_cpu
            )
            lines.append(f"| {cls.__name__} | {optimizer} | {moved if hat else '-'} | {diff:.2e} |")
            if moved:
                failures.append(f"{cls.__name__}/{optimizer}: {moved} protected entries moved")
            if not diff < 1e-3:
                failures.append(f"{cls.__name__}/{optimizer}: {diff:.2e} from the CPU's result")
    if failures:
        print("\n".join(lines))
        raise SystemExit("FAILED: " + "; ".join(failures))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default="mlp_hat,alexnet,resnet18")
    parser.add_argument("--tasks", type=int, default=5, help="tasks of the blobs stream")
    parser.add_argument("--per-task", type=int, default=1280, help="samples per blobs task")
    parser.add_argument("--optimizers", default="sgd,adam")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, device {device} ({name})\n")
    print("\n".join(guarantees(device)), "\n", flush=True)
    table, _ = epoch_table(
        args.models.split(","), ["blobs"], args.tasks, args.per_task, device,
        compiled=False, optimizers=args.optimizers.split(","), only=["HAT", "AdaHAT"],
    )  # fmt: skip
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
