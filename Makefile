# m7etl — every set-up step lives here, so a fresh machine needs only `make demo` / `make test`.
# Python 3.12 when the machine has it: MWAA's Airflow 3.0.6 runs on 3.12, and its constraints
# file (constraints/) is the 3.12 one. Any python3 >= 3.11 works for the core.
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) \
	$(shell command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null) python3)
VENV := .venv
BIN := $(VENV)/bin
WORK := .work
# Airflow 3.0.6's constraints (what MWAA runs) pin the shared libraries, so the core is
# tested against the versions production uses. duckdb is unpinned from it: fakesnow
# 0.12 (the local Snowflake) needs DuckDB 2, and Airflow itself does not use DuckDB.
AIRFLOW_CONSTRAINTS := constraints/airflow-3.0.6-python3.12.txt
CONSTRAINTS := $(WORK)/constraints.txt
STAMP := $(VENV)/.installed
DEMO_DIR := $(WORK)/demo
DEMO_DAY := 20250501

.PHONY: all install demo test lint format bench clean help
.DEFAULT_GOAL := help

# Fragments per area (template checks, Glue/Python 3.9 checks); read before the rules below
# use their variables.
include mk/*.mk

help:  ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## /\1\t/'

$(CONSTRAINTS): $(AIRFLOW_CONSTRAINTS)
	@mkdir -p $(WORK)
	grep -v -i -E '^duckdb==' $(AIRFLOW_CONSTRAINTS) > $@

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $@

install: $(STAMP)  ## Create .venv and install m7etl with everything the tests need

demo: $(STAMP)  ## Generate sample files and run the whole pipeline locally (no AWS, no Snowflake)
	$(BIN)/m7etl sample --demo --day $(DEMO_DAY) --out $(DEMO_DIR)/landing
	$(BIN)/m7etl run --local --data-dir $(DEMO_DIR)

# Test-only tools in their own environments: checkov (its pins clash with Airflow's) and a
# Python 3.9 venv with the Glue job's modules, when a python3.9 exists on the machine.
TEST_TOOLS = checkov-install $(if $(PY39),py39-venv)

test: $(STAMP) $(TEST_TOOLS)  ## Lint, then run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## Throughput and peak memory of raw->silver beside pyarrow, DuckDB and pandas
	$(BIN)/python scripts/bench.py

clean:
	rm -rf build $(WORK) .pytest_cache .ruff_cache
