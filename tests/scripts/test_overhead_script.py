"""The overhead benchmark script runs and reports every row (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import overhead
import overhead_memory
import pytest
from overhead_cases import STRATEGIES

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "overhead.py"


def test_overhead_script_smoke(tmp_path):
    out = tmp_path / "overhead.json"
    cmd = [
        sys.executable, str(SCRIPT), "--models", "mlp_small", "--iters", "2", "--warmup", "1",
        "--adjust-reps", "2", "--no-memory", "--output", str(out),
        "--epoch-data", "blobs", "--epoch-tasks", "4", "--epoch-per-task", "128", "--no-compile",
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in ("Naive", "Naive+plugin", "HAT", "AdaHAT"):
        assert f"| mlp_small | 233,254 | {name} |" in run.stdout
    results = json.loads(out.read_text())
    (epochs,) = results["epochs"]  # the headline: whole epochs, tasks 3 and 4 timed
    assert epochs["model"] == "mlp_small" and epochs["timed_tasks"] == 2
    assert set(epochs["ratios"]) == {
        "Naive",
        "HAT",
        "AdaHAT",
        "AdaHAT (gradient)",
        "HAT (subnormals kept)",
    }
    assert (
        "Epoch time x Naive" in run.stdout and "| mlp_small | blobs | sgd | 128 | 2 |" in run.stdout
    )
    (model,) = results["results"]
    assert set(model["timing"]) == {"Naive", "Naive+plugin", "HAT", "AdaHAT"}
    assert all(row["train_ratio"] > 0 and row["eval_ratio"] > 0 for row in model["timing"].values())
    assert {a["mode"] for a in model["adjustment"]} == {"hat", "adahat"}
    ops = model["ops_per_iteration"]
    assert ops["Naive"] == ops["Naive+plugin"] < ops["HAT"] <= ops["AdaHAT"]
    # the plugin's per-task state is unit-sized: far below the parameters' bytes
    persistent = model["persistent"]
    assert persistent["extra_bytes"] < 0.05 * persistent["param_bytes"]


def test_overhead_script_memory_is_the_median_of_repeated_children(monkeypatch):
    """Peak memory is the median over --memory-repeats sets of child processes (the
    children themselves are stubbed: each set returns the next readings)."""
    args = overhead.parse_args(["--models", "mlp_small", "--memory-repeats", "3"])
    sets = iter([7, 3, 5])

    def one_set(a):
        value = next(sets)
        return {name: {"mlp_small": value * 100 + k} for k, name in enumerate(STRATEGIES)}

    monkeypatch.setattr(overhead_memory, "run_memory_children", one_set)
    medians, readings = overhead_memory.measure_memory(args)
    for k, name in enumerate(STRATEGIES):
        assert readings["mlp_small"][name] == [700 + k, 300 + k, 500 + k]
        assert medians["mlp_small"][name] == 500 + k


def test_task_inference_cost_script_reports_every_rule():
    script = SCRIPT.parent / "task_inference_cost.py"
    cmd = [sys.executable, str(script), "--tasks", "2", "--per-task", "64", "--repeats", "1",
           "--hidden", "8"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for row in (
        "| task label given (one mask) | 1 |",
        "| msp | 2 |",
        "| oneshot | 4 + 1 backward |",
    ):
        assert row in run.stdout


def test_step_breakdown_accounts_for_the_whole_epoch():
    """benchmarks/step_breakdown.py: the parts of every strategy's timed epochs add up to
    the epochs (the rest is what no counter covers, never negative beyond rounding)."""
    import step_breakdown

    result = step_breakdown.breakdown("mlp_small", "blobs", "sgd", ["Naive", "HAT"], 4, 128)
    assert set(result) == {"Naive", "HAT"}
    for parts in result.values():
        assert parts["epoch"] > 0 and parts["optimizer.step"] > 0 and parts["forward"] > 0
        total = sum(parts[p] for p in step_breakdown.PARTS[1:])
        assert abs(total - parts["epoch"]) < 1e-6
        assert parts["rest"] > -0.05
    assert result["HAT"]["hooks"] > 0 and result["Naive"].get("hooks", 0.0) == 0.0
    text = step_breakdown.table(result)
    assert "| HAT |" in text and "epoch x Naive" in text


def test_step_breakdown_runs_with_raised_malloc_thresholds(capsys):
    """--malloc-thresholds (glibc's mallopt through ctypes) then the table."""
    import platform

    import step_breakdown

    argv = ["--model", "mlp_small", "--data", "blobs", "--tasks", "3", "--per-task", "64"]
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's mallopt only")
    assert step_breakdown.main([*argv, "--strategies", "HAT", "--malloc-thresholds"]) == 0
    assert "| HAT |" in capsys.readouterr().out


def test_device_check_runs_its_guarantees_and_table_on_the_cpu(capsys):
    """benchmarks/device_check.py (prepared for a GPU session) on the CPU: HAT keeps every
    protected entry, the 'device' run equals the CPU run, the epoch table follows."""
    import device_check

    argv = ["--device", "cpu", "--models", "mlp_small", "--tasks", "3", "--per-task", "64"]
    assert device_check.main([*argv, "--optimizers", "sgd"]) == 0
    out = capsys.readouterr().out
    assert "| HAT | sgd | 0 | 0.00e+00 |" in out and "| AdaHAT | adam | - | 0.00e+00 |" in out
    assert "| mlp_small | blobs | sgd | 64 |" in out
