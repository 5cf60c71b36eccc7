"""AdaHAT robustness grid (issue 24): candidate defaults against HAT, Naive and EWC over
schedules, ranked by their worst case: the smallest margin over max(HAT, Naive), paired per seed.

    python benchmarks/robustness_grid.py run --commit C --snapshot /tmp/snap_C --seeds 0
    python benchmarks/robustness_grid.py summary

``run`` trains one ``compare`` job at a time, each in its own process (``python -P -m
avalanche_adahat compare``, ``PYTHONPATH`` = the snapshot, one thread), into
``docs/results/grid/<cell>_s<seed>/<job>/``, skipping jobs done (results.json.gz) or held by a
reused folder, so it resumes. ``summary`` writes docs/ROBUSTNESS_GRID.md and
docs/results/grid/{margin.png, grid.json, README.md} from the folders.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GRID = Path("docs/results/grid")  # relative to the repository root (recorded in commands)
STUDY = Path("docs/ROBUSTNESS_GRID.md")
LOGS = "/tmp/grid_logs"  # one compare log per job
STOP = Path("/tmp/grid_stop")  # `run` starts no further job while this file exists
BASELINES = ("hat", "naive", "ewc")
#: AdaHAT candidates: label -> the AdaHAT parameters compare sets, all with protect="update"
#: and the library's other AdaHAT defaults (mask_sparsity_reg_factor 0.1, epsilon 0.1).
#: "a<alpha>": alpha at every optimizer step; "t<A>": intensity A per task
#: (intensity_per="task": each step uses A / the task's planned optimizer steps).
CANDIDATES: dict[str, dict] = {
    **{k: {"adjustment_intensity": a} for k, a in (("a1e-2", 1e-2), ("a0.1", 0.1), ("a0.3", 0.3), ("a1", 1.0))},
    **{f"t{a:g}": {"intensity_per": "task", "adjustment_intensity": a} for a in (5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 300.0)},
    # probes on the cells the default misses (42907dd): sparser masks ("r75", the regulariser
    # factor 0.75) and a flatter r_l ("e1", epsilon 1)
    **{f"t{a:g}r75": {"intensity_per": "task", "adjustment_intensity": a, "mask_sparsity_reg_factor": 0.75} for a in (20.0, 200.0)},
    **{f"t{a:g}e1": {"intensity_per": "task", "adjustment_intensity": a, "epsilon": 1.0} for a in (20.0, 50.0, 200.0, 500.0)},
    # every unit on at a task's start ("u01", task_embedding_init_mode U01) with HAT's
    # regulariser factor 0.75, under plain SGD (benchmarks/grid_probes.py found it there)
    "t20u01r75": {"intensity_per": "task", "adjustment_intensity": 20.0, "task_embedding_init_mode": "U01", "mask_sparsity_reg_factor": 0.75},
}  # fmt: skip
#: Candidates that take one of the above by the cell's optimizer: (adaptive, SGD-like).
BY_OPTIMIZER = {"t20|t200": ("t20", "t200"), "t20|t20u01r75": ("t20", "t20u01r75")}
LABELS = (*CANDIDATES, *BY_OPTIMIZER)
DEFAULT_CANDIDATE = "a1e-2"  # the library's default when the grid was run
#: jobs besides the candidates (each candidate job trains "adahat"): name -> strategies
BASE_JOBS = {"base": ("hat", "naive"), "ewc": ("ewc",)}
COMMON = {"model": "mlp", "model_params": {}}  # checked in every results.json read
FLAGS = {
    "benchmark": "--benchmark", "n_experiences": "--n-experiences",
    "train_per_task": "--train-per-task", "test_per_task": "--test-per-task",
    "epochs": "--epochs", "batch_size": "--batch-size", "optimizer": "--optimizer", "lr": "--lr",
}  # fmt: skip


@dataclass(frozen=True)
class Cell:
    """A schedule: ``compare`` settings (None: not passed), images per task, reused folders."""

    name: str
    title: str
    settings: dict
    images: int  # training images per task actually used
    #: label -> (folder relative to the repository, strategy name in its results.json)
    reuse: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:  # optimizer steps per task
        return math.ceil(self.images / self.settings["batch_size"]) * self.settings["epochs"]


def pfm(n, train, epochs, optimizer="adam", lr=1e-3, **more) -> dict:
    settings = {"benchmark": "permuted_fmnist", "n_experiences": n, "train_per_task": train}
    settings |= {"epochs": epochs, "batch_size": 128, "optimizer": optimizer, "lr": lr}
    return settings | {"test_per_task": 2000} | more


_R = "docs/results/"
_PFM20 = {k: (_R + "permuted_fmnist_20_all", k) for k in BASELINES}
_STUDY = {k: (f"{_R}study_pfm20_update_a{a}_r0.1", "adahat") for k, a in
          (("a1e-2", "1e-2"), ("a0.1", "1e-1"), ("a0.3", "3e-1"))}  # fmt: skip
_SGD = {"hat": (_R + "pfm20_sgd", "hat"), "naive": (_R + "pfm20_sgd", "naive")}
_SGD["a1e-2"] = (_R + "pfm20_sgd", "adahat")
CELLS = [
    Cell("pfm20_s50", "PFM20, 3,200 img/task, 2 ep", pfm(20, 3200, 2), 3200),
    Cell("pfm20_s80", "PFM20, 5,000 img/task, 2 ep", pfm(20, 5000, 2), 5000),
    Cell("pfm20_s200", "PFM20, 12,800 img/task, 2 ep", pfm(20, 12800, 2), 12800),
    Cell("pfm20_s470", "PFM20, full data, 1 ep", pfm(20, None, 1), 60000, _PFM20 | _STUDY),
    Cell("pfm20_s940", "PFM20, full data, 2 ep", pfm(20, None, 2), 60000),
    Cell("sgd_s80", "PFM20, SGD 0.05, 5,000 img/task, 2 ep", pfm(20, 5000, 2, "sgd", 0.05), 5000),
    Cell("sgd_s470", "PFM20, SGD 0.05, full data, 1 ep", pfm(20, None, 1, "sgd", 0.05), 60000, _SGD),
    Cell("pfm50_s80", "PFM50, 5,000 img/task, 2 ep", pfm(50, 5000, 2), 5000),
    Cell("sfm5", "Split FMNIST 5, full data, 1 ep",
         pfm(5, None, 1, benchmark="split_fmnist", test_per_task=None), 12000),
    # compare's split_digits defaults; 248-254 training images per task
    # (avalanche_adahat.data.benchmarks.split_digits, seeds 0-2): 16 batches of 16 per epoch
    Cell("sdigits", "split_digits, Adam 3e-3, batch 16, 10 ep",
         pfm(None, None, 10, "adam", 3e-3, benchmark="split_digits", batch_size=16,
             test_per_task=None), 252),
]  # fmt: skip
#: Settings added after a first comparison of the per-task candidates (3 seeds in one job
#: each, folders ``<cell>_s012``): the demo's, split digits at 80 steps per task under Adam, a
#: shorter Permuted FMNIST at batch 64. They then entered the final choice (t20 against t10
#: under Adam, t200 against t300 under SGD), so they are grid cells, not held-out checks.
ADDED_CELLS = [
    Cell("digits_sgd", "added: split_digits, SGD 0.1, batch 32, 20 ep (the demo)",
         pfm(None, None, 20, "sgd", 0.1, benchmark="split_digits", batch_size=32, test_per_task=None), 252),
    Cell("digits_adam", "added: split_digits, Adam 1e-3, batch 32, 10 ep",
         pfm(None, None, 10, "adam", 1e-3, benchmark="split_digits", batch_size=32, test_per_task=None), 252),
    Cell("pfm10_b64", "added: PFM10, 2,000 img/task, 3 ep, batch 64", pfm(10, 2000, 3, batch_size=64), 2000),
]  # fmt: skip
#: Settings chosen after AdaHAT's SGD defaults (t20u01r75) were picked, before any of their
#: runs, to check those defaults where the choice has not looked: one split benchmark (where
#: stability counts) and one short Permuted FMNIST (where plasticity does), both under plain SGD.
HELD_OUT_CELLS = [
    Cell("sfm5_sgd", "held out: Split FMNIST 5, SGD 0.05, full data, 1 ep",
         pfm(5, None, 1, "sgd", 0.05, benchmark="split_fmnist", test_per_task=None), 12000),
    Cell("pfm10_sgd", "held out: PFM10, SGD 0.05, 2,000 img/task, 3 ep, batch 64",
         pfm(10, 2000, 3, "sgd", 0.05, batch_size=64), 2000),
]  # fmt: skip
CELLS = CELLS + ADDED_CELLS + HELD_OUT_CELLS
CELL_BY_NAME = {c.name: c for c in CELLS}
JOBS = (*BASE_JOBS, *CANDIDATES)


def labels_of(job: str) -> tuple[str, ...]:
    return BASE_JOBS.get(job, (job,))


def compare_args(cell: Cell, job: str, seed: int, out: Path) -> list[str]:
    args = []
    for key, value in cell.settings.items():
        if value is not None:
            args += [FLAGS[key], f"{value:g}" if key == "lr" else str(value)]
    if job in CANDIDATES:
        args += ["--strategies", "adahat", "--set", "adahat.protect=update"]
        for key, value in CANDIDATES[job].items():
            args += ["--set", f"adahat.{key}={value:g}" if isinstance(value, float) else f"adahat.{key}={value}"]  # fmt: skip
    else:
        args += ["--strategies", ",".join(BASE_JOBS[job])]
    return args + ["--seeds", str(seed), "--threads", "1", "--progress", "lines", "--output", str(out)]  # fmt: skip


README = """# Robustness grid folders

