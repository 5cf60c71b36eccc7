"""The README's class-incremental snippet runs as written and prints the line the README quotes."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_class_incremental_snippet_prints_what_the_readme_says():
    text = README.read_text()
    section = text[text.index("## Class-incremental streams") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue().strip()
    assert printed.startswith("class-incremental accuracy ")
    assert f"It prints `{printed}`" in section
