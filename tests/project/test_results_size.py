"""The tracked results stay small, and every results folder a file names exists.

Superseded runs are deleted (git keeps them); a folder that a command in the same file writes
(``--output``/``-o``, e.g. the parts of a merged run, listed with the merge that reads them)
may be absent: the file says how to make it.
"""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 5_000_000  # bytes of json, csv, png and md under docs/
NAME = re.compile(r"docs/results/([A-Za-z0-9_.-]+)(?![A-Za-z0-9_.*?\[{<$-])")
MADE = re.compile(r"(?:--output|-o)\s+['\"]?docs/results/([A-Za-z0-9_.-]+)")


def tracked(*patterns: str) -> list[Path]:
    """The files git tracks that match ``patterns`` (skips outside a git checkout)."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--", *patterns],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / p for p in done.stdout.split("\0") if p]


def test_tracked_docs_data_under_limit():
    files = [
        p for p in tracked("docs") if p.suffix in {".json", ".csv", ".png", ".md"} and p.is_file()
    ]
    total = sum(p.stat().st_size for p in files)
    biggest = sorted(files, key=lambda p: p.stat().st_size)[-3:]
    assert total < LIMIT, f"{total:,} bytes; the largest: {[str(p) for p in biggest]}"


def test_named_results_folders_exist():
    missing = []
    for path in tracked("*.md", "*.py", "*.sh"):
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        written = {m.rstrip(".") for m in MADE.findall(text)}
        for name in {m.rstrip(".") for m in NAME.findall(text)}:
            if name and name not in written and not (ROOT / "docs" / "results" / name).exists():
                missing.append(f"{path.relative_to(ROOT)}: docs/results/{name}")
    assert not missing, missing
