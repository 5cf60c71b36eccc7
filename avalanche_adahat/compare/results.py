"""Numbers of ``compare`` results: matrix metrics, the summary over seeds, merging runs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, cast

from .config import CompareConfig, strategy_params
from .errors import CompareError
from .report import write_outputs

__all__ = ["MERGE_KEYS", "matrix_metrics", "merge_results", "summarize"]


def matrix_metrics(matrix: list[list[float | None]]) -> dict[str, float | None]:
    """``avg_acc``, ``bwt`` and ``forgetting`` of an ``N x N`` accuracy matrix (package docstring);
    it reads the entries on and below the diagonal, which are never ``None``."""
    n = len(matrix)
    m = cast(list[list[float]], matrix)
    last = m[-1]
    avg = sum(last) / n
    if n == 1:
        return {"avg_acc": avg, "bwt": None, "forgetting": None}
    bwt = sum(last[j] - m[j][j] for j in range(n - 1)) / (n - 1)
    forgetting = sum(max(m[i][j] for i in range(j, n - 1)) - last[j] for j in range(n - 1)) / (
        n - 1
    )
    return {"avg_acc": avg, "bwt": bwt, "forgetting": forgetting}


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return mean, std


def _mean_curve(curves: list[list[float] | None]):
    present = [c for c in curves if c]
    if not present:
        return None
    length = min(len(c) for c in present)
    return [sum(c[k] for c in present) / len(present) for k in range(length)]


def _mean_matrix(matrices):
    n = len(matrices[0])
    return [
        [
            None if matrices[0][i][j] is None else sum(m[i][j] for m in matrices) / len(matrices)
            for j in range(n)
        ]
        for i in range(n)
    ]


def summarize(per_seed: dict[int, dict]) -> dict:
    """The strategy-level entry of ``results.json``: means over seeds (and ``*_std``)."""
    runs = list(per_seed.values())
    out: dict[str, Any] = {}
    for key in ("avg_acc", "bwt", "forgetting", "capacity", "train_seconds"):
        out[key], out[f"{key}_std"] = _mean_std([r[key] for r in runs])
    # evaluation time and the memory kept about past data (absent in older results)
    for key in ("eval_seconds", "final_eval_seconds", "memory_bytes"):
        out[key], out[f"{key}_std"] = _mean_std([r.get(key) for r in runs])
    # task-id accuracy: class scenario, HAT family (absent in older results)
    out["task_id_acc"], out["task_id_acc_std"] = _mean_std([r.get("task_id_acc") for r in runs])
    out["acc_matrix"] = _mean_matrix([r["acc_matrix"] for r in runs])
    out["capacity_start"] = _mean_curve([r["capacity_start"] for r in runs])
    out["capacity_end"] = _mean_curve([r["capacity_end"] for r in runs])
    out["per_seed"] = {str(seed): r for seed, r in per_seed.items()}
    return out


#: Configuration keys that runs must share to be merged: everything that changes results.
MERGE_KEYS = (
    "benchmark", "scenario", "class_order", "n_experiences", "model", "model_params", "epochs",
    "batch_size", "eval_batch_size", "optimizer", "lr", "device", "train_per_task",
    "test_per_task", "fast_data",
)  # fmt: skip


def _read_parts(result_dirs: list[str]) -> list[tuple[str, dict]]:
    if len(result_dirs) < 2:
        raise CompareError("merge needs at least two compare output folders")
    parts = []
    for d in result_dirs:
        path = Path(d) / "results.json"
        if not path.is_file():
            raise CompareError(f"{d} has no results.json (a compare --output folder)")
        parts.append((d, json.loads(path.read_text())))
    return parts


def _check_same_setting(d: str, res: dict, first_dir: str, first: dict) -> None:
    """Raise unless ``res`` ran the setting of ``first`` (a setting missing in results older
    than its option counts as :data:`~.config.OLD_DEFAULTS`, see :meth:`CompareConfig.from_dict`)."""
    c, f = CompareConfig.from_dict(res["config"]), CompareConfig.from_dict(first["config"])
    for key in MERGE_KEYS:
        mine, theirs = getattr(c, key), getattr(f, key)
        if mine != theirs:
            raise CompareError(
                f"{d} differs from {first_dir} in {key}: {mine!r} vs "
                f"{theirs!r}; only runs of one setting can be merged"
            )
    if res["versions"] != first["versions"]:
        raise CompareError(f"{d} ran with {res['versions']}, {first_dir} with {first['versions']}")


def merge_results(result_dirs: list[str], output: str, command: str | None = None) -> dict:
    """Merge ``compare`` outputs of one setting run in parts (other seeds, other
    strategies, other machines) into one: per-seed results side by side, means
    and spreads recomputed, every part's command kept. Writes ``output``'s files.

    Raises :class:`CompareError` when a setting differs (see :data:`MERGE_KEYS`),
    a strategy's hyperparameters differ, or a (strategy, seed) appears twice.
    """
    parts = _read_parts(result_dirs)
    first_dir, first = parts[0]
    config = json.loads(json.dumps(first["config"]))
    per_seed: dict[str, dict[int, dict]] = {}
    origin: dict[tuple[str, int], str] = {}
    commands = []
    for d, res in parts:
        _check_same_setting(d, res, first_dir, first)
        c = res["config"]
        for name, summary in res["strategies"].items():
            params = strategy_params(CompareConfig.from_dict(c), name)
            earlier = strategy_params(CompareConfig.from_dict(config), name)
            if name in per_seed and params != earlier:
                raise CompareError(
                    f"{name} has other hyperparameters in {d} ({json.dumps(params)}) than in "
                    f"an earlier folder ({json.dumps(earlier)})"
                )
            if name not in per_seed:
                per_seed[name] = {}
                config["params"][name] = c["params"].get(name, {})
            for seed, run in summary["per_seed"].items():
                seed = int(seed)
                if seed in per_seed[name]:
                    raise CompareError(
                        f"{name} seed {seed} is in both {origin[name, seed]} and {d}"
                    )
                per_seed[name][seed], origin[name, seed] = run, d
        commands.append(c.get("command") or f"(command of {d} not recorded)")
    if command:
        commands.append(command)
    config.update(
        strategies=list(per_seed),
        seeds=sorted({seed for runs in per_seed.values() for seed in runs}),
        output=output,
        command="\n".join(commands),
        merged_from=[str(d) for d, _ in parts],
    )
    results = {
        "config": config,
        "versions": first["versions"],
        "wall_seconds": sum(res["wall_seconds"] for _, res in parts),
        "strategies": {
            name: summarize(dict(sorted(runs.items()))) for name, runs in per_seed.items()
        },
    }
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_outputs(results, out_dir)
    return results