`<cell>_s<seed>/<job>/` (job: `base` = HAT and Naive, `ewc`, or an AdaHAT candidate) written by
`python benchmarks/robustness_grid.py run` from a snapshot of commit {} (`git archive` of
`avalanche_adahat`, run as `PYTHONPATH=<snapshot> .venv/bin/python -P -m avalanche_adahat compare`).
Each `job.json` holds the job's exact command, commit and wall seconds; `results.json.gz` is
compare's results.json with floats rounded to 6 significant digits, gzipped (`gunzip -k` restores a
file `compare --config`, `merge` and `report` read); the PNGs, results.md and results.csv are
deleted (`report` remakes the page). `grid.json` and
`margin.png` come from `{}`; the tables are in docs/ROBUSTNESS_GRID.md.
"""


# ============================================================================ reading results
def params_match(label: str, params: dict) -> bool:
    """Whether a results.json strategy's ``--set`` params are what ``label`` stands for."""
    if label not in CANDIDATES:
        return not params
    if not params:  # a reused folder run with the library's defaults of its commit
        return label == DEFAULT_CANDIDATE
    got = {k: v for k, v in params.items() if k != "protect"}
    if got.get("mask_sparsity_reg_factor") == 0.1:  # AdaHAT's default, passed explicitly
        del got["mask_sparsity_reg_factor"]
    if not got:  # protect="update" alone: the defaults of the commit that ran (before 366b05c)
        return label == DEFAULT_CANDIDATE and params.get("protect") == "update"
    want = dict(CANDIDATES[label])
    alpha = math.isclose(
        float(got.pop("adjustment_intensity", -1)), want.pop("adjustment_intensity")
    )
    unit = got.pop("intensity_per", "step") == want.pop("intensity_per", "step")
    rest = got.keys() == want.keys() and all(_same(got[k], want[k]) for k in got)
    return params.get("protect") == "update" and alpha and unit and rest


