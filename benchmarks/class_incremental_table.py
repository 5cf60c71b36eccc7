"""The class-incremental results table: one row per (setting, strategy) of ``compare`` folders.

Reads each folder's ``results.json`` (written by ``avalanche-adahat compare --scenario class``)
and prints a Markdown table: the setting (benchmark, backbone, class order), the strategy, its
seeds, final average accuracy and task-id accuracy (mean ± sample std over seeds), forgetting,
what it keeps about past data (stored samples, memory in bytes) and the commit the run used.
Nothing is trained here::

    .venv/bin/python benchmarks/class_incremental_table.py docs/results/class_incremental/*/
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def mean_std(values: list[float]) -> str:
    """``mean ± std`` (sample std) with 3 decimals; the mean alone for one value."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def setting(config: dict) -> str:
    """``benchmark, backbone, class order`` of a compare config."""
    model = config["model"]
    sizes = (config.get("model_params") or {}).get("hidden_sizes")
    if model == "mlp" and sizes:
        model = "MLP " + "-".join(str(s) for s in sizes)
    return f"{config['benchmark']}, {model}, order {config.get('class_order', 'natural')}"


def rows(folder: Path) -> list[dict]:
    """One row per strategy of a compare folder, values per seed."""
    data = json.loads((folder / "results.json").read_text())
    commit = data["versions"].get("avalanche_adahat_commit")
    if commit is None and (folder / "COMMIT").exists():  # runs from before compare recorded it
        commit = (folder / "COMMIT").read_text().strip()
    out = []
    for name, result in data["strategies"].items():
        runs = [result["per_seed"][k] for k in sorted(result["per_seed"], key=int)]
        out.append(
            {
                "setting": setting(data["config"]),
                "strategy": name,
                "params": data["config"]["params"].get(name) or {},
                "seeds": [r["seed"] for r in runs],
                "acc": [r["avg_acc"] for r in runs],
                "task_id_acc": [r.get("task_id_acc") for r in runs],
                "forgetting": [r["forgetting"] for r in runs],
                "stored": [r.get("stored_samples") for r in runs],
                "memory": [r.get("memory_bytes") for r in runs],
                "commit": commit or "?",
                "folder": folder.name,
            }
        )
    return out


def table(all_rows: list[dict]) -> str:
    lines = [
        "| setting | strategy | seeds | final accuracy | task-id accuracy | forgetting "
        "| stored samples | memory (bytes) | commit | folder |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in all_rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        name = f"`{r['strategy']}`" + (f" ({params})" if params else "")
        stored = {s for s in r["stored"] if s is not None}
        memory = [m for m in r["memory"] if m is not None]
        lines.append(
            f"| {r['setting']} | {name} | {','.join(map(str, r['seeds']))} | {mean_std(r['acc'])} "
            f"| {mean_std(r['task_id_acc'])} | {mean_std(r['forgetting'])} "
            f"| {'/'.join(str(s) for s in sorted(stored)) or '–'} "
            f"| {f'{round(statistics.fmean(memory)):,}' if memory else '–'} "
            f"| {r['commit']} | {r['folder']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print(table([row for folder in args.folders for row in rows(folder)]), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
