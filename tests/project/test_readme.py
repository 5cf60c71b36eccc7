"""The README's first snippet runs as written (fewer epochs) and prints accuracy per task."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_first_snippet_prints_accuracy_per_task():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "train_epochs=20" in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace("train_epochs=20", "train_epochs=2"), "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"after task {t}" for t in range(5)]
    for t, line in enumerate(lines):
        accuracies = [float(a) for a in line.split(":")[1].split()]
        assert len(accuracies) == t + 1 and all(0.0 <= a <= 1.0 for a in accuracies)