def _same(got, want) -> bool:
    """A ``--set`` value as stored (a string or a number) against a candidate's."""
    if isinstance(want, str):
        return got == want
    return math.isclose(float(got), want)


def check_config(config: dict, cell: Cell, strategy: str, label: str, where: Path) -> None:
    """Raise ValueError where a results.json was not run with the cell's settings."""
    for key, want in {**cell.settings, **COMMON}.items():
        got = config.get(key)
        same = math.isclose(got, want) if key == "lr" and got is not None else got == want
        if not same:
            raise ValueError(f"{where}: {key}={got!r}, cell {cell.name} needs {want!r}")
    params = config.get("params", {}).get(strategy, {})
    if not params_match(label, params):
        raise ValueError(f"{where}: {strategy} params {params} are not candidate {label}")


def read_results(folder: Path) -> dict:
    """A folder's results.json, or its gzipped copy results.json.gz (the grid's own jobs)."""
    plain, packed = folder / "results.json", folder / "results.json.gz"
    return json.loads(plain.read_text() if plain.exists() else gzip.decompress(packed.read_bytes()))


def seed_record(per_seed: dict) -> dict:
    """One seed's average accuracy, BWT and accuracy when learnt (the mean of the accuracy
    matrix's diagonal) from its results.json entry."""
    m = per_seed["acc_matrix"]
    learnt = statistics.fmean(m[i][i] for i in range(len(m)))
    return {"avg_acc": per_seed["avg_acc"], "bwt": per_seed["bwt"], "learnt": learnt}


