# Everything a fresh machine needs: `make demo` runs the bank + partner demo, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install system-deps partner-db partner-db-stop demo test lint typecheck imports unit proto bench clean wheelhouse image

# pip shows what it downloads and installs, with progress bars (a first install takes minutes).
PIP := $(BIN)/pip install --progress-bar on

$(BIN)/python:
	@echo "== creating the virtualenv $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip wheel setuptools

# torch first, pinned and CPU-only: an unpinned torch pulls gigabytes of CUDA packages.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	@echo "== installing torch 2.13.0 (CPU; the largest download)"
	$(PIP) torch==2.13.0
	@echo "== installing vfl and its dependencies (numpy, pandas, scikit-learn, grpcio, ...)"
	$(PIP) -e '.[dev,bench]'
	touch $@

install: $(VENV)/.installed

# Debian packages the tests run for real: a MariaDB server and headless Chromium.
system-deps:
	scripts/system-deps.sh

# A local MariaDB for the examples (installs mariadb-server when missing); prints the
# PARTNER_DB_URL to export. Reuses a running server; partner-db-stop stops it.
partner-db:
	@scripts/partner-db.sh start

partner-db-stop:
	@scripts/partner-db.sh stop

demo: install
	$(BIN)/vfl demo

lint: install
	$(BIN)/ruff check vfl tests benchmarks examples

typecheck: install
	$(BIN)/mypy vfl

# the layers of .importlinter: no module imports a layer above its own, no import cycles
imports: install
	$(BIN)/lint-imports

unit: install system-deps
	$(BIN)/python -m pytest

test: lint typecheck imports unit

# The container image (Dockerfile) installs from a wheelhouse, so `docker build` needs no network:
# deps/ holds every dependency (torch pinned CPU-only), app/ the vfl wheel (rebuilt on each change,
# its own image layer). Built by the Python the image runs (3.11 here). Where the public PyPI torch
# would pull CUDA, add the CPU index: make wheelhouse PIP_WHEEL_ARGS="--extra-index-url
# https://download.pytorch.org/whl/cpu".
WHEELHOUSE ?= wheelhouse
IMAGE ?= vfl:latest
BASE_IMAGE ?= python:3.11-slim-bookworm
PIP_WHEEL_ARGS ?=

wheelhouse: | $(BIN)/python
	rm -rf $(WHEELHOUSE)
	$(BIN)/pip wheel --quiet $(PIP_WHEEL_ARGS) --wheel-dir $(WHEELHOUSE)/deps torch==2.13.0 .
	mkdir -p $(WHEELHOUSE)/app
	mv $(WHEELHOUSE)/deps/vfl-*.whl $(WHEELHOUSE)/app/

image: wheelhouse
	docker build --network none --build-arg BASE_IMAGE=$(BASE_IMAGE) --tag $(IMAGE) .

proto: install
	$(BIN)/python -m vfl.parties.proto.generate

clean:
	rm -rf $(VENV) build $(WHEELHOUSE) *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
