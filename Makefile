# One-command set-up: each target creates the virtual environment when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint ui bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first, so no dependency can pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/regnet run

# Two workers (CI has 2 cores); whole modules per worker (groups: regnet_assets_tests/conftest.py).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup
	$(BIN)/dagster definitions validate -m regnet_assets.definitions

# The science and storage tests only (about two minutes): for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

ui: $(STAMP)
	$(BIN)/regnet ui

bench: $(STAMP)
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_pruning.py

clean:
	rm -rf regnet_storage .pytest_cache