def load(root: Path, cells: list[Cell], reuse: bool = True) -> dict:
    """``{cell: {label: {seed: record}}}`` from the grid folders under ``root`` (the
    repository) and, with ``reuse``, the cells' reused folders (grid folders win)."""
    data: dict = {c.name: {} for c in cells}
    for cell in cells:
        sources = [(root / f, s, k) for k, (f, s) in cell.reuse.items()] if reuse else []
        for path in sorted((root / GRID).glob(f"{cell.name}_s*/*/results.json*")):
            if not re.fullmatch(rf"{re.escape(cell.name)}_s\d+", path.parent.parent.name):
                continue  # another cell whose name starts with this one's (sfm5_sgd, sfm5)
            job = path.parent.name
            for label in labels_of(job):
                sources.append((path.parent, "adahat" if job in CANDIDATES else label, label))
        for folder, strategy, label in sources:
            results = read_results(folder)
            if strategy not in results["strategies"]:
                continue
            check_config(results["config"], cell, strategy, label, folder)
            source = str(folder.relative_to(root))
            for seed, ps in results["strategies"][strategy]["per_seed"].items():
                record = seed_record(ps) | {"source": source}
                data[cell.name].setdefault(label, {})[int(seed)] = record
        sgd = cell.settings.get("optimizer") == "sgd"
        for label, (adaptive, sgd_like) in BY_OPTIMIZER.items():
            if (sgd_like if sgd else adaptive) in data[cell.name]:
                data[cell.name][label] = data[cell.name][sgd_like if sgd else adaptive]
    return data


# ============================================================================ statistics
def mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def fmt(values: list[float], sign: bool = False) -> str:
    """``mean ± std (n)`` to 3 decimals; no spread for one value, a dash for none."""
    if not values:
        return "–"
    m, s = mean_std(values)
    spread = f" ± {s:.3f}" if s is not None else ""
    return f"{m:{'+' if sign else ''}.3f}{spread} ({len(values)})"


def accuracies(cell_data: dict, label: str) -> list[float]:
    return [r["avg_acc"] for _, r in sorted(cell_data.get(label, {}).items())]


def margin(cell_data: dict, label: str, against=("hat", "naive")) -> dict | None:
    """``label`` minus the best of ``against`` (default max(HAT, Naive)), paired per seed
    over the seeds they all have."""
    runs = [cell_data.get(k, {}) for k in (label, *against)]
    seeds = sorted(set.intersection(*(set(r) for r in runs)))
    if not seeds:
        return None
    per_seed = [runs[0][s]["avg_acc"] - max(r[s]["avg_acc"] for r in runs[1:]) for s in seeds]
    m, s = mean_std(per_seed)
    return {"margin": m, "std": s, "seeds": seeds, "per_seed": per_seed}


