# gold_to_snowflake: the Glue bundle and the Python 3.9 checks of the Glue job's code.
# Included from the Makefile (`include mk/*.mk`); uses its BIN, STAMP and WORK.

GLUE_BUNDLE := build/glue/m7etl_glue.zip
PY39 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.9*/bin/python3.9) $(shell command -v python3.9))
PY39_VENV := $(WORK)/py39
# What the Glue job's --additional-python-modules installs, plus what Glue's "analytics"
# library set provides (pandas, numpy, pyarrow, boto3), at versions that install on 3.9.
PY39_PINS := snowflake-connector-python==3.12.4 PyYAML==6.0.2 boto3==1.34.162 \
	pandas==1.5.3 numpy==1.26.4 pyarrow==14.0.2

.PHONY: glue-bundle lint-py39 py39-venv test-py39

glue-bundle: $(STAMP)  ## Build build/glue/m7etl_glue.zip (the Glue job's --extra-py-files)
	$(BIN)/python -c "from m7etl.deploy.glue import build_glue_bundle; print(build_glue_bundle('$(GLUE_BUNDLE)'))"

lint-py39: $(STAMP)  ## vermin: the Glue script and every module it imports run on Python 3.9
	$(BIN)/vermin -t=3.9- --violations --no-tips --eval-annotations glue_src/gold_to_snowflake.py \
		$$($(BIN)/python -c "from m7etl.deploy.glue import bundle_files; print(' '.join(str(p) for n, p in bundle_files() if n.endswith('.py')))")

$(PY39_VENV)/bin/python:
	@test -n "$(PY39)" || { echo "No python3.9 found: install one (pyenv install 3.9) or set PY39=..."; exit 1; }
	$(PY39) -m venv $(PY39_VENV)
	$(PY39_VENV)/bin/python -m pip install --quiet $(PY39_PINS)

py39-venv: $(PY39_VENV)/bin/python  ## A Python 3.9 venv with the Glue job's modules (for test-py39)

test-py39: $(STAMP) $(PY39_VENV)/bin/python  ## Lint for 3.9, then run the Glue code under a real Python 3.9
	$(MAKE) lint-py39
	$(BIN)/python -m pytest -q tests/warehouse/test_py39.py tests/warehouse/test_bundle.py
