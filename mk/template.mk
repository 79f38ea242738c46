# CloudFormation template checks, included from the Makefile (include mk/template.mk).
# checkov lives in its own venv: its pinned dependencies clash with Airflow's constraints.

TEMPLATE      ?= templates/etl-pipeline-mwaa.yaml
CHECKOV_VENV  ?= .venv-checkov
CHECKOV_VER   ?= 3.3.30
CHECKOV       ?= $(CHECKOV_VENV)/bin/checkov

.PHONY: lint-template checkov checkov-install test-template

lint-template:
	$(BIN)/cfn-lint -- $(TEMPLATE)

$(CHECKOV):
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VER)

checkov-install: $(CHECKOV)

checkov: $(CHECKOV)
	BC_SKIP_MAPPING=TRUE $(CHECKOV) -f $(TEMPLATE) --framework cloudformation --skip-download --compact --quiet

test-template: $(CHECKOV)
	$(BIN)/python -m pytest tests/template -q
