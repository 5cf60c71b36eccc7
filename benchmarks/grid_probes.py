"""Other forms of AdaHAT's rate and other first masks, probed on the robustness grid's binding
cells (issue 24).

The grid (docs/ROBUSTNESS_GRID.md) found no per-task intensity that reaches max(HAT, Naive) in
every cell. Each probe here is the grid's per-task candidate (``intensity_per="task"``,
``protect="update"``) with an intensity ``A`` under Adam and one under SGD, and one change:

- **Rates that react to the task being trained.** These are not library code:
  ``docs/results/grid/probes/rate_forms.patch`` adds them to commit 98b4511's plugin, behind the
  environment variable ``PROBE``. Each step's ``alpha`` becomes ``f * A / N``, with ``N`` the
  task's planned steps:
  - ``loss``: ``f = min(1, L / ln C)``, where ``L`` is the batch's cross-entropy before the
    sparsity regulariser and ``C`` the experience's number of classes. Once the task is learnt,
    used parameters stop moving.
  - ``delay``: ``f = 1e-6`` over the first quarter of the task's planned steps and ``1 / 0.75``
    after that. The free units get the first chance to learn the task, and the intensity per
    task stays ``A``.
  - ``delayloss``: both (the loss factor after the first quarter).
- **The new task's first mask** (library settings, ``PROBE`` unset, so the patch does
  nothing): ``task_embedding_init_mode`` ``"U01"``, where every unit starts on, or ``"last"``,
  where the new task starts from the previous task's mask. The default is ``"N01"``: about half
  the units start on, at random.

Run from a worktree of 98b4511 holding the patch (one thread per job, one job at a time):

    git worktree add /tmp/wt_probe 98b4511 && git -C /tmp/wt_probe apply \\
        $PWD/docs/results/grid/probes/rate_forms.patch
    python benchmarks/grid_probes.py run --snapshot /tmp/wt_probe --probe loss_t20
    python benchmarks/grid_probes.py table --probes loss_t20,loss_t40

``run`` trains the probe's AdaHAT jobs of the cells and seeds with ``compare``. For each seed it
adds the average accuracy, BWT and accuracy when learnt, with the command, to
``docs/results/grid/probes/<probe>.json.gz``. It keeps no bulky folders. ``table`` prints each
probe's margin over max(HAT, Naive) against the grid's own HAT and Naive runs of the same seeds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import robustness_grid as G

PROBES_DIR = G.REPO / "docs/results/grid/probes"  # <probe>.json.gz each, and the patch
BASE_COMMIT = "98b4511"
U01, LAST = {"task_embedding_init_mode": "U01"}, {"task_embedding_init_mode": "last"}
#: probe label -> (PROBE or None, intensity per task under Adam, under SGD, AdaHAT settings)
PROBES = {
    "loss_t20": ("loss", 20.0, 200.0, {}),
    "loss_t40": ("loss", 40.0, 400.0, {}),
    "delay_t20": ("delay", 20.0, 200.0, {}),
    "delayloss_t40": ("delayloss", 40.0, 400.0, {}),
    "u01_t20": (None, 20.0, 200.0, U01),
    "u01_t5": (None, 5.0, 50.0, U01),
    "u01_t1": (None, 1.0, 10.0, U01),
    "last_t20": (None, 20.0, 200.0, LAST),
    "u01r75_t20": (None, 20.0, 200.0, {**U01, "mask_sparsity_reg_factor": 0.75}),
    "u01r75_t5": (None, 5.0, 50.0, {**U01, "mask_sparsity_reg_factor": 0.75}),
    # plain SGD cells only (sgd_s80, digits_sgd; sgd_s470 for two): the nearest there
    "u01r75_t2": (None, 2.0, 20.0, {**U01, "mask_sparsity_reg_factor": 0.75}),
    "u01r150_t5": (None, 5.0, 50.0, {**U01, "mask_sparsity_reg_factor": 1.5}),
    "u01r150_t2": (None, 2.0, 20.0, {**U01, "mask_sparsity_reg_factor": 1.5}),
    "u01r75_t10": (None, 10.0, 100.0, {**U01, "mask_sparsity_reg_factor": 0.75}),
}
#: the cells the previous default t20|t200 missed, and pfm20_s50, its binding cell on the other side
CELLS = ("pfm20_s50", "sgd_s80", "sdigits", "digits_sgd", "digits_adam")


def probe_args(label: str, cell: G.Cell, seed: int, out: Path) -> list[str]:
    """``compare``'s arguments: the grid's per-task candidate with the probe's intensity."""
    _, adam, sgd, settings = PROBES[label]
    intensity = sgd if cell.settings.get("optimizer") == "sgd" else adam
    args = G.compare_args(cell, "t20", seed, out)
    args[args.index("adahat.adjustment_intensity=20")] = (
        f"adahat.adjustment_intensity={intensity:g}"
    )
    for key, value in settings.items():
        args += ["--set", f"adahat.{key}={value}"]
    return args


