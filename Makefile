# Two entry points (see README): `make quickstart` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV ?= .venv
# torch is installed first and on its own so that the CPU wheel of the machine can be chosen;
# override e.g. with TORCH="torch==2.1.0" (the Ascend stack's version).
TORCH ?= torch==2.13.0
DATA ?= data/synthetic
BIN := $(VENV)/bin

.PHONY: quickstart check-data test test-overfit test-compat lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.train: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[train]"
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.train
	$(BIN)/pip install --quiet -e ".[train,dev]"
	touch $@

# The main job on the embedded default: synthetic nuScenes, 2 CPU ranks, train then evaluate.
quickstart: $(VENV)/.train
	$(BIN)/bevlaunch submit examples/quickstart.yaml --watch

# The data side alone, without training: generate, prepare and check a synthetic dataset.
check-data: $(VENV)/.train
	$(BIN)/python -m bevdepth prepare all --synthetic --root $(DATA)
	$(BIN)/python -m bevdepth check-data --root $(DATA)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pip check
	$(BIN)/pytest

# Minutes of training on a few synthetic samples to a clearly non-zero mAP (not in CI).
test-overfit: $(VENV)/.dev
	$(BIN)/pytest -m overfit tests/runtime

# The oldest supported stack, what the Ascend images ship: Python 3.10 (where installed; else
# $(PYTHON)) with torch 2.1. Fast tests of the workload, the launcher and the reference agent.
# (pyenv's shim answers `command -v` even when 3.10 is not selected: try running it.)
PYTHON310 := $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10; do \
	if $$p -c "" 2>/dev/null; then echo $$p; break; fi; done)
COMPAT_PYTHON ?= $(or $(PYTHON310),$(PYTHON))
COMPAT_VENV ?= .venv-torch21
$(COMPAT_VENV)/.dev: pyproject.toml
	$(COMPAT_PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install --quiet --upgrade pip
	$(COMPAT_VENV)/bin/pip install --quiet "torch==2.1.0"
	$(COMPAT_VENV)/bin/pip install --quiet -e ".[train,dev]"
	touch $@

test-compat: $(COMPAT_VENV)/.dev
	$(COMPAT_VENV)/bin/python -c "import sys, torch; assert torch.__version__.startswith('2.1.'); print('compat: Python', sys.version.split()[0], 'torch', torch.__version__)"
	$(COMPAT_VENV)/bin/pip check
	$(COMPAT_VENV)/bin/pytest -m "not slow" tests/data tests/model tests/runtime tests/launcher tests/reference

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/data_pipeline.py

clean:
	rm -rf $(VENV) $(COMPAT_VENV) data/synthetic runs .pytest_cache .ruff_cache
