"""Writing ``compare`` results: results.json/csv/md and plots of a run, and the report command."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .. import plots
from .config import CompareConfig, strategy_params
from .errors import CompareError

__all__ = ["results_markdown", "write_outputs", "write_plots", "write_report"]


def write_outputs(results: dict, out_dir: Path) -> None:
    """``results.json``, ``results.csv``, ``results.md`` and the plots, into ``out_dir``."""
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _write_csv(results, out_dir / "results.csv")
    (out_dir / "results.md").write_text(results_markdown(results))
    write_plots(results, out_dir)


def _has_task_id(results: dict) -> bool:
    """Whether some strategy recorded task-id accuracy (class scenario, HAT family)."""
    return any(s.get("task_id_acc") is not None for s in results["strategies"].values())


def _has_key(results: dict, key: str) -> bool:
    """Whether the runs recorded ``key`` (``eval_seconds``, ``memory_bytes``: absent in
    older results)."""
    return any(key in r for s in results["strategies"].values() for r in s["per_seed"].values())


def _bytes(value) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _seconds(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def _write_csv(results: dict, path: Path) -> None:
    fields = ["strategy", "seed", "avg_acc", "bwt", "forgetting", "capacity", "train_seconds"]
    if _has_task_id(results):
        fields.append("task_id_acc")
    fields += [k for k in ("eval_seconds", "memory_bytes") if _has_key(results, k)]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for name, s in results["strategies"].items():
            for seed, r in s["per_seed"].items():
                writer.writerow([name, seed, *(_csv(r.get(k)) for k in fields[2:])])
            writer.writerow([name, "mean", *(_csv(s.get(k)) for k in fields[2:])])
            one = len(s["per_seed"]) < 2  # no spread from one seed: empty, not 0
            writer.writerow(
                [name, "std", *("" if one else _csv(s.get(f"{k}_std")) for k in fields[2:])]
            )


def _csv(value) -> str:
    return "" if value is None else f"{value:.6g}"


def _pm(mean, std, digits: int = 4) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"


def results_markdown(results: dict, heading: str = "##") -> str:
    """One section: the exact command, the settings, the table and the capacity curve."""
    c = results["config"]
    n = len(next(iter(results["strategies"].values()))["acc_matrix"])
    task_id = _has_task_id(results)
    cost = _has_key(results, "eval_seconds") and _has_key(results, "memory_bytes")
    scenario = " (class-incremental)" if c.get("scenario", "task") == "class" else ""
    lines = [
        f"{heading} {c['benchmark']}{scenario}, {n} tasks, {c['epochs']} epoch(s)/task, seeds "
        f"{','.join(map(str, c['seeds']))}: {', '.join(results['strategies'])}",
        "",
        "```",
        c.get("command") or "(command not recorded)",
        "```",
        "",
        f"Model `{c['model']}`{' ' + json.dumps(c['model_params']) if c['model_params'] else ''}, "
        f"{c['optimizer']} lr {c['lr']}, batch {c['batch_size']}, {c['epochs']} epoch(s)/task"
        + (f", {c['train_per_task']} training samples/task" if c["train_per_task"] else "")
        + (f", {c['test_per_task']} test samples/task" if c["test_per_task"] else "")
        + f"; wall time {results['wall_seconds']:.0f} s; "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items())
        + "."
        + _data_loading_note(results),
        "",
        "| strategy | seeds | avg accuracy | BWT | forgetting | capacity (end) | train s / seed |"
        + (" task-id acc |" if task_id else "")
        + (" eval s / seed | memory (bytes) |" if cost else ""),
        "| --- | ---: | --- | --- | --- | --- | --- |"
        + (" --- |" if task_id else "")
        + (" --- | ---: |" if cost else ""),
    ]
    for name, s in results["strategies"].items():
        lines.append(
            f"| {name} | {len(s['per_seed'])} | {_pm(s['avg_acc'], s['avg_acc_std'])} "
            f"| {_pm(s['bwt'], s['bwt_std'])} "
            f"| {_pm(s['forgetting'], s['forgetting_std'])} "
            f"| {_pm(s['capacity'], s['capacity_std'], 3)} | {s['train_seconds']:.1f} |"
            + (f" {_pm(s.get('task_id_acc'), s.get('task_id_acc_std'))} |" if task_id else "")
            + (
                f" {_seconds(s.get('eval_seconds'))} | {_bytes(s.get('memory_bytes'))} |"
                if cost
                else ""
            )
        )
    settings = CompareConfig.from_dict(c)
    params = {name: strategy_params(settings, name) for name in settings.strategies}
    params = {k: v for k, v in params.items() if v}
    seeds = max(len(s["per_seed"]) for s in results["strategies"].values())
    spread = f"Mean ± sample std over {seeds} seeds." if seeds > 1 else "One seed: no spread."
    chosen = "; ".join(f"{k} {json.dumps(v)}" for k, v in params.items())
    lines += ["", spread + (f" Hyperparameters: {chosen}." if chosen
                            else " Hyperparameters: the strategies' defaults.")]  # fmt: skip
    if cost:
        lines += ["", "eval s: all evaluations of a run (after each experience, on the test "
                  "experiences seen). memory: what a strategy keeps about past data besides "
                  "its network, at the end: stored samples (replay buffers, A-GEM's, iCaRL's "
                  "exemplars, Cumulative's whole data) at their size in the benchmark (uint8 "
                  "images: a byte a pixel), iCaRL's class means, StreamingLDA's class means "
                  "and covariance, the HAT task router's statistics; parameter copies (EWC, "
                  "SI, LwF) not counted; – where not measured."]  # fmt: skip
    if scenario:
        lines += ["", "Class-incremental: no task labels; the HAT family trains one task per "
                  "experience and infers each test sample's task (rule: its task_inference, "
                  "default: the library's); task-id acc is TaskIdAcc_Stream after the last "
                  "experience. streaming_lda: Avalanche's StreamingLDA on raw inputs. "
                  "The other strategies train an MLP of the same hidden sizes with one "
                  "Linear head over all classes."
                  + _class_order_note(results)]  # fmt: skip
    curves = _capacity_curves(results)
    if curves:
        tasks = max(len(v) for v in curves.values())
        shown = [k for k in range(tasks) if k < 10 or (k + 1) % 10 == 0 or k == tasks - 1]
        lines += [
            "",
            "Network capacity at the first training step of each task (tasks numbered from 0, "
            "as in the accuracy matrices; mean over seeds):",
            "",
            "| strategy | " + " | ".join(f"task {k}" for k in shown) + " |",
            "| --- |" + " --- |" * len(shown),
        ]
        for name, curve in curves.items():
            cells = [f"{curve[k]:.3f}" if k < len(curve) else "" for k in shown]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def _class_order_note(results: dict) -> str:
    """How classes were ordered into experiences (``--class-order``; absent in older results)."""
    mode = results["config"].get("class_order")
    if mode is None:
        return ""
    if mode == "natural":
        return " Classes in their natural order."
    if mode == "seed":
        return " Classes in Avalanche's random order drawn with each run's seed (in results.json)."
    orders = {
        tuple(r.get("class_order") or ())
        for s in results["strategies"].values()
        for r in s["per_seed"].values()
    }
    shown = f": {list(next(iter(orders)))}" if len(orders) == 1 and () not in orders else ""
    return f" Classes in Avalanche's random order for seed {mode}{shown}."


def _capacity_curves(results: dict) -> dict[str, list[float]]:
    """``capacity_start`` of the strategies that record it (the HAT family)."""
    return {
        name: s["capacity_start"]
        for name, s in results["strategies"].items()
        if s.get("capacity_start")
    }


def _data_loading_note(results: dict) -> str:
    """How the experiences were fed (``data_loading`` of each run; absent in older results)."""
    counts = [
        r.get("data_loading", "absent")
        for s in results["strategies"].values()
        for r in s["per_seed"].values()
    ]
    if any(c == "absent" for c in counts):
        return ""
    if all(c is None for c in counts):
        return " Data: Avalanche's own per-sample loaders (`--no-fast-data`)."
    tensor = sum(c["tensor"] for c in counts if c)
    avalanche = sum(c["avalanche"] for c in counts if c)
    note = (
        f" Data: {tensor} of {tensor + avalanche} training/evaluation experiences (all runs) "
        "fed from whole-tensor batches checked equal to Avalanche's datasets"
    )
    if avalanche:
        by = sorted(
            name
            for name, s in results["strategies"].items()
            if any(
                r["data_loading"] and r["data_loading"]["avalanche"] for r in s["per_seed"].values()
            )
        )
        note += f", the rest by Avalanche's own loaders ({', '.join(by)})"
    return note + "."


#: Up to this many tasks an accuracy matrix is drawn with its values written in the cells.
ANNOTATED_TASKS = 12


def _setting(results: dict) -> str:
    """``split_digits, task-incremental\n5 tasks, 10 epoch(s)/task`` for titles."""
    c = results["config"]
    n = len(next(iter(results["strategies"].values()))["acc_matrix"])
    scenario = c.get("scenario", "task")
    return f"{c['benchmark']}, {scenario}-incremental\n{n} tasks, {c['epochs']} epoch(s)/task"


def write_plots(results: dict, out_dir: Path) -> None:
    """accuracy.png (mean, seeds and spread per strategy), acc_matrix_<name>.png,
    capacity.png (HAT family); titles name the benchmark, scenario and schedule, and
    tasks are numbered from 0 everywhere."""
    strategies = results["strategies"]
    setting = _setting(results)
    seeds = {name: [r["avg_acc"] for r in s["per_seed"].values()] for name, s in strategies.items()}
    n = max(len(v) for v in seeds.values())
    spread = f"mean ± std over {n} seeds" if n > 1 else "one seed"
    flat = setting.replace("\n", ", ")
    plots.plot_accuracy_bars(
        {name: s["avg_acc"] for name, s in strategies.items()},
        out_dir / "accuracy.png",
        {
            name: s["avg_acc_std"] if len(seeds[name]) > 1 else None
            for name, s in strategies.items()
        },
        seeds=seeds,
        title=f"{setting}; {spread}",
    )
    for name, s in strategies.items():
        matrix, path = s["acc_matrix"], out_dir / f"acc_matrix_{name}.png"
        if len(matrix) <= ANNOTATED_TASKS:
            plots.plot_accuracy_matrix(matrix, path, title=f"{name}: {setting}")
        else:
            plots.plot_accuracy_heatmap(matrix, path, title=f"{name}: {flat}")
    curves = _capacity_curves(results)
    if curves:
        plots.plot_task_capacity(curves, out_dir / "capacity.png", title=setting)


def write_report(result_dirs: list[str], output: str, preamble: str | None = None) -> None:
    """Assemble ``docs/RESULTS.md``: a preamble, then each run's ``results.md`` and notes."""
    parts = []
    if preamble:
        parts.append(Path(preamble).read_text().rstrip() + "\n")
    out = Path(output)
    for name in result_dirs:
        d = Path(name)
        if not (d / "results.json").is_file():
            raise CompareError(f"{d} has no results.json (run compare with --output {d} first)")
        results = json.loads((d / "results.json").read_text())
        section = results_markdown(results)
        rel = os.path.relpath(d, out.parent)
        images = [p.name for p in sorted(d.glob("*.png"))]
        show = [p for p in ("accuracy.png", "capacity.png") if p in images]
        section += "\n" + "".join(f"![{p}]({rel}/{p})\n" for p in show)
        section += f"\nAll files of this run: `{rel}/` ({', '.join(images)}).\n"
        notes = d / "NOTES.md"
        if notes.is_file():
            section += "\n" + notes.read_text().rstrip() + "\n"
        parts.append(section)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
