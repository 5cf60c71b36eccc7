"""compare records the commit of the code it ran (results.json's versions)."""

import re
import subprocess
from pathlib import Path

from avalanche_adahat.compare import run

ROOT = Path(run.__file__).resolve().parents[2]


def test_versions_record_the_commit_and_whether_the_package_was_dirty():
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    commit = run.versions()["avalanche_adahat_commit"]
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", commit) and commit.startswith(head)


def test_no_commit_outside_a_checkout_of_the_package(tmp_path, monkeypatch):
    copy = tmp_path / "site" / "avalanche_adahat" / "compare"
    copy.mkdir(parents=True)
    monkeypatch.setattr(run, "__file__", str(copy / "run.py"))
    assert run.source_commit() is None
