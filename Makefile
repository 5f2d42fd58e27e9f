# Set-up and everyday commands. Each target creates and fills .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: install into .venv and run `gmmscape demo` (figures and results in demo-output/)
demo: $(STAMP)
	$(BIN)/gmmscape demo --out demo-output

## test: install into .venv, lint, check formatting, run the fast test suite
test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slow" -q

## test-slow: the slow tests only
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

## bench: the benchmarks (see benchmarks/README.md)
bench: $(STAMP)
	$(BIN)/python benchmarks/population_accuracy.py
	$(BIN)/python benchmarks/stream_memory.py
	$(BIN)/python benchmarks/overparam_speed.py
	$(BIN)/python benchmarks/overparam_samples.py
	$(BIN)/python benchmarks/sweep_throughput.py
	$(BIN)/python benchmarks/estimator_speed.py
	$(BIN)/python benchmarks/estimator_peers.py
	$(BIN)/python benchmarks/estimator_memory.py
	$(BIN)/python benchmarks/estimator_recovery.py
	$(BIN)/python benchmarks/landscape_speed.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