def ewc_verdict(cell_data: dict) -> dict | None:
    """EWC minus the best other strategy of the cell (by mean), paired over common seeds."""
    others = [k for k, v in cell_data.items() if k != "ewc" and v]
    if not cell_data.get("ewc") or not others:
        return None
    best = max(others, key=lambda k: statistics.fmean(accuracies(cell_data, k)))
    m = margin(cell_data, "ewc", (best,))
    return m and {**m, "best_other": best, "wins": m["margin"] > 0}


def analyse(data: dict, cells: list[Cell]) -> dict:
    """Margins per (candidate, cell), each candidate's worst case, EWC per cell, the winner:
    the largest worst case among the candidates run in every cell (or, while none is, in
    the most cells)."""
    names = [c.name for c in cells if data.get(c.name)]
    margins = {k: {c: margin(data[c], k) for c in names} for k in LABELS}
    worst = {}
    for k, per_cell in margins.items():
        done = {c: m for c, m in per_cell.items() if m is not None}
        if done:
            cell = min(done, key=lambda c: done[c]["margin"])
            worst[k] = {"margin": done[cell]["margin"], "cell": cell, "cells": len(done)}
    most = max((w["cells"] for w in worst.values()), default=0)
    pool = [k for k in worst if worst[k]["cells"] == most]
    winner = max(pool, key=lambda k: worst[k]["margin"]) if pool else None
    complete = [k for k in worst if worst[k]["cells"] == len(names)]
    ewc = {c: ewc_verdict(data[c]) for c in names}
    return dict(
        cells=names, margins=margins, worst=worst, complete=complete, winner=winner, ewc=ewc
    )


def summary(args: argparse.Namespace) -> int:
    root = Path(args.root).resolve()
    cells = [CELL_BY_NAME[n] for n in args.cells.split(",")] if args.cells else CELLS
    data = load(root, cells, reuse=not args.no_reuse)
    result = analyse(data, cells)
    jobs = [json.loads(p.read_text()) for p in sorted((root / GRID).glob("*/*/job.json"))]
    commits = sorted({j["commit"] for j in jobs})
    command = "python benchmarks/robustness_grid.py " + shlex.join(args.argv)
    notes = (root / args.notes).read_text() if args.notes else ""
    study = root / (args.output or STUDY)
    study.parent.mkdir(parents=True, exist_ok=True)
    from robustness_grid_report import heatmap, markdown

    study.write_text(markdown(data, result, cells, command, commits, jobs, notes))
    heatmap(result, root / GRID / "margin.png", f"{command}; grid commit {', '.join(commits)}")
    accuracy = {c: {k: {s: r["avg_acc"] for s, r in v.items()} for k, v in d.items()} for c, d in data.items()}  # fmt: skip
    record = {"command": command, "commits": commits, "candidates": CANDIDATES, "accuracy": accuracy}  # fmt: skip
    record["cells"] = {c.name: {**c.__dict__, "steps_per_task": c.steps} for c in cells}
    record |= {k: result[k] for k in ("margins", "worst", "winner", "ewc")}  # jobs: job.json
    (root / GRID / "grid.json").write_text(json.dumps(record, separators=(",", ":")) + "\n")
    (root / GRID / "README.md").write_text(README.format(", ".join(commits) or "-", command))
    print(f"wrote {study}, {GRID}/margin.png, grid.json, README.md; winner {result['winner']}")
    return 0


# ============================================================================ running
def _rounded(x):
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    return [_rounded(v) for v in x] if isinstance(x, list) else float(f"{x:.6g}") if isinstance(x, float) else x  # fmt: skip


def covered_by_reuse(cell: Cell, job: str, seed: int, root: Path) -> bool:
    def holds(folder: str, strategy: str) -> bool:
        results = read_results(root / folder)
        return str(seed) in results["strategies"].get(strategy, {}).get("per_seed", {})

    return all(k in cell.reuse and holds(*cell.reuse[k]) for k in labels_of(job))


