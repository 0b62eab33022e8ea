# suho-mt5 developer entry points. Every target installs what it needs first.
#   make test   lint, then every test lane against real servers
#   make help   everything else

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup system-deps timescaledb demo test test-unit test-integration test-timescale test-pglite lint bench fuzz sql clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

setup: system-deps timescaledb $(VENV)/.installed node_modules/.installed  ## venv, pip, npm, (as root) apt packages and TimescaleDB 2.28.3

system-deps:
	@PYTHON=$(PYTHON) scripts/ensure_system_deps.sh

timescaledb: system-deps  ## build and install TimescaleDB 2.28.3 into PostgreSQL 15 (skipped when installed)
	@scripts/build_timescaledb.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,nats,ingest,cache]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup  ## the whole data flow on servers it starts itself, then its numbers (DEMO_ARGS=--help)
	$(BIN)/suho-mt5 demo $(DEMO_ARGS)

lint: setup  ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint  ## lint, then all four test lanes (unit, integration, timescale, pglite)
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: setup  ## the tests that need no server
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

test-integration: setup  ## native PostgreSQL and nats-server
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

test-timescale: setup  ## native TimescaleDB 2.28 (what users run)
	$(BIN)/pytest -m timescale $(PYTEST_ARGS)

test-pglite: setup  ## the PGlite TimescaleDB engine (the demo's no-root fallback)
	$(BIN)/pytest -m pglite $(PYTEST_ARGS)

bench: setup  ## benchmarks; writes docs/benchmarks.md
	$(PY) -m benchmarks

fuzz: setup  ## long fuzzing runs: the protocol decoder, then 100,000 streams at a live gateway
	$(PY) scripts/fuzz_protocol.py
	SUHO_FUZZ_STREAMS=100000 $(BIN)/pytest -q -s -p no:randomly \
		tests/integration/test_gateway_fuzz.py $(PYTEST_ARGS)

sql: setup  ## regenerate schemas/*.sql from the migrations
	$(PY) scripts/generate_schemas.py

clean:  ## remove the virtualenv, node_modules and caches
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .hypothesis
