# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist

.PHONY: demo test lint format data docs clean

$(VENV)/.installed: pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-build-isolation -e .
	touch $@

# Real Fashion-MNIST for the tests that use it (Debian's dataset-fashion-mnist).
data:
	@bash scripts/install-fashion-mnist.sh "$(FMNIST_DIR)"

demo: $(VENV)/.installed
	$(PY) -m avalanche_adahat demo

# Style, the import contract between the package's layers (CONTRIBUTING.md, "Layers") and types.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The documentation site (README, algorithm, results, API reference) in build/site,
# with every warning an error.
docs: $(VENV)/.installed
	$(VENV)/bin/mkdocs build --strict --quiet

test: $(VENV)/.installed data lint docs
	$(PY) -m pytest -n 2 -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
