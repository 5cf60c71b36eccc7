"""Packaging: the sdist and the wheel, built offline from a copy of the sources, carry
the license, the ``py.typed`` marker and the metadata; the sdist ships no tests (they
need the repository: benchmarks/, examples/, docs/, git)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "avalanche_adahat", "tests"]
#: setuptools' build backend, as pip or ``python -m build`` call it (no network).
BUILD = (
    "from setuptools.build_meta import build_sdist, build_wheel; "
    "print(build_sdist({out!r})); print(build_wheel({out!r}))"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``(sdist members, wheel members, PKG-INFO, METADATA, build output)``."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", BUILD.format(out=str(out))],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    with tarfile.open(sdist) as tar:
        sdist_names = [m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name]
        pkg_info = tar.extractfile(f"{sdist.name[: -len('.tar.gz')]}/PKG-INFO").read().decode()
    with zipfile.ZipFile(wheel) as whl:
        wheel_names = whl.namelist()
        (metadata,) = [n for n in wheel_names if n.endswith(".dist-info/METADATA")]
        metadata = whl.read(metadata).decode()
    return sdist_names, wheel_names, pkg_info, metadata, done.stdout + done.stderr


def test_license_and_py_typed_are_shipped(built):
    sdist, wheel, *_ = built
    assert "LICENSE" in sdist and "avalanche_adahat/py.typed" in sdist
    assert "avalanche_adahat/py.typed" in wheel
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel)
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_metadata_is_complete_with_an_spdx_license(built):
    *_, pkg_info, metadata, output = built
    for text in (pkg_info, metadata):
        assert "License-Expression: MIT" in text
        assert "Author:" in text
        assert "Project-URL:" in text
        assert "Classifier: Typing :: Typed" in text
        assert "Classifier: License ::" not in text  # the SPDX expression replaces them
    deprecations = [line for line in output.lower().splitlines() if "deprecat" in line]
    assert not [line for line in deprecations if "license" in line], output


def test_the_sdist_ships_no_tests_it_could_not_run(built):
    sdist, *_ = built
    assert not [n for n in sdist if n.startswith("tests/")]
