"""The house stays navigable (issue 21): no package module over 400 lines, no class over
250 lines, no script (``benchmarks/``, ``examples/``) over 500 lines."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_package_modules_are_at_most_400_lines():
    long = {str(p.relative_to(ROOT)): lines(p) for p in (ROOT / "avalanche_adahat").rglob("*.py")}
    assert {p: n for p, n in long.items() if n > 400} == {}


def test_classes_are_at_most_250_lines():
    long = {}
    for path in (ROOT / "avalanche_adahat").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 250:
                long[f"{path.relative_to(ROOT)}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert long == {}


def test_scripts_are_at_most_500_lines():
    scripts = [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "examples").glob("*.py")]
    assert scripts
    assert {str(p.relative_to(ROOT)): lines(p) for p in scripts if lines(p) > 500} == {}
