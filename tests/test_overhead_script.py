"""The overhead benchmark script runs and reports every row (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "overhead.py"


def test_overhead_script_smoke(tmp_path):
    out = tmp_path / "overhead.json"
    cmd = [
        sys.executable, str(SCRIPT), "--models", "mlp_small", "--iters", "2", "--warmup", "1",
        "--adjust-reps", "2", "--no-memory", "--output", str(out),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in ("Naive", "Naive+plugin", "HAT", "AdaHAT"):
        assert f"| mlp_small | 233,254 | {name} |" in run.stdout
    results = json.loads(out.read_text())
    (model,) = results["results"]
    assert set(model["timing"]) == {"Naive", "Naive+plugin", "HAT", "AdaHAT"}
    assert all(row["train_ratio"] > 0 and row["eval_ratio"] > 0 for row in model["timing"].values())
    assert {a["mode"] for a in model["adjustment"]} == {"hat", "adahat"}
    ops = model["ops_per_iteration"]
    assert ops["Naive"] == ops["Naive+plugin"] < ops["HAT"] <= ops["AdaHAT"]
    # the plugin's per-task state is unit-sized: far below the parameters' bytes
    persistent = model["persistent"]
    assert persistent["extra_bytes"] < 0.05 * persistent["param_bytes"]


def test_overhead_script_memory_is_the_median_of_repeated_children(tmp_path):
    out = tmp_path / "overhead.json"
    cmd = [
        sys.executable, str(SCRIPT), "--models", "mlp_small", "--iters", "1", "--warmup", "1",
        "--no-adjust", "--memory-iters", "1", "--memory-repeats", "3", "--output", str(out),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(out.read_text())
    readings = results["meta"]["memory_readings"]["mlp_small"]
    assert set(readings) == {"Naive", "Naive+plugin", "HAT", "AdaHAT"}
    for name, values in readings.items():
        assert len(values) == 3
        if None not in values:  # peak RSS is not measurable without /proc/self/clear_refs
            assert results["memory"]["mlp_small"][name] == sorted(values)[1]
