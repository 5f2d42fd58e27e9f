# Set-up and everyday commands. Each target creates and fills .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint format bench docs dist clean

DOCS_STAMP := $(VENV)/.docs-stamp

# pip prints what it downloads and installs (a progress bar on a terminal): the first
# install takes about 3 minutes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test,docs]'
	touch $(STAMP)

# The docs extra is part of the first install (the fast suite builds the docs); this stamp
# adds it to an environment made before it was.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e '.[test,docs]'
	touch $(DOCS_STAMP)

## demo: install into .venv and run `gmmscape demo` (figures and results in demo-output/)
demo: $(STAMP)
	$(BIN)/gmmscape demo --out demo-output

# The fast suite's cost is mostly XLA compiling many small kernels once each; compiling
# them without LLVM's optimization passes cost 23% less CPU time (306 instead of 396
# CPU-seconds, README "Quickstart"). Only `make test` sets it (an XLA_FLAGS of your own
# replaces it); make test-slow, the benchmarks and every user run XLA's default.
TEST_XLA_FLAGS ?= --xla_backend_optimization_level=0

## test: install into .venv, lint, check formatting, run the fast test suite
## (PYTEST_ARGS adds pytest options, e.g. PYTEST_ARGS=--cpu-durations=20)
test: $(STAMP) lint
	XLA_FLAGS="$${XLA_FLAGS:-$(TEST_XLA_FLAGS)}" $(BIN)/python -m pytest -m "not slow" -q $(PYTEST_ARGS)

## test-slow: the slow tests only (CI does not run them)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q $(PYTEST_ARGS)

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

## docs: the user guide and the API reference as HTML in site/ (mkdocs, strict: a broken
## link or reference is an error)
docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

## dist: a wheel and a source archive in dist/ (pip install dist/gmmscape-*.whl)
dist: $(STAMP)
	$(BIN)/python -m pip install 'build>=1.2,<2'
	rm -rf dist
	$(BIN)/python -m build --outdir dist

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache site dist build