def run_job(cmd: list[str], env: dict, root: Path, out: Path, log: Path, commit: str, shown: str) -> bool:  # fmt: skip
    start = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(cmd, env=env, cwd=root, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    path = root / out / "results.json"
    if rc != 0 or not path.exists():
        print(f"  FAILED rc={rc} after {wall:.0f} s, see {log}", flush=True)
        return False
    for derived in [
        *(root / out).glob("*.png"),
        root / out / "results.md",
        root / out / "results.csv",
    ]:
        derived.unlink(missing_ok=True)  # all of it is in results.json
    text = json.dumps(_rounded(json.loads(path.read_text())), separators=(",", ":"))
    path.with_suffix(".json.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    path.unlink()
    record = {"folder": str(out), "command": shown, "commit": commit, "wall_seconds": wall}
    (root / out / "job.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{time.strftime('%H:%M:%S')} done {out} in {wall:.0f} s", flush=True)
    return True


def run(args: argparse.Namespace) -> int:
    root, snapshot = Path(args.root).resolve(), Path(args.snapshot).resolve()
    python = str(root / ".venv/bin/python")
    env = {**os.environ, "PYTHONPATH": str(snapshot), "OMP_NUM_THREADS": "1"}
    probe = [python, "-P", "-c", "import avalanche_adahat; print(avalanche_adahat.__file__)"]
    where = subprocess.run(probe, env=env, capture_output=True, text=True, check=True, cwd=root)
    if not where.stdout.strip().startswith(str(snapshot)):
        sys.exit(f"avalanche_adahat resolves to {where.stdout.strip()}, not {snapshot}")
    Path(LOGS).mkdir(parents=True, exist_ok=True)
    failures = 0
    for seed in [int(s) for s in args.seeds.split(",")]:
        for cell in [CELL_BY_NAME[n] for n in args.cells.split(",")]:
            for job in args.jobs.split(",") if args.jobs else JOBS:
                out = GRID / f"{cell.name}_s{seed}" / job
                done = any((root / out / f).exists() for f in ("results.json", "results.json.gz"))
                if done or covered_by_reuse(cell, job, seed, root):
                    continue
                cmd = [python, "-P", "-m", "avalanche_adahat", "compare"]
                cmd += compare_args(cell, job, seed, out)
                shown = f"PYTHONPATH={snapshot} OMP_NUM_THREADS=1 " + shlex.join(cmd)
                shown = shown.replace(python, ".venv/bin/python")
                if STOP.exists():
                    sys.exit(f"{STOP} exists: stopped before {out}")
                print(f"{time.strftime('%H:%M:%S')} start {out}", flush=True)
                log = Path(LOGS) / f"{cell.name}_s{seed}_{job}.log"
                failures += not run_job(cmd, env, root, out, log, args.commit, shown)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train the missing jobs, one at a time")
    r.add_argument("--commit", required=True, help="commit the snapshot was archived from")
    r.add_argument("--snapshot", required=True, help="folder holding the archived avalanche_adahat")
    r.add_argument("--seeds", default="0")
    r.add_argument("--cells", default=",".join(CELL_BY_NAME), help="comma list, in run order")
    r.add_argument("--jobs", help=f"comma list of {', '.join(JOBS)} (default all)")
    s = sub.add_parser("summary", help="write the tables, the heatmap and grid.json")
    s.add_argument("--cells", help="comma list (default all)")
    s.add_argument("--no-reuse", action="store_true", help="read the grid's own folders only")
    s.add_argument("--notes", help="Markdown file (under --root) shown above the tables")
    s.add_argument("--output", help=f"Markdown file (default {STUDY})")
    for p in (r, s):
        p.add_argument("--root", default=str(REPO), help="repository root (default this one)")
    args = parser.parse_args(argv)
    args.argv = argv
    return run(args) if args.command == "run" else summary(args)


if __name__ == "__main__":
    sys.exit(main())
