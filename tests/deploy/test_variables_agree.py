"""set-variables (before sending) and the DAG's plan task (when it runs) check the same four
variables: a value one accepts the other must accept, or a deploy would set variables that
fail every run. The DAG's rules stop at the first problem; set-variables lists them all."""

from __future__ import annotations

import itertools

import pytest

from m7etl.deploy.variables import validate_variables
from m7etl.exceptions import ConfigurationError, DeployError
from m7etl.orchestration.plan import read_settings

ENVIRONMENTS = ["test", "prod-2", "Test", "a" * 21, "2test"]
DAYS = [1, 3, 365, 0, 366, "7", "3.5", "x", -1]
ERRORS = [0, 5.0, "5", 100, 100.5, -1, "five"]
WARNINGS = [10.0, 5.0, 4.9, 0, "12.5"]


def dag_accepts(values: dict) -> bool:
    try:
        read_settings(lambda name: values.get(name))
    except ConfigurationError:
        return False
    return True


def cli_accepts(values: dict) -> bool:
    try:
        validate_variables(values)
    except DeployError:
        return False
    return True


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_both_sides_accept_and_refuse_the_same_values(env):
    disagreements = []
    for days, error, warning in itertools.product(DAYS, ERRORS, WARNINGS):
        values = {"environment": env, "max_days_back": days, "error_threshold": error,
                  "warning_threshold": warning}
        if dag_accepts(values) != cli_accepts(values):
            disagreements.append((values, dag_accepts(values), cli_accepts(values)))
    assert disagreements == []


def test_the_guides_values_pass_both():
    values = {"environment": "test", "max_days_back": 3, "error_threshold": 5.0,
              "warning_threshold": 10.0}
    assert dag_accepts(values) and cli_accepts(values)
