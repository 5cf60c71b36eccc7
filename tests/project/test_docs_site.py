"""The documentation site builds with every warning an error (as `make docs` does) and
its API reference shows the docstrings, their Sphinx roles as code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_site_builds_strictly_with_the_api_reference(tmp_path):
    pytest.importorskip("mkdocstrings_handlers.python", reason="make docs installs mkdocs")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "api" / "index.html").read_text()
    for name in ("HATPlugin", "AdaHATConfig", "convert_to_hat", "HATMLP", "plot_capacity"):
        assert name in api
    assert ":class:" not in api and ":func:" not in api
    home = (tmp_path / "index.html").read_text()
    assert "pip install" in home and "RESULTS/" in home
    for page in ("ALGORITHM", "RESULTS"):
        assert (tmp_path / page / "index.html").is_file()
