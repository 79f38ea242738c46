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

# pytest-xdist: one worker per core, a module's tests on one worker (tests/conftest.py).
test: $(STAMP) $(TEST_TOOLS)  ## Lint, then run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -n auto --dist loadgroup

lint: $(STAMP)  ## ruff and the import-linter contract (the layers)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix .

# Every dataset, each contender in a fresh process: `make bench BENCH_ARGS="--repeat 3"`
# (medians), `--dataset Device,EPG`, `--size 2000` (the 1 GiB peak target), see --help.
.PHONY: bench-quick

bench: $(STAMP)  ## raw->silver and silver->gold beside DuckDB and pyarrow, every dataset (200 MB files, ~3 min)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

bench-quick: $(STAMP)  ## The same on 20 MB files (under a minute)
	$(BIN)/python scripts/bench.py --size 20 $(BENCH_ARGS)

# Deployment, usable in CI: `make upload ENV=prod` (default test).
ENV ?= test
.PHONY: package upload

package: $(STAMP)  ## Build the Lambda zips, the layer and the Glue files in build/
	$(BIN)/m7etl package

upload: $(STAMP)  ## Build what is stale, then upload every artefact to the code bucket (ENV=test)
	$(BIN)/m7etl upload --env $(ENV)

# The whole guide (steps 1 to 5) in one target; CI answers the change set's prompt with --yes.
.PHONY: deploy doctor notifications status

deploy: $(STAMP)  ## Check, build, upload, deploy the stack, set variables and notifications (ENV=test)
	$(BIN)/m7etl deploy --env $(ENV) --yes

doctor: $(STAMP)  ## Check an environment's prerequisites, one line per check (ENV=test)
	$(BIN)/m7etl doctor --env $(ENV)

notifications: $(STAMP)  ## Send the data bucket's landing/ CSV files to the S3-event function (ENV=test)
	$(BIN)/m7etl notifications --env $(ENV)

status: $(STAMP)  ## The stack, MWAA, the last DAG runs and the last execution log (ENV=test)
	$(BIN)/m7etl status --env $(ENV)

# The guide's step 4: `make trigger ENV=test DATE=20250501` (DATE optional) waits for the run.
.PHONY: set-variables trigger

set-variables: $(STAMP)  ## Set the DAG's Airflow variables from m7etl.toml (ENV=test)
	$(BIN)/m7etl set-variables --env $(ENV)

trigger: $(STAMP)  ## Start the DAG (DATE=YYYYMMDD optional) and wait for its outcome (ENV=test)
	$(BIN)/m7etl trigger --env $(ENV) $(if $(DATE),--date $(DATE)) --wait

# The DAG end to end here (docs/dag.md): moto, the Lambda and Glue stand-ins, fakesnow.
.PHONY: dag-test

dag-test: $(STAMP)  ## Run m7_etl_pipeline with `airflow dags test` on the demo files, no AWS
	$(BIN)/python scripts/dag_test.py --day $(DEMO_DAY)

clean:
	rm -rf build $(WORK) .pytest_cache .ruff_cache

# The local stack (docs/local.md): moto and the MWAA stand-in on 127.0.0.1, the endpoints of
# [local] in m7etl.toml; pids and logs in .work/local/. `make local-e2e` walks the guide's
# steps 1 to 6 on it (E2E_ARGS=--failure-path adds a run failing the quality gate).
.PHONY: local-up local-down local-status local-e2e

local-up: $(STAMP)  ## Start moto and the MWAA stand-in (--env local), with the VPC exports and buckets
	$(BIN)/m7etl local up --with-prerequisites

local-down: $(STAMP)  ## Stop exactly what local-up started
	$(BIN)/m7etl local down

local-status: $(STAMP)  ## Show the local stack's processes (exit 2 when one is not running)
	$(BIN)/m7etl local status

local-e2e: $(STAMP)  ## Deploy the real stack locally and run landing/ files to the warehouse
	$(BIN)/python scripts/local_e2e.py $(E2E_ARGS)
