"""Summarise the AdaHAT study: tables and an alpha plot from ``compare`` output folders.

Reads every ``docs/results/study_*`` folder that holds a ``results.json`` written by
``avalanche-adahat compare`` plus the published baselines (``docs/results/permuted_fmnist_20_all``)
and writes

* a Markdown report (default ``docs/ADAHAT_STUDY.md``): per strategy/setting the number of seeds,
  average accuracy, BWT, forgetting and *accuracy when learnt* (the mean of the diagonal
  ``A[j][j]`` of the accuracy matrix, i.e. the accuracy on task ``j`` right after training it, the
  plasticity measure), mean ± sample std over seeds; a table of the digits runs (Task B) with the
  smallest diagonal entry over tasks and seeds; and every command that produced the folders;
* a PNG (default ``docs/results/study_alpha.png``): average accuracy, BWT and accuracy when learnt
  over AdaHAT's ``adjustment_intensity`` (alpha), one line per ``(protect, mask_sparsity_reg_factor)``,
  with HAT, EWC and Naive as horizontal reference lines.

Nothing is trained here::

    .venv/bin/python benchmarks/adahat_study.py
    .venv/bin/python benchmarks/adahat_study.py --notes docs/results/study_notes.md \\
        --output docs/ADAHAT_STUDY.md --plot docs/results/study_alpha.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from pathlib import Path

#: Strategy defaults of ``avalanche-adahat compare`` (its ``--help``), used where a folder's
#: ``config.params`` does not override them. Only the keys this study varies are listed.
DEFAULTS = {
    "adahat": {
        "protect": "gradient",
        "adjustment_intensity": 1e-6,
        "epsilon": 0.1,
        "mask_sparsity_reg_factor": 0.1,
    },
    "hat": {"protect": "gradient", "mask_sparsity_reg_factor": 0.75},
}

#: The benchmark setting of the alpha sweep (Task A); folders of other settings are tabled apart.
SWEEP_SETTING = {
    "benchmark": "permuted_fmnist",
    "n_experiences": 20,
    "epochs": 1,
    "batch_size": 128,
    "optimizer": "adam",
    "lr": 0.001,
    "test_per_task": 2000,
    "model": "mlp",
}


#: Training images of scikit-learn's digits after the stratified 30 % test split
#: (``avalanche_adahat.data.benchmarks.digits_tensors``): about 1,257 of 1,797.
DIGITS_TRAIN = 1257


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [v for v in values if v is not None]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def diagonal(matrix: list[list[float | None]]) -> list[float]:
    """``A[j][j]``: the accuracy on task ``j`` right after training on it."""
    return [matrix[j][j] for j in range(len(matrix))]


def load(folder: Path) -> list[dict]:
    """One row per strategy of a ``compare`` folder, with per-seed metrics."""
    data = json.loads((folder / "results.json").read_text())
    config = data["config"]
    rows = []
    for name, result in data["strategies"].items():
        params = dict(DEFAULTS.get(name, {}))
        params.update((config.get("params") or {}).get(name, {}))
        seeds = result["per_seed"]
        learnt = [statistics.fmean(diagonal(s["acc_matrix"])) for s in seeds.values()]
        min_diag = min(min(diagonal(s["acc_matrix"])) for s in seeds.values())
        rows.append(
            {
                "folder": folder,
                "strategy": name,
                "params": params,
                "config": config,
                "seeds": sorted(int(k) for k in seeds),
                "avg_acc": mean_std([s["avg_acc"] for s in seeds.values()]),
                "avg_acc_seed": {int(k): s["avg_acc"] for k, s in seeds.items()},
                "bwt": mean_std([s["bwt"] for s in seeds.values()]),
                "forgetting": mean_std([s["forgetting"] for s in seeds.values()]),
                "learnt": mean_std(learnt),
                "min_diag": min_diag,
                "train_s": mean_std([s.get("train_seconds") for s in seeds.values()]),
                "wall_s": data.get("wall_seconds"),
                "command": config.get("command", ""),
            }
        )
    return rows


def label(row: dict) -> str:
    """A readable name for a strategy with the hyperparameters that matter here."""
    p, name = row["params"], row["strategy"]
    if name in ("adahat", "adahat_no_sum", "adahat_no_reg"):
        text = (
            f"{name} protect={p.get('protect', 'gradient')} α={p.get('adjustment_intensity'):g} "
            f"reg={p.get('mask_sparsity_reg_factor'):g}"
        )
        if p.get("epsilon", 0.1) != 0.1:
            text += f" ε={p['epsilon']:g}"
        return text
    if name == "hat":
        return f"hat reg={p.get('mask_sparsity_reg_factor'):g}"
    return name


def fmt(pair: tuple[float, float], digits: int = 4) -> str:
    m, s = pair
    if math.isnan(m):
        return "–"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def in_sweep_setting(config: dict) -> bool:
    return all(config.get(k) == v for k, v in SWEEP_SETTING.items()) and not (
        config.get("model_params")
    )


def rel(path: Path, root: Path) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return str(path)


def paired(row: dict, ref: dict | None) -> tuple[float, float]:
    """Mean ± std over the common seeds of ``row``'s avg accuracy minus ``ref``'s.

    The seed fixes the permutations and the initialisation, so a per-seed difference removes
    the task-difficulty part of the seed spread that all strategies share.
    """
    if ref is None or ref is row:
        return math.nan, math.nan
    common = sorted(set(row["avg_acc_seed"]) & set(ref["avg_acc_seed"]))
    return mean_std([row["avg_acc_seed"][s] - ref["avg_acc_seed"][s] for s in common])


def sweep_table(rows: list[dict], root: Path) -> list[str]:
    refs = {
        "ewc": next((r for r in rows if r["strategy"] == "ewc"), None),
        "naive": next((r for r in rows if r["strategy"] == "naive"), None),
        "hat": next(
            (
                r
                for r in rows
                if r["strategy"] == "hat" and r["params"]["mask_sparsity_reg_factor"] == 0.75
            ),
            None,
        ),
    }
    lines = [
        "| strategy / setting | seeds | avg accuracy | BWT | forgetting | accuracy when learnt "
        "| Δ avg acc vs EWC (paired) | Δ vs HAT reg=0.75 (paired) | Δ vs Naive (paired) "
        "| train s / seed | folder |",
        "| --- | ---: | --- | --- | --- | --- | --- | --- | --- | ---: | --- |",
    ]
    for r in sorted(rows, key=lambda r: -r["avg_acc"][0]):
        lines.append(
            f"| {label(r)} | {len(r['seeds'])} | {fmt(r['avg_acc'])} | {fmt(r['bwt'])} | "
            f"{fmt(r['forgetting'])} | {fmt(r['learnt'])} | {fmt(paired(r, refs['ewc']))} | "
            f"{fmt(paired(r, refs['hat']))} | {fmt(paired(r, refs['naive']))} | "
            f"{r['train_s'][0]:.0f} | "
            f"`{rel(r['folder'], root)}` |"
        )
    return lines


def digits_table(rows: list[dict], root: Path, detail: set[str]) -> list[str]:
    """Task B: one summary row per folder, full tables for the folders named in ``detail``."""
    groups: dict[Path, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["folder"], []).append(r)

    def key(item):
        c = item[1][0]["config"]
        return (c["benchmark"], c["optimizer"], c["lr"], c["epochs"], -c["batch_size"])

    names = ["adahat", "hat", "naive", "ewc", "si", "lwf", "mas"]
    lines = [
        "Criterion: every diagonal entry A[j][j] > 0.8 for every strategy and seed, and HAT's "
        "average accuracy ≥ Naive's. Cells: the smallest A[j][j] over tasks and seeds (bold where "
        "≤ 0.8). Steps/task: optimizer steps per task (training images per task / batch × "
        "epochs).",
        "",
        "| benchmark | optimizer | lr | batch | epochs | steps/task | "
        + " | ".join(f"min A[j][j] {n}" for n in names)
        + " | HAT avg − Naive avg | pass | folder |",
        "| --- | --- | ---: | ---: | ---: | ---: | "
        + " | ".join("---:" for _ in names)
        + " | ---: | --- | --- |",
    ]
    details = []
    for folder, group in sorted(groups.items(), key=key):
        c = group[0]["config"]
        by_name = {r["strategy"]: r for r in group}
        cells = []
        for n in names:
            if n in by_name:
                m = by_name[n]["min_diag"]
                cells.append(f"**{m:.3f}**" if m <= 0.8 else f"{m:.3f}")
            else:
                cells.append("–")
        complete = all(n in by_name for n in names)
        ok_diag = all(r["min_diag"] > 0.8 for r in group)
        gap = math.nan
        if "hat" in by_name and "naive" in by_name:
            gap = by_name["hat"]["avg_acc"][0] - by_name["naive"]["avg_acc"][0]
        ok = complete and ok_diag and gap >= 0
        n_tasks = c.get("n_experiences") or 5
        per_task = DIGITS_TRAIN / n_tasks if c["benchmark"] == "split_digits" else DIGITS_TRAIN
        steps = f"≈{math.ceil(per_task / c['batch_size']) * c['epochs']}"
        lines.append(
            f"| {c['benchmark']} | {c['optimizer']} | {c['lr']:g} | {c['batch_size']} | {c['epochs']} | "
            f"{steps} | " + " | ".join(cells) + f" | {gap:+.4f} | "
            f"{'**yes**' if ok else ('no' if complete else 'probe')} | `{rel(folder, root)}` |"
        )
        if folder.name in detail:
            details += [
                f"**{c['benchmark']}**, {c['optimizer']} lr {c['lr']:g}, batch {c['batch_size']}, "
                f"{c['epochs']} epochs/task, seeds {','.join(map(str, group[0]['seeds']))} "
                f"(`{rel(folder, root)}`, wall {group[0]['wall_s']:.0f} s):",
                "",
                "| strategy | avg accuracy | BWT | forgetting | accuracy when learnt | min A[j][j] |",
                "| --- | --- | --- | --- | --- | ---: |",
            ]
            for r in group:
                details.append(
                    f"| {label(r)} | {fmt(r['avg_acc'])} | {fmt(r['bwt'])} | {fmt(r['forgetting'])} | "
                    f"{fmt(r['learnt'])} | {r['min_diag']:.3f} |"
                )
            details += ["", "```", group[0]["command"], "```", ""]
    return lines + [""] + details


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("avg_acc", "average accuracy"), ("bwt", "BWT"), ("learnt", "accuracy when learnt")]
    lines: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        if r["strategy"] == "adahat":
            key = (r["params"]["protect"], r["params"]["mask_sparsity_reg_factor"])
            if r["params"].get("epsilon", 0.1) == 0.1:
                lines.setdefault(key, []).append(r)
    refs = [r for r in rows if r["strategy"] in ("hat", "ewc", "naive")]
    styles = {"hat": "--", "ewc": ":", "naive": "-."}
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.5))
    for ax, (key, title) in zip(axes, metrics):
        for (protect, reg), group in sorted(lines.items()):
            group = sorted(group, key=lambda r: r["params"]["adjustment_intensity"])
            xs = [r["params"]["adjustment_intensity"] for r in group]
            ax.errorbar(
                xs,
                [r[key][0] for r in group],
                yerr=[r[key][1] for r in group],
                marker="o",
                capsize=3,
                label=f"AdaHAT protect={protect}, reg={reg:g}",
            )
        for i, r in enumerate(refs):
            m, s = r[key]
            colour = f"C{len(lines) + i}"
            ax.axhline(m, color=colour, linestyle=styles[r["strategy"]], label=label(r))
            ax.axhspan(m - s, m + s, color=colour, alpha=0.08)
        ax.set_xscale("log")
        ax.set_xlabel("adjustment_intensity α")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8)
    fig.suptitle(
        "Permuted Fashion-MNIST, 20 tasks, MLP, Adam 1e-3, 1 epoch/task: mean ± std over seeds"
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    parser.add_argument(
        "--studies", default="docs/results/study_*", help="glob of study folders (under --root)"
    )
    parser.add_argument(
        "--baselines",
        nargs="*",
        default=["docs/results/permuted_fmnist_20_all"],
        help="reference compare folders (under --root)",
    )
    parser.add_argument(
        "--baseline-strategies",
        default="adahat,hat,naive,ewc,si,lwf",
        help="strategies of the reference folders to show",
    )
    parser.add_argument(
        "--digits",
        default="docs/results/study_digits/*",
        help="glob of the digits (Task B) compare folders (under --root)",
    )
    parser.add_argument(
        "--digits-detail",
        default="pd_e10_b16_lr3,sd_e10_b16_lr3",  # the multi-seed runs the page discusses
        help="comma-separated names of digits folders to show in full",
    )
    parser.add_argument("--preamble", type=Path, help="Markdown inserted under the title")
    parser.add_argument("--notes", type=Path, help="Markdown inserted after the tables")
    parser.add_argument("--output", type=Path, default=Path("docs/ADAHAT_STUDY.md"))
    parser.add_argument("--plot", type=Path, default=Path("docs/results/study_alpha.png"))
    args = parser.parse_args(argv)
    root = args.root
    keep = set(args.baseline_strategies.split(","))
    study_dirs = sorted(p for p in root.glob(args.studies) if (p / "results.json").is_file())
    rows: list[dict] = []
    for folder in [root / b for b in args.baselines]:
        rows += [r for r in load(folder) if r["strategy"] in keep]
    for folder in study_dirs:
        rows += load(folder)
    digit_dirs = sorted(p for p in root.glob(args.digits) if (p / "results.json").is_file())
    for folder in digit_dirs:
        rows += load(folder)
    sweep = [r for r in rows if in_sweep_setting(r["config"])]
    digits = [r for r in rows if r["config"]["benchmark"] in ("split_digits", "permuted_digits")]
    other = [r for r in rows if r not in sweep and r not in digits]
    plot(sweep, root / args.plot)

    out: list[str] = [
        "# AdaHAT study: adjustment intensity, protect mode and sparsity regulariser",
        "",
    ]
    if args.preamble:
        out += [(root / args.preamble).read_text().rstrip(), ""]
    out += [
        "Generated by `.venv/bin/python benchmarks/adahat_study.py"
        + (f" --preamble {args.preamble}" if args.preamble else "")
        + (f" --notes {args.notes}" if args.notes else "")
        + "` from the `compare` folders listed below; edit the notes file, not this page.",
        "",
        "## A. Permuted Fashion-MNIST, 20 tasks",
        "",
        "MLP 784-256-100-64 (`mlp`), Adam lr 1e-3, batch 128, 1 epoch/task, full training sets, "
        "2,000 test images per task (`--test-per-task 2000`), one CPU thread. "
        "*Accuracy when learnt* is the mean of the diagonal A[j][j] of the accuracy matrix "
        "(accuracy on task j right after training it): the plasticity measure. Mean ± sample std "
        "over seeds, sorted by average accuracy. The rows from `permuted_fmnist_20_all` are the "
        "published baselines (library defaults: AdaHAT protect=gradient α=1e-6 reg=0.1, "
        "HAT reg=0.75).",
        "",
        *sweep_table(sweep, root),
        "",
        f"![alpha sweep]({rel(root / args.plot, (root / args.output).parent)})",
        "",
    ]
    if other:
        out += ["## Other settings", "", *sweep_table(other, root), ""]
    if digits:
        out += [
            "## B. Offline digits benchmarks (scikit-learn 8x8 digits)",
            "",
            *digits_table(digits, root, set(args.digits_detail.split(","))),
        ]
    if args.notes:
        out += [(root / args.notes).read_text().rstrip(), ""]
    out += ["## Commands", "", "Every folder's command (from its `results.json`):", "", "```"]
    seen: set[str] = set()
    for r in rows:  # a merged folder's command holds one line per part and the merge
        for cmd in r["command"].splitlines():
            if cmd.strip() and cmd not in seen:
                seen.add(cmd)
                out.append(cmd)
    out += ["```", ""]
    (root / args.output).parent.mkdir(parents=True, exist_ok=True)
    (root / args.output).write_text("\n".join(out))
    print(f"wrote {root / args.output} and {root / args.plot} ({len(study_dirs)} study folders)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
