"""``m7etl set-variables``: the checks (pure), then both MWAA routes against the stand-in,
and the CLI-token route against the real Airflow CLI.

The stand-in's REST route is an in-memory emulation of Airflow 3.0.6's variables routes
(GET/PATCH/POST, their status codes and bodies; no auth, no roles): the REST tests rely on
that. The Airflow-backed test runs the real ``airflow variables`` commands in its own
AIRFLOW_HOME and reads the values back from that home with ``airflow variables get``.
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.deploy.variables import (
    CREATED,
    UNCHANGED,
    UPDATED,
    parse_assignments,
    plan_changes,
    read_variables_file,
    same_value,
    validate_variables,
)
from m7etl.exceptions import DeployError
from m7etl.local.standins.mwaa import (
    MwaaStandin,
    airflow_command,
    clone_airflow_home,
    run_airflow,
    shared_airflow_home,
)

ENV = "m7-etl-mwaa-test"
GUIDE = {"environment": "test", "max_days_back": "3", "error_threshold": "5.0",
         "warning_threshold": "10.0"}
NO_AIRFLOW = ("the `airflow` command is not installed (make install, or pip install -e "
              "'.[airflow]'): the MWAA stand-in's CLI route runs the real Airflow CLI")


@pytest.fixture
def standin(aws_env):
    server = MwaaStandin(env_name=ENV).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def airflow_template(tmp_path_factory):
    if airflow_command() is None:
        pytest.skip(NO_AIRFLOW)
    return shared_airflow_home(tmp_path_factory.getbasetemp())


def config_for(tmp_path, standin, extra: str = "", web: str | None = None):
    path = tmp_path / "m7etl.toml"
    path.write_text(f'[test.endpoints]\nmwaa = "{standin.endpoint}"\n'
                    f'mwaa_web = "{web or standin.endpoint}"\n{extra}', encoding="utf-8")
    return path


def run(*args: str):
    return CliRunner().invoke(cli, ["set-variables", *args])


def cli_commands(standin) -> list[str]:
    return [r.body for r in standin.of_kind("cli")]


def rest_calls(standin) -> list[tuple]:
    return [(r.body["Method"], r.body["Path"], r.body.get("Body"))
            for r in standin.of_kind("invoke_rest_api")]


# -- the checks, before anything is sent ---------------------------------------------------
def test_the_guides_defaults_pass_as_the_text_airflow_stores():
    values = {"environment": "test", "max_days_back": 3, "error_threshold": 5.0,
              "warning_threshold": 10.0}
    assert validate_variables(values, env="test") == (GUIDE, [])


def test_strings_from_the_command_line_are_read_as_numbers():
    values = {"max_days_back": " 7 ", "error_threshold": "2", "warning_threshold": "7.25"}
    assert validate_variables(values)[0] == {"max_days_back": "7", "error_threshold": "2.0",
                                             "warning_threshold": "7.25"}


@pytest.mark.parametrize(("values", "message"), [
    ({"max_days_back": 0}, "max_days_back must be a whole number of days from 1 (0 would look "
     "at no day) to 365 (raw/ keeps 365 days by default, older ones are gone), got 0"),
    ({"max_days_back": "3.5"}, "max_days_back must be a whole number of days from 1 (0 would "
     "look at no day) to 365 (raw/ keeps 365 days by default, older ones are gone), got '3.5'"),
    ({"max_days_back": True}, "max_days_back must be a whole number of days from 1 (0 would "
     "look at no day) to 365 (raw/ keeps 365 days by default, older ones are gone), got True"),
    ({"max_days_back": 366}, "max_days_back must be a whole number of days from 1 (0 would "
     "look at no day) to 365 (raw/ keeps 365 days by default, older ones are gone), got 366"),
    ({"error_threshold": "abc"},
     "error_threshold must be a percentage from 0 to 100 (of a file's rows), got 'abc'"),
    ({"error_threshold": "nan"},
     "error_threshold must be a percentage from 0 to 100 (of a file's rows), got 'nan'"),
    ({"warning_threshold": 100.5},
     "warning_threshold must be a percentage from 0 to 100 (of a file's rows), got 100.5"),
    ({"environment": ""}, "environment must be a name like 'test' (lower-case letters, digits "
     "and '-', starting with a letter, at most 20), got ''"),
    ({"error_threshold": 5.0, "warning_threshold": 4}, "warning_threshold (4.0) must be at "
     "least error_threshold (5.0), as in the guide's 5.0 and 10.0 (a lower one is almost "
     "always the two values swapped)"),
])
def test_each_bad_value_is_named_with_its_rule(values, message):
    with pytest.raises(DeployError) as info:
        validate_variables(values)
    assert info.value.message == f"Airflow variables not sent: {message}."


def test_every_problem_is_reported_at_once():
    with pytest.raises(DeployError) as info:
        validate_variables({"max_days_back": 0, "error_threshold": -1, "max_day_back": 2})
    problems = info.value.message.removeprefix("Airflow variables not sent: ").split("; ")
    assert [p.split(" ")[0] for p in problems] == ["max_days_back", "error_threshold", "unknown"]
    assert problems[2] == "unknown variable 'max_day_back' (did you mean 'max_days_back'?)."
    assert info.value.hint == ("The DAG reads environment, max_days_back, error_threshold, "
                               "warning_threshold; --allow-extra sends others anyway.")


def test_extra_variables_need_allow_extra_and_secrets_are_never_sent():
    assert validate_variables({"owner_team": "data"}, allow_extra=True)[0] == {
        "owner_team": "data"}
    with pytest.raises(DeployError, match="variable 'snowflake_password' looks like a secret"):
        validate_variables({"snowflake_password": "x"}, allow_extra=True)


def test_an_environment_other_than_env_is_a_warning_not_an_error():
    values, warnings = validate_variables({"environment": "prod"}, env="test")
    assert values == {"environment": "prod"}
    assert warnings == ["environment is 'prod' but --env is 'test': the DAG of this environment "
                        "will call itself 'prod'."]


def test_assignments_and_files_are_parsed_strictly(tmp_path):
    assert parse_assignments(["a=1", "b = x=y", "a=2"]) == {"a": "2", "b": "x=y"}
    with pytest.raises(DeployError, match=re.escape("--var 'max_days_back' is not KEY=VALUE.")):
        parse_assignments(["max_days_back"])
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(DeployError, match="must hold a JSON object of variables, got list"):
        read_variables_file(tmp_path / "list.json")
    (tmp_path / "bad.json").write_text("{max_days_back: 3}")
    with pytest.raises(DeployError, match="is not valid JSON"):
        read_variables_file(tmp_path / "bad.json")


def test_numbers_compare_as_numbers():
    assert same_value("error_threshold", "5", "5.0")
    assert not same_value("environment", "Test", "test")
    changes = plan_changes({"max_days_back": "3", "environment": "test", "error_threshold": "5.0"},
                           {"max_days_back": "3.0", "environment": None, "error_threshold": "6"})
    assert [(c.key, c.action) for c in changes] == [("max_days_back", UNCHANGED),
                                                    ("environment", CREATED),
                                                    ("error_threshold", UPDATED)]


def test_validation_errors_stop_the_command_before_any_request(tmp_path, standin):
    config = config_for(tmp_path, standin)
    result = run("--config", str(config), "--var", "warning_threshold=1", "--var", "typo=1")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Airflow variables not sent: warning_threshold (1.0) must be at least "
        "error_threshold (5.0), as in the guide's 5.0 and 10.0 (a lower one is almost always the "
        "two values swapped); unknown variable 'typo'. The DAG reads environment, max_days_back, "
        "error_threshold, warning_threshold; --allow-extra sends others anyway.\n")
    assert standin.requests == []


# -- through the routes --------------------------------------------------------------------
def test_cli_token_route_sets_everything_then_finds_it_already_set(tmp_path, standin):
    config = config_for(tmp_path, standin)
    first = run("--config", str(config), "--via", "cli-token")
    assert first.exit_code == 0, first.output
    assert standin.variables == GUIDE
    assert cli_commands(standin) == [f"variables get {k}" for k in GUIDE] + \
        [f"variables set {k} {v}" for k, v in GUIDE.items()]
    assert len(standin.of_kind("create_cli_token")) == 1  # one token serves the 8 commands
    assert ("m7-etl-mwaa-test via cli-token: environment created, max_days_back created, "
            "error_threshold created, warning_threshold created.") in first.stdout
    standin.requests.clear()
    second = run("--config", str(config), "--via", "cli-token")
    assert second.exit_code == 0
    assert cli_commands(standin) == [f"variables get {k}" for k in GUIDE]
    assert ("m7-etl-mwaa-test via cli-token: nothing changed; already set: environment, "
            "max_days_back, error_threshold, warning_threshold.") in second.stdout


def test_rest_route_posts_missing_variables_and_patches_changed_ones(tmp_path, standin):
    standin.variables.update({"environment": "test", "error_threshold": "5",
                              "warning_threshold": "12.0"})
    config = config_for(tmp_path, standin, '[test.variables]\nmax_days_back = 4\n')
    result = run("--config", str(config), "--via", "rest-api", "--output", "json")
    assert result.exit_code == 0, result.output
    assert rest_calls(standin) == [
        *[("GET", f"/variables/{k}", None) for k in GUIDE],
        ("POST", "/variables", {"key": "max_days_back", "value": "4"}),
        ("PATCH", "/variables/warning_threshold", {"key": "warning_threshold", "value": "10.0"})]
    assert standin.of_kind("cli") == []
    report = json.loads(result.stdout)
    assert report["route"] == "rest-api" and report["fallback_reason"] is None
    assert [(c["key"], c["before"], c["action"]) for c in report["changes"]] == [
        ("environment", "test", "unchanged"), ("max_days_back", None, "created"),
        ("error_threshold", "5", "unchanged"), ("warning_threshold", "12.0", "updated")]
    assert standin.variables["error_threshold"] == "5"  # 5 is 5.0: not rewritten


def test_precedence_is_config_then_file_then_var(tmp_path, standin):
    config = config_for(tmp_path, standin, '[test.variables]\nmax_days_back = 4\n'
                                           'error_threshold = 1.0\n')
    (tmp_path / "vars.json").write_text(json.dumps({"max_days_back": 6, "warning_threshold": 20}))
    result = run("--config", str(config), "--file", str(tmp_path / "vars.json"),
                 "--var", "max_days_back=9")
    assert result.exit_code == 0, result.output
    assert standin.variables == {"environment": "test", "max_days_back": "9",
                                 "error_threshold": "1.0", "warning_threshold": "20.0"}


def test_a_refused_cli_route_falls_back_to_the_rest_api(tmp_path, standin):
    standin.cli_mode = "forbidden"
    result = run("--config", str(config_for(tmp_path, standin)))
    assert result.exit_code == 0, result.output
    assert standin.variables == GUIDE
    assert "via rest-api:" in result.stdout
    assert len(standin.of_kind("cli")) == 1 and len(standin.of_kind("invoke_rest_api")) == 8


def test_an_unreachable_web_server_falls_back_to_the_rest_api(tmp_path, standin):
    closed = MwaaStandin().start()
    closed.stop()  # a port nothing listens on: a private web server, seen from outside
    result = run("--config", str(config_for(tmp_path, standin, web=closed.endpoint)),
                 "--output", "json")
    assert result.exit_code == 0, result.output
    reason = json.loads(result.stdout)["fallback_reason"]
    assert reason.startswith(f"cli-token: Cannot reach the Airflow web server of {ENV} at "
                             f"{closed.endpoint}/aws_mwaa/cli")


def test_both_routes_refused_is_one_error_naming_both(tmp_path, standin):
    standin.token_mode, standin.rest_mode = "denied", "denied"
    result = run("--config", str(config_for(tmp_path, standin)))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Neither route reaches Airflow on {ENV}: cli-token: MWAA denied CreateCliToken on "
        f"{ENV} (User is not authorized to perform: airflow:CreateCliToken); rest-api: MWAA "
        f"denied InvokeRestApi on {ENV} (User is not authorized to perform: "
        "airflow:InvokeRestApi) Grant the caller airflow:InvokeRestApi on the environment, or "
        "use the other route.\n")


def test_a_forced_route_does_not_fall_back(tmp_path, standin):
    standin.cli_mode = "forbidden"
    result = run("--config", str(config_for(tmp_path, standin)), "--via", "cli-token")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: The Airflow CLI endpoint of {ENV} answered HTTP "
                                    "403: {\"message\": \"Forbidden\"} A 403 means the CLI token "
                                    "was refused")
    assert standin.of_kind("invoke_rest_api") == []


def test_an_unknown_environment_says_so(tmp_path, standin):
    config = config_for(tmp_path, standin, '[test]\nmwaa_environment = "m7-etl-mwaa-other"\n')
    result = run("--config", str(config), "--via", "rest-api")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: MWAA environment m7-etl-mwaa-other does not exist in "
                                    "this account and region.")


def test_no_credentials_is_one_line_not_a_traceback(tmp_path, standin, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run("--config", str(config_for(tmp_path, standin)), "--via", "rest-api")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: No AWS credentials found to call MWAA for {ENV}. Configure "
                             "them (aws configure, AWS_PROFILE or environment variables) and run "
                             "again.\n")
    assert standin.requests == []


# -- the real Airflow CLI ------------------------------------------------------------------
@pytest.mark.slow
def test_the_cli_token_route_lands_in_airflows_database(tmp_path, airflow_template, aws_env):
    template, dags = airflow_template
    home = clone_airflow_home(template, tmp_path / "airflow")
    standin = MwaaStandin(env_name=ENV, airflow_home=home, dags_folder=dags).start()
    try:
        config = config_for(tmp_path, standin, '[test.variables]\nmax_days_back = 5\n')
        first = run("--config", str(config), "--via", "cli-token", "--output", "json")
        assert first.exit_code == 0, first.output
        assert [c["action"] for c in json.loads(first.stdout)["changes"]] == [CREATED] * 4
        read = run_airflow(["variables", "get", "max_days_back"], home, dags)
        assert (read.returncode, read.stdout.strip()) == (0, "5")
        exported = run_airflow(["variables", "export", "-"], home, dags).stdout
        start = re.search(r"^\{$", exported, re.MULTILINE).start()  # after Airflow's log lines
        assert json.loads(exported[start:]) == {
            "environment": "test", "max_days_back": 5, "error_threshold": 5.0,
            "warning_threshold": 10.0}  # export parses each stored text as JSON
        second = run("--config", str(config), "--via", "cli-token", "--output", "json")
        assert second.exit_code == 0, second.output
        assert [c["action"] for c in json.loads(second.stdout)["changes"]] == [UNCHANGED] * 4
    finally:
        standin.stop()
