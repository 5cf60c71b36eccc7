"""The layers' rule that import-linter cannot state (it sees external packages only whole):
``avalanche.training`` is imported by the training layer and the commands above it alone
(CONTRIBUTING.md, "Layers"). The layer order itself is checked by ``lint-imports``
(pyproject.toml, ``[tool.importlinter]``) in ``make lint``."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "avalanche_adahat"
ALLOWED = {"training", "compare", "demo.py", "__main__.py"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports (``import a.b`` and ``from a.b import c``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_training_layer_imports_avalanche_training():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in ALLOWED:
            continue
        found = sorted(
            m
            for m in imported_modules(path)
            if m == "avalanche.training" or m.startswith("avalanche.training.")
        )
        if found:
            offenders[str(path.relative_to(PACKAGE))] = found
    assert offenders == {}


def test_the_check_sees_an_import_of_avalanche_training(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from avalanche.training.templates import SupervisedTemplate\nimport os\n")
    assert "avalanche.training.templates" in imported_modules(module)
