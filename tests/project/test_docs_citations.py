"""The package cites its own algorithm specification, docs/ALGORITHM.md, by section.

No tracked file outside tests/ may cite the old specification that lived outside the
repository, and every citation of docs/ALGORITHM.md must name a section that exists.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALGORITHM = ROOT / "docs" / "ALGORITHM.md"

#: Citations of the specification that was never part of the repository (spelled in
#: pieces so that this file does not match itself).
OLD_CITATIONS = ("../" + "shared", "SPEC" + " §")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".yaml", ".yml", ".rst"}
TEXT_NAMES = {"Makefile"}

_NUMBER = r"\d+(?:\.\d+)*"
#: ``ALGORITHM.md §3``, ``ALGORITHM.md §1-4``, ``ALGORITHM.md §6, §8`` (after an optional
#: closing backtick, bracket or parenthesis of a Markdown link or code span).
CITATION = re.compile(
    rf"ALGORITHM\.md[`)\]]*\s+(§\s*{_NUMBER}"
    rf"(?:\s*[-–]\s*§?\s*{_NUMBER}|\s*(?:,|and)\s*§\s*{_NUMBER})*)"
)
REFERENCE = re.compile(rf"({_NUMBER})(?:\s*[-–]\s*§?\s*({_NUMBER}))?")
HEADING = re.compile(rf"^#{{2,6}}\s+({_NUMBER})\.?\s")
INTERNAL = re.compile(rf"§\s*({_NUMBER}(?:\s*[-–]\s*{_NUMBER})?)")


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    paths = [ROOT / name for name in out.decode().split("\0") if name]
    return [p for p in paths if (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES) and p.is_file()]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _sections() -> set[str]:
    return {m.group(1) for line in _read(ALGORITHM).splitlines() if (m := HEADING.match(line))}


def _cited(group: str) -> list[str]:
    """The sections one citation names, ranges of top-level sections expanded."""
    cited = []
    for m in REFERENCE.finditer(group):
        first, last = m.group(1), m.group(2)
        if last is None:
            cited.append(first)
        elif first.isdigit() and last.isdigit():
            cited += [str(n) for n in range(int(first), int(last) + 1)]
        else:
            cited += [first, last]
    return cited


def test_no_citation_of_the_specification_outside_the_repository():
    offenders = []
    for path in _tracked_text_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("tests/"):
            continue
        for number, line in enumerate(_read(path).splitlines(), 1):
            if any(old in line for old in OLD_CITATIONS):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "cite docs/ALGORITHM.md §N instead:\n" + "\n".join(offenders)


def test_algorithm_md_keeps_the_cited_numbering():
    sections = _sections()
    assert {str(n) for n in range(1, 9)} <= sections, sorted(sections)


def test_every_citation_names_an_existing_section():
    sections = _sections()
    found, missing = 0, []
    for path in _tracked_text_files():
        rel = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(_read(path).splitlines(), 1):
            for m in CITATION.finditer(line):
                for section in _cited(m.group(1)):
                    found += 1
                    if section not in sections:
                        missing.append(f"{rel}:{number}: §{section} in {line.strip()!r}")
    assert found > 0, "no citation of docs/ALGORITHM.md found: is the pattern still right?"
    assert not missing, f"sections of docs/ALGORITHM.md: {sorted(sections)}\n" + "\n".join(missing)


def test_algorithm_md_refers_only_to_its_own_sections():
    sections = _sections()
    missing = [
        f"line {number}: §{section}"
        for number, line in enumerate(_read(ALGORITHM).splitlines(), 1)
        for m in INTERNAL.finditer(line)
        for section in _cited(m.group(1))
        if section not in sections
    ]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize(
    ("text", "sections"),
    [
        ("(docs/ALGORITHM.md §3).", ["3"]),
        ("docs/ALGORITHM.md §1-4 against", ["1", "2", "3", "4"]),
        ("(docs/ALGORITHM.md §6, §8).", ["6", "8"]),
        ("see `docs/ALGORITHM.md` §3.2, with", ["3.2"]),
        ("[ALGORITHM.md §9](docs/ALGORITHM.md#9-where)", ["9"]),
    ],
)
def test_citation_pattern(text, sections):
    assert [s for m in CITATION.finditer(text) for s in _cited(m.group(1))] == sections
