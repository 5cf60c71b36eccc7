"""MkDocs hooks: the README, as it is on the repository's front page, is the site's home
(its links into docs/ made relative to the site's pages: ``docs/RESULTS.md`` ->
``RESULTS.md``; nothing is copied into docs/), and the docstrings' Sphinx roles show
as code in the API reference.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

README = Path(__file__).resolve().parents[1] / "README.md"


def on_files(files, config):
    text = re.sub(r"\]\(docs/", "](", README.read_text())
    files.append(File.generated(config, "index.md", content=text))
    return files


#: A Sphinx role the docstrings use (``:class:`~avalanche_adahat.HATPlugin```) as
#: mkdocstrings renders it: the role's name, then the target in a code span.
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):<code>(~?)([\w.]+)</code>")


def on_page_content(html, page, config, files):
    """Show a Sphinx role's target as code (``~`` keeps its last name, as Sphinx does)."""
    return _ROLE.sub(
        lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>",
        html,
    )
