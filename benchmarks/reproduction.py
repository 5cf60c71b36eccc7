"""The reproduction table (docs/REPRODUCTION.md), in the style of Avalanche's
``reproducible-continual-learning``: per row the benchmark, strategy, scenario, our
result, the paper's claim, whether it is reproduced (decided here by the rule of the
row, from the numbers) and why, and the command of every job behind it.

Nothing is trained: every number is read from the ``results.json`` that
``avalanche-adahat compare`` wrote in ``docs/results/<folder>``; a missing folder
gives a row marked "not run". Fashion-MNIST stands in for MNIST throughout.

    .venv/bin/python benchmarks/reproduction.py -o docs/REPRODUCTION.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


@dataclass
class Run:
    """One strategy of one results folder: per-seed average accuracy, BWT, diagonal."""

    folder: str
    strategy: str
    avg: list[float]
    bwt: list[float]
    diagonal: list[list[float]]  # per seed: A[j][j]
    command: str

    @property
    def seeds(self) -> int:
        return len(self.avg)

    def text(self) -> str:
        mean = statistics.mean(self.avg)
        spread = f" ± {statistics.stdev(self.avg):.3f}" if self.seeds > 1 else ""
        bwt = statistics.mean(self.bwt)
        return f"{mean:.3f}{spread} (BWT {bwt:+.3f}, {self.seeds} seed{'s' * (self.seeds > 1)})"


def load(folder: str, strategy: str) -> Run | None:
    path = RESULTS / folder / "results.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    entry = result["strategies"].get(strategy)
    if entry is None:
        return None
    seeds = entry["per_seed"].values()
    return Run(
        folder,
        strategy,
        [s["avg_acc"] for s in seeds],
        [s["bwt"] for s in seeds],
        [[row[j] for j, row in enumerate(s["acc_matrix"])] for s in seeds],
        result["config"]["command"],
    )


def beats(a: Run, b: Run) -> bool:
    """``a``'s mean average accuracy above ``b``'s by more than the larger seed spread."""
    spread = max(statistics.stdev(r.avg) if r.seeds > 1 else 0.0 for r in (a, b))
    return statistics.mean(a.avg) - statistics.mean(b.avg) > spread


def within_noise(a: Run, b: Run) -> bool:
    """``a``'s mean average accuracy at least ``b``'s minus the larger seed spread."""
    spread = max(statistics.stdev(r.avg) if r.seeds > 1 else 0.0 for r in (a, b))
    return statistics.mean(a.avg) >= statistics.mean(b.avg) - spread


def plasticity_drop(run: Run) -> float:
    """Mean A[j][j] over the first 10 tasks minus over the last 10 (seed mean)."""
    first = statistics.mean(statistics.mean(d[:10]) for d in run.diagonal)
    last = statistics.mean(statistics.mean(d[-10:]) for d in run.diagonal)
    return first - last


PFM50 = "Permuted FMNIST, 50 tasks"
PFM20 = "Permuted FMNIST, 20 tasks"
SFM5 = "Split FMNIST, 5 tasks"
DEFAULTS = "library defaults"
EXP1 = "AdaHAT Exp. 1 setting (Adam 1e-3, α 1e-6, 2 epochs)"


def rows() -> list[dict]:
    """Each row: what the paper says, what we ran, and the rule deciding "reproduced"."""
    out = []

    def row(benchmark, strategy, setting, claim, ours, others, rule, why_yes, why_no):
        runs = [ours, *others]
        if any(r is None for r in runs):
            verdict, reason, text = "not run", "a results folder is missing", "–"
        else:
            verdict = "yes" if rule(*runs) else "no"
            reason = why_yes(*runs) if verdict == "yes" else why_no(*runs)
            text = "; ".join(f"{r.strategy}: {r.text()}" for r in runs)
        commands = [] if any(r is None for r in runs) else sorted({r.command for r in runs})
        out.append(
            dict(
                benchmark=benchmark,
                strategy=strategy,
                setting=setting,
                ours=text,
                claim=claim,
                verdict=verdict,
                reason=reason,
                commands=commands,
            )
        )

    hat5 = load("sfm5_defaults", "hat")
    row(
        SFM5, "HAT", DEFAULTS,
        "HAT paper: forgetting close to zero (the paper's sequences are CIFAR splits and "
        "an 8-dataset mixture, not available offline)",
        hat5, [],
        lambda h: abs(statistics.mean(h.bwt)) < 0.005,
        lambda h: "BWT is 0 to the bit: protected parameters never move (tests/training/test_plugins.py)",
        lambda h: "BWT differs from 0",
    )  # fmt: skip
    # AdaHAT with the library's defaults since 366b05c (intensity per task); the baselines'
    # folders are older (docs/results/PREAMBLE.md)
    hat50, ada50 = load("pfm50_all", "hat"), load("pfm50_adahat_task", "adahat")
    row(
        PFM50, "HAT", DEFAULTS,
        "AdaHAT paper: HAT loses plasticity on long sequences (its network capacity runs out)",
        hat50, [],
        lambda h: plasticity_drop(h) > 0.1,
        lambda h: f"accuracy right after training falls by {plasticity_drop(h):.2f} from the "
        "first 10 tasks to the last 10, with no forgetting",
        lambda h: f"accuracy right after training falls by only {plasticity_drop(h):.2f}",
    )  # fmt: skip
    row(
        PFM50, "AdaHAT vs HAT", EXP1,
        "AdaHAT paper, Exp. 1: AdaHAT above HAT in average accuracy on Permuted MNIST, 50 tasks",
        load("permuted_fmnist_50_exp1_all", "adahat"),
        [load("permuted_fmnist_50_exp1_all", "hat")],
        beats,
        lambda a, h: "AdaHAT above HAT by more than the seed spread",
        lambda a, h: "under Adam the paper's α = 1e-6 rate on the gradient is divided out, so "
        "AdaHAT forgets like fine-tuning; CLArena 1.1.0's own AdaHAT ranks the same (10 tasks, "
        "seed 0: 0.731 vs HAT 0.752, measured for issue 15)",
    )  # fmt: skip
    row(
        PFM50, "AdaHAT vs HAT", DEFAULTS + " (AdaHAT: protect='update', intensity 20 per task; 1 epoch)",
        "AdaHAT paper: AdaHAT above HAT on long sequences",
        ada50, [hat50],
        beats,
        lambda a, h: "AdaHAT above HAT by more than the seed spread: it keeps plasticity "
        "where HAT's capacity runs out, at a small cost in forgetting",
        lambda a, h: "not above HAT by more than the seed spread",
    )  # fmt: skip
    for name in ("naive", "ewc"):
        row(
            PFM50, f"AdaHAT vs {name}", DEFAULTS,
            "AdaHAT paper: AdaHAT above the baselines (fine-tuning, EWC, LwF, ...) on long sequences",
            ada50, [load("pfm50_all", name)],
            beats,
            lambda a, b: f"AdaHAT above {b.strategy} by more than the seed spread",
            lambda a, b: f"AdaHAT not above {b.strategy} by more than the seed spread",
        )  # fmt: skip
    for name in ("hat", "naive", "ewc"):
        row(
            PFM20, f"AdaHAT vs {name}", DEFAULTS,
            "AdaHAT paper: AdaHAT above HAT and the baselines",
            load("pfm20_adahat_task", "adahat"), [load("permuted_fmnist_20_all", name)],
            beats,
            lambda a, b: f"AdaHAT above {b.strategy} by more than the seed spread",
            lambda a, b: f"AdaHAT not above {b.strategy} by more than the seed spread "
            "(docs/ROBUSTNESS_GRID.md: the grid behind the defaults)",
        )  # fmt: skip
    row(
        PFM20, "AdaHAT vs HAT", "SGD lr 0.05 (AdaHAT's SGD defaults)",
        "AdaHAT paper: AdaHAT above HAT",
        load("pfm20_sgd_adahat_task", "adahat"), [load("pfm20_sgd", "hat")],
        beats,
        lambda a, h: "AdaHAT above HAT by more than the seed spread under plain SGD too",
        lambda a, h: "not above HAT by more than the seed spread under SGD",
    )  # fmt: skip
    row(
        SFM5, "AdaHAT vs HAT", DEFAULTS,
        "AdaHAT paper: AdaHAT at least as good as HAT on short sequences",
        load("sfm5_adahat_task", "adahat"), [hat5],
        within_noise,
        lambda a, h: "within the seed spread of HAT or above",
        lambda a, h: "below HAT by more than the seed spread",
    )  # fmt: skip
    return out


def markdown(table: list[dict]) -> str:
    lines = [
        "# Reproduction: HAT and AdaHAT against the papers' claims",
        "",
        "Generated by `.venv/bin/python benchmarks/reproduction.py -o docs/REPRODUCTION.md` from the",
        "`compare` folders in `docs/results/` (nothing is trained by the script). In the style of",
        "Avalanche's `reproducible-continual-learning`. **Fashion-MNIST stands in for MNIST** (no",
        "network here), so the papers' own numbers are not comparable one to one; each row states the",
        'paper\'s *claim* and decides it from our numbers by the rule in the script ("above": by more',
        "than the larger seed standard deviation). Ours: mean ± sample std of the final average",
        "accuracy over seeds, task-incremental (one head per task), full training sets, 2,000 test",
        "images per permuted task.",
        "",
        "| benchmark | strategy | setting | ours | paper's claim | reproduced | why |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in table:
        lines.append(
            f"| {r['benchmark']} | {r['strategy']} | {r['setting']} | {r['ours']} | "
            f"{r['claim']} | **{r['verdict']}** | {r['reason']} |"
        )
    lines += ["", "## Commands", ""]
    for i, r in enumerate(table, 1):
        if r["commands"]:
            lines += [f"Row {i} ({r['benchmark']}, {r['strategy']}):", "", "```"]
            lines += [c for command in r["commands"] for c in command.splitlines()]
            lines += ["```", ""]
    lines += [
        "## Parity with the reference implementation",
        "",
        "Measured for issue 15 against CLArena 1.1.0 installed as an oracle (not part of this",
        "repository's install; no script here reruns it): one training step of our plugin hooks",
        "through `before_update` equals the reference's `training_step` on MLP 784-256-100-64 after",
        "two stored tasks for `adahat`, `adahat_no_reg`, `hat`, `hat_const_alpha` and `hat_const_1`",
        "at batches 1, 100 and 469 of 469 (backbone gradients within 1.8e-15, embedding gradients",
        "within 1.5e-8, regulariser, capacity and per-layer sparsity within 8e-8 relative); the only",
        "differences are the documented ones (1-based annealing, `adahat_no_sum` in the paper code's",
        "form, `cross`, which crashes in the reference on this MLP).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default=None, help="write here (default: print)")
    args = parser.parse_args(argv)
    text = markdown(rows())
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
