# Everything a fresh machine needs: `make demo` runs the bank + partner demo, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install system-deps demo test lint typecheck unit proto bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel setuptools

# torch first, pinned: an unpinned torch pulls gigabytes of CUDA packages.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

install: $(VENV)/.installed

# Debian packages the tests run for real: a MariaDB server and headless Chromium.
system-deps:
	scripts/system-deps.sh

demo: install
	$(BIN)/vfl demo

lint: install
	$(BIN)/ruff check vfl tests benchmarks examples

typecheck: install
	$(BIN)/mypy vfl

unit: install system-deps
	$(BIN)/python -m pytest

test: lint typecheck unit

proto: install
	$(BIN)/python -m vfl.parties.proto.generate

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
