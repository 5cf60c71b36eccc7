"""The command line a new user meets first: ``--help`` at once, no import noise, a
report written next to its inputs, a demo that evaluates only what it trained."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from avalanche_adahat.__main__ import main

HELP_IMPORTS = """
import sys
import avalanche_adahat.__main__ as cli
assert cli.main(["--help"]) == 0
heavy = sorted({k.split(".")[0] for k in sys.modules} & {"torch", "avalanche", "numpy"})
print("HEAVY", heavy)
"""


def test_help_imports_neither_torch_nor_avalanche():
    done = subprocess.run(
        [sys.executable, "-c", HELP_IMPORTS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
    assert "usage: avalanche-adahat COMMAND" in done.stdout


def test_the_package_imports_its_names_when_first_used():
    import avalanche_adahat

    assert avalanche_adahat.HAT.__name__ == "HAT"
    assert avalanche_adahat.models.HATMLP.__name__ == "HATMLP"
    assert "AdaHATPlugin" in dir(avalanche_adahat)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        avalanche_adahat.nothing_here  # noqa: B018


NO_SOLVER = """
import os, sys
sys.modules["quadprog"] = None  # as on a machine without GEM's optional QP solver
from avalanche_adahat.__main__ import main
try:
    main(["report", "--help"])
except SystemExit as e:
    assert e.code == 0
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)  # skips the interpreter's teardown (seconds with torch loaded): not what is tested
"""


def test_commands_hide_the_qpsolvers_import_warning():
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", NO_SOLVER],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "avalanche-adahat report" in done.stdout
    assert "QP solver" not in done.stderr, done.stderr


def test_report_writes_next_to_its_inputs(tmp_path, monkeypatch, capsys):
    from test_compare import _synthetic_results

    from avalanche_adahat.compare import write_outputs

    for name in ("a", "b"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        write_outputs(_synthetic_results(3), tmp_path / "runs" / name)
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["report", "runs/a", "runs/b"]) == 0
    assert (tmp_path / "runs" / "RESULTS.md").is_file()
    assert not (tmp_path / "docs" / "RESULTS.md").exists()
    assert "wrote runs/RESULTS.md" in capsys.readouterr().out
    assert main(["report", "runs/a", "-o", "elsewhere/report.md"]) == 0
    assert (tmp_path / "elsewhere" / "report.md").is_file()
    from avalanche_adahat.compare.cli import default_report_path

    assert default_report_path(["runs/a"]) == "runs/RESULTS.md"
    assert default_report_path(["a", "b"]) == "RESULTS.md"
    assert default_report_path(["x/runs/a", "x/other/b"]) == "x/RESULTS.md"


def test_demo_evaluates_only_the_tasks_it_trained(monkeypatch):
    from avalanche_adahat import demo

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*never trained")
        results = demo.run_demo(seed=0, epochs=1)
    assert set(results) == {"AdaHAT", "HAT", "Naive"}
    assert all(0.0 <= r["avg_acc"] <= 1.0 for r in results.values())