def stored(label: str) -> dict:
    """A probe's stored results, ``{}`` if it has none."""
    path = PROBES_DIR / f"{label}.json.gz"
    return json.loads(gzip.decompress(path.read_bytes())) if path.exists() else {}


def record(results: dict) -> dict:
    """``{seed: {avg_acc, bwt, learnt}}`` of the AdaHAT run in a results.json."""
    out = {}
    for seed, ps in results["strategies"]["adahat"]["per_seed"].items():
        r = G.seed_record(ps)
        out[seed] = r | {"learnt": round(r["learnt"], 6)}
    return out


def run(args: argparse.Namespace) -> int:
    snapshot = Path(args.snapshot).resolve()
    python = str(G.REPO / ".venv/bin/python")
    kind = PROBES[args.probe][0] or ""
    env = {**os.environ, "PYTHONPATH": str(snapshot), "OMP_NUM_THREADS": "1", "PROBE": kind}
    path = PROBES_DIR / f"{args.probe}.json.gz"
    results = stored(args.probe)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for cell in [G.CELL_BY_NAME[n] for n in args.cells.split(",")]:
            runs = results.setdefault("runs", {}).setdefault(cell.name, {})
            if str(seed) in runs:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "out"
                cmd = [python, "-P", "-m", "avalanche_adahat", "compare"]
                cmd += probe_args(args.probe, cell, seed, out)
                start = time.perf_counter()
                done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"{args.probe} {cell.name} seed {seed} failed:\n{done.stderr[-3000:]}")
                runs.update(record(json.loads((out / "results.json").read_text())))
            shown = f"PROBE={kind} PYTHONPATH=<worktree> " + shlex.join(cmd).replace(
                python, "python"
            )
            results.setdefault("commands", {})[f"{cell.name} {seed}"] = shown
            results["base_commit"] = BASE_COMMIT
            text = json.dumps(results, indent=1, sort_keys=True) + "\n"
            path.write_bytes(gzip.compress(text.encode(), mtime=0))
            print(f"{args.probe} {cell.name} seed {seed}: {time.perf_counter() - start:.0f} s")
    return 0


def table(args: argparse.Namespace) -> int:
    """Margin over max(HAT, Naive), paired per seed; accuracy when learnt and BWT per probe."""
    probes = args.probes.split(",") if args and args.probes else list(PROBES)
    runs = {p: stored(p)["runs"] for p in probes}
    cells = [G.CELL_BY_NAME[n] for n in (args.cells.split(",") if args and args.cells else CELLS)]
    data = G.load(G.REPO, cells)
    labels = ["t20|t200", *probes]
    print("| cell | " + " | ".join(label.replace("|", "\\|") for label in labels) + " |")
    print("| --- |" + " ---: |" * len(labels))
    for cell in cells:
        row = []
        for label in labels:
            cell_data = dict(data[cell.name])
            if label in PROBES:
                cell_data[label] = {int(s): r for s, r in runs[label].get(cell.name, {}).items()}
            m = G.margin(cell_data, label)
            if m is None:
                row.append("–")
                continue
            rs = cell_data[label].values()
            learnt = statistics.fmean(r["learnt"] for r in rs)
            bwt = statistics.fmean(r["bwt"] for r in rs)
            spread = f" ± {m['std']:.3f}" if m["std"] is not None else ""
            row.append(f"{m['margin']:+.3f}{spread} ({learnt:.2f} / {bwt:+.3f})")
        print(f"| {cell.name} | " + " | ".join(row) + " |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train the probe's missing jobs, one at a time")
    r.add_argument("--snapshot", required=True, help=f"worktree of {BASE_COMMIT} with the patch")
    r.add_argument("--probe", required=True, choices=sorted(PROBES))
    r.add_argument("--cells", default=",".join(CELLS))
    r.add_argument("--seeds", default="0,1,2")
    t = sub.add_parser("table", help="print the margins (Markdown)")
    t.add_argument("--probes", help="comma list (default all)")
    t.add_argument("--cells", help=f"comma list (default {','.join(CELLS)})")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    sys.exit(main())
