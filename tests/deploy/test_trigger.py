"""``m7etl trigger``: the run id and conf (pure), both MWAA routes, ``--wait`` to success and
to failure, the timeout and Ctrl-C, and a run followed through the real Airflow CLI.

The stand-in's runs move only when told (its ``progress`` steps, one per look at the run):
that plays the scheduler. Its REST route emulates Airflow 3.0.6's dagRuns and
taskInstances routes in memory (their shapes and status codes; no auth, no paging); the
Airflow-backed test writes the states into the real Airflow DB of its own AIRFLOW_HOME and
reads them back through the real ``airflow dags list-runs`` and ``tasks states-for-dag-run``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.deploy import runs
from m7etl.deploy.config import load_env
from m7etl.deploy.runs import check_day, follow_run, manual_conf, manual_run_id, trigger_run
from m7etl.exceptions import DeployError
from m7etl.local.standins.mwaa import (
    MwaaStandin,
    airflow_command,
    clone_airflow_home,
    run_airflow,
    shared_airflow_home,
)
from m7etl.orchestration.airflow_api import connect, json_rows, task_instances_request, tasks_of
from m7etl.orchestration.mwaa import RouteUnavailable, rest_request
from m7etl.storage.aws import Clients

ENV, DAG = "m7-etl-mwaa-test", "m7_etl_pipeline"
NO_AIRFLOW = ("the `airflow` command is not installed (make install, or pip install -e "
              "'.[airflow]'): the MWAA stand-in's CLI route runs the real Airflow CLI")
TO_SUCCESS = [("running", {"raw_to_silver": "running"}),
              ("running", {"raw_to_silver": "success", "silver_to_gold": "running"}),
              ("success", {"silver_to_gold": "success", "gold_to_snowflake": "success"})]
TO_FAILURE = [("running", {"raw_to_silver": "running"}),
              ("failed", {"raw_to_silver": "failed", "silver_to_gold": "upstream_failed",
                          "gold_to_snowflake": "upstream_failed"})]


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


def config_for(tmp_path, standin):
    path = tmp_path / "m7etl.toml"
    path.write_text(f'[test.endpoints]\nmwaa = "{standin.endpoint}"\n'
                    f'mwaa_web = "{standin.endpoint}"\n', encoding="utf-8")
    return path


def trigger(config, *args: str):
    return CliRunner().invoke(cli, ["trigger", "--config", str(config), "--poll-interval", "0",
                                    *args])


def routes_for(standin, via="auto"):
    clients = Clients(region="eu-west-1", endpoints={"mwaa": standin.endpoint})
    return connect(clients, ENV, via, web_url=standin.endpoint)


# -- the request, as data ------------------------------------------------------------------
def test_run_id_and_conf():
    at = datetime(2025, 5, 2, 3, 4, 5, tzinfo=UTC)
    assert manual_run_id("20250501", at) == "manual_20250501_20250502T030405Z"
    assert manual_run_id(None, at) == "manual_20250502T030405Z"
    assert manual_conf("20250501") == {"date": "20250501", "trigger": "cli"}
    assert manual_conf(None) == {"trigger": "cli"}


@pytest.mark.parametrize("day", ["2025-05-01", "20250532", "2025051", "today"])
def test_a_bad_date_is_refused(day):
    with pytest.raises(DeployError) as info:
        check_day(day)
    assert str(info.value) == f"--date {day!r} is not a date as YYYYMMDD. Write it like --date 20250501."


def test_paths_fit_invoke_rest_api():
    run_id = "manual_20250501_20250502T030405Z"
    assert len(f"/dags/{DAG}/dagRuns/{run_id}") == 62  # the run itself: a GET fits
    assert task_instances_request(DAG, run_id) == (
        "POST", "/dags/~/dagRuns/~/taskInstances/list", {"dag_ids": [DAG], "dag_run_ids": [run_id]})
    assert task_instances_request("d", "r1") == ("GET", "/dags/d/dagRuns/r1/taskInstances", None)
    with pytest.raises(RouteUnavailable, match="the path is 65 characters and MWAA takes at most 64"):
        rest_request(ENV, "GET", "/" + "x" * 64)


def test_answers_of_both_routes_are_read_alike():
    log = "[2025-05-01T00:00:00.000+0000] {providers_manager.py:953} INFO - The hook_class ..."
    rows = [{"task_id": "plan", "state": "success", "map_index": ""},
            {"task_id": "raw_to_silver", "state": "running", "map_index": "0"},
            {"task_id": "raw_to_silver", "state": None, "map_index": "1"}]
    assert json_rows(f"{log}\n{json.dumps(rows)}\n") == rows
    assert json_rows("No data found\n") == []
    assert tasks_of(rows) == {"plan": "success", "raw_to_silver[0]": "running",
                              "raw_to_silver[1]": None}
    assert tasks_of([{"task_id": "plan", "state": "queued", "map_index": -1},
                     {"task_id": "raw_to_silver", "state": "success", "map_index": 0}]) == {
        "plan": "queued", "raw_to_silver[0]": "success"}


# -- starting a run ------------------------------------------------------------------------
def test_cli_token_route_sends_the_guides_command(tmp_path, standin):
    result = trigger(config_for(tmp_path, standin), "--date", "20250501", "--via", "cli-token",
                     "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["trigger"]
    run_id = doc["dag_run_id"]
    assert run_id.startswith("manual_20250501_") and doc["route"] == "cli-token"
    (cli_call,) = standin.of_kind("cli")
    assert cli_call.body == (f"dags trigger {DAG} --run-id {run_id} --conf "
                             "'{\"date\":\"20250501\",\"trigger\":\"cli\"}'")
    assert standin.runs[(DAG, run_id)]["conf"] == {"date": "20250501", "trigger": "cli"}
    assert f"Started {DAG} run {run_id} on {ENV} via cli-token" in result.stderr


def test_rest_route_posts_a_null_logical_date(tmp_path, standin):
    result = trigger(config_for(tmp_path, standin), "--date", "20250501", "--via", "rest-api")
    assert result.exit_code == 0, result.output
    (call,) = standin.of_kind("invoke_rest_api")
    assert call.body["Method"] == "POST" and call.body["Path"] == f"/dags/{DAG}/dagRuns"
    body = call.body["Body"]
    assert "logical_date" in body and body["logical_date"] is None
    assert body["conf"] == {"date": "20250501", "trigger": "cli"}
    assert body["dag_run_id"].startswith("manual_20250501_")
    assert standin.of_kind("cli") == []


def test_without_a_date_the_conf_has_none(tmp_path, standin):
    result = trigger(config_for(tmp_path, standin), "--via", "rest-api")
    assert result.exit_code == 0, result.output
    ((_dag, run_id), run), = standin.runs.items()
    assert run["conf"] == {"trigger": "cli"} and run_id.startswith("manual_2")


def test_a_taken_id_waits_for_the_next_second(standin):
    config = load_env("test", search=False)
    first = datetime(2025, 5, 2, 3, 4, 5, 250_000, tzinfo=UTC)
    clock = iter([first, first.replace(second=6)])
    standin.start_run(DAG, "manual_20250501_20250502T030405Z", {}, None)  # another call's
    slept = []
    report = trigger_run(config, routes_for(standin, "rest-api"), day="20250501",
                         now=lambda: next(clock), sleep=slept.append)
    assert (report.dag_run_id, report.status) == ("manual_20250501_20250502T030406Z", "triggered")
    assert slept == [0.75]


def test_bad_date_sends_nothing(tmp_path, standin):
    result = trigger(config_for(tmp_path, standin), "--date", "2025-05-01")
    assert (result.exit_code, result.stderr) == (
        1, "Error: --date '2025-05-01' is not a date as YYYYMMDD. Write it like --date 20250501.\n")
    assert standin.requests == []


def test_a_refused_cli_route_falls_back_to_rest(tmp_path, standin):
    standin.cli_mode = "forbidden"
    result = trigger(config_for(tmp_path, standin), "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["trigger"]
    assert doc["route"] == "rest-api" and doc["fallback_reason"].startswith(
        f"cli-token: The Airflow CLI endpoint of {ENV} answered HTTP 403")
    assert len(standin.runs) == 1


def test_an_unknown_dag_says_to_upload_it(tmp_path, standin):
    standin.dags = set()
    result = trigger(config_for(tmp_path, standin), "--via", "rest-api")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: MWAA environment {ENV} has no DAG {DAG} (Airflow "
                                    f"answered 404: DAG with dag_id: '{DAG}' not found). Upload "
                                    "the DAG file to dags/")


# -- following it --------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["rest-api", "cli-token"])
def test_wait_prints_each_change_and_exits_0_on_success(tmp_path, standin, via):
    standin.progress = TO_SUCCESS
    standin.cli_warnings = True  # the real CLI's graphviz UserWarning on stderr: not a failure
    result = trigger(config_for(tmp_path, standin), "--date", "20250501", "--wait", "--via", via)
    assert result.exit_code == 0, result.output
    changes = [m.group(1) for line in result.stdout.splitlines()
               if (m := re.fullmatch(r"\d\d:\d\d:\d\d \+\d+s  (.+)", line))]
    assert changes == ["run: running", "raw_to_silver: running", "raw_to_silver: running -> success",
                       "silver_to_gold: running", "run: running -> success",
                       "silver_to_gold: running -> success", "gold_to_snowflake: success"]
    assert "succeeded after" in result.stdout


def test_wait_exits_2_naming_the_failed_task(tmp_path, standin):
    standin.progress = TO_FAILURE
    result = trigger(config_for(tmp_path, standin), "--wait", "--via", "cli-token",
                     "--output", "json")
    assert result.exit_code == 2
    run = json.loads(result.stdout)["run"]
    assert (run["state"], run["failed_tasks"], run["not_run"]) == (
        "failed", ["raw_to_silver"], ["gold_to_snowflake", "silver_to_gold"])
    assert (f"Run {run['dag_run_id']} failed after 0 s; failed: raw_to_silver; not run: "
            "gold_to_snowflake, silver_to_gold.") in result.stderr


def test_follow_watches_an_existing_run(tmp_path, standin):
    standin.start_run(DAG, "s3_20250501_abc", {"date": "20250501"}, None)
    standin.progress = TO_SUCCESS
    result = trigger(config_for(tmp_path, standin), "--follow", "s3_20250501_abc")
    assert result.exit_code == 0, result.output
    assert [r.body for r in standin.of_kind("cli")][:2] == [
        f"dags list-runs {DAG} -o json", f"tasks states-for-dag-run {DAG} s3_20250501_abc -o json"]
    assert len(standin.runs) == 1  # nothing started


def test_following_an_unknown_run_says_so(tmp_path, standin):
    result = trigger(config_for(tmp_path, standin), "--follow", "nope", "--via", "rest-api")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: Airflow on {ENV} has no run nope of {DAG} (The DagRun with "
                             f"dag_id: `{DAG}` and run_id: `nope` was not found). Check the run "
                             "id (the Airflow UI's Runs page lists them).\n")


def test_the_timeout_says_how_to_look_again(standin):
    standin.start_run(DAG, "r1", {}, None)  # stays queued: no progress
    ticks = iter(range(0, 1000, 10))
    with pytest.raises(DeployError) as info:
        follow_run(load_env("test", search=False), routes_for(standin, "rest-api"), "r1",
                   timeout=30, poll=10, clock=lambda: next(ticks), sleep=lambda _s: None)
    assert str(info.value) == (f"Run r1 of {DAG} on {ENV} is still queued after 30 s; it goes on "
                               "in Airflow. Watch it again with: m7etl trigger --env test "
                               "--follow r1")


def test_ctrl_c_stops_watching_and_says_how_to_look_again(tmp_path, standin, monkeypatch):
    def interrupted(_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "_sleep", interrupted)
    result = trigger(config_for(tmp_path, standin), "--wait", "--via", "rest-api")
    assert result.exit_code == 130
    ((_dag, run_id), _run), = standin.runs.items()
    assert result.stdout.splitlines()[-1] == (
        f"Stopped watching {run_id}; the run goes on in Airflow. Watch it again with: "
        f"m7etl trigger --env test --follow {run_id}")


# -- the real Airflow CLI ------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_followed_through_the_real_airflow_cli(tmp_path, airflow_template, aws_env):
    template, dags = airflow_template
    home = clone_airflow_home(template, tmp_path / "airflow")
    standin = MwaaStandin(env_name=ENV, airflow_home=home, dags_folder=dags).start()
    standin.progress = [TO_FAILURE[0], ("success", {"raw_to_silver": "success",
                                                    "silver_to_gold": "success",
                                                    "gold_to_snowflake": "success"})]
    try:
        result = trigger(config_for(tmp_path, standin), "--date", "20250501", "--wait",
                         "--via", "cli-token", "--output", "json")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        run_id = doc["trigger"]["dag_run_id"]
        assert doc["trigger"]["state"] == "queued"  # Airflow's own answer to dags trigger
        assert doc["run"]["tasks"] == {"raw_to_silver": "success", "silver_to_gold": "success",
                                       "gold_to_snowflake": "success"}
        state = run_airflow(["dags", "state", DAG, run_id], home, dags).stdout.splitlines()[-1]
        assert state == 'success, {"date": "20250501", "trigger": "cli"}'
    finally:
        standin.stop()
