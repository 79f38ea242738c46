"""``m7etl status``: the stack, MWAA, the DAG's last runs and the latest execution log.

Against the moto server and the MWAA stand-in (conftest.py's ``flow``: a stack deployed by
the real ``m7etl deploy`` from tests/deploy/templates/flow.yaml). A stack "in progress" is
moto's stack set back to UPDATE_IN_PROGRESS that moves one step each time someone reads it
(DescribeStacks), as the MWAA stand-in's runs move when looked at: ``--follow`` is followed
to the end without a clock.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import botocore.session
import pytest

DAG = "m7_etl_pipeline"
TOTALS = {"files": 3, "rows_read": 12500, "rows_valid": 12400, "rows_rejected": 100,
          "rows_warned": 7, "files_ok": 2, "files_failed_threshold": 1, "files_quarantined": 0,
          "files_warning": 1}
TAKEN = ("The requested bucket name is not available. The bucket namespace is shared by all "
         "users of the system. Please select a different name and try again")


def status(flow, *args: str):
    return flow.run("status", "--poll-seconds", "0.01", *args)


def put_log(flow, day: str, status: str, finished: str, totals: dict) -> None:
    log = {"version": 1, "run_id": f"s3_{day}_a1", "day": day, "status": status,
           "started_at": f"{finished[:10]}T06:00:00+00:00", "finished_at": finished,
           "parameters": {}, "totals": totals, "files": [], "gold": []}
    flow.client("s3").put_object(Bucket=flow.data_bucket, Key=f"logs/pipeline_execution_{day}.json",
                                 Body=json.dumps(log).encode())


@pytest.fixture
def deployed(flow):
    result = flow.deploy("--yes", "--skip-preflight")
    assert result.exit_code == 0, result.output
    flow.standin.requests.clear()
    return flow


def failed_stack(flow):
    """A first creation that fails (the template's named bucket is taken) and rolls back."""
    flow.client("s3").create_bucket(Bucket=f"m7-etl-scratch-{flow.name}",
                                    CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    result = flow.deploy("--yes", "--skip-preflight")
    assert result.exit_code == 2, result.output
    assert flow.describe()["StackStatus"] == "ROLLBACK_COMPLETE"
    return flow


# =============================================================================================
# Before, during and after a first deployment
# =============================================================================================
def test_no_stack_yet_says_to_run_deploy_and_exits_0(flow):
    result = status(flow)
    assert result.exit_code == 0, result.output
    out = flow.lines(result.output)
    assert out[:2] == [f"Environment {flow.name}",
                       f"Stack {flow.stack} does not exist yet: run 'm7etl deploy --env "
                       f"{flow.name}' to create it."]
    assert f"Execution log: No execution log in s3://{flow.data_bucket}/logs/ yet." in out
    doc = json.loads(status(flow, "--output", "json").stdout)
    assert doc["stack"] == {"data": None, "problem": out[1]}
    assert doc["events"] == {"data": None, "problem": None}


def test_a_complete_stack_with_mwaa_runs_and_the_latest_log(deployed):
    flow = deployed
    for run_id, state in (("s3_20250501_old", "failed"), ("s3_20250502_new", "success")):
        flow.standin.start_run(DAG, run_id, {}, None)
        flow.standin.settle(DAG, run_id, state, dict.fromkeys(flow.standin.tasks, state))
    put_log(flow, "20250501", "ok", "2025-05-01T06:12:00+00:00", {**TOTALS, "files": 9})
    put_log(flow, "20250502", "warning", "2025-05-02T06:10:00+00:00", TOTALS)
    flow.client("s3").put_object(Bucket=flow.data_bucket, Body=b"{}",
                                 Key="logs/pipeline_execution_20250503.json.tmp")  # not a log
    result = status(flow)
    assert result.exit_code == 0, result.output
    out = flow.lines(result.output)
    assert out[1].startswith(f"Stack {flow.stack}: CREATE_COMPLETE (last change 20")
    assert f"Airflow UI: https://{flow.name}.airflow.example.com" in out
    assert f"S3EventLambdaFunctionArn | arn:aws:lambda:eu-west-1:123456789012:function:" \
           f"m7-etl-s3-event-{flow.name}" in out
    assert "Last stack events" not in out  # a complete stack: no events
    assert f"MWAA {flow.mwaa}: AVAILABLE (Airflow 3.0.6)" in out
    runs = out[out.index("Last DAG runs") + 2:out.index("Last DAG runs") + 4]
    assert [row.split(" | ")[:2] for row in runs] == [["s3_20250502_new", "success"],
                                                     ["s3_20250501_old", "failed"]]
    assert all(len(row.split(" | ")) == 4 for row in runs)  # with their start and end
    assert ("Execution log logs/pipeline_execution_20250502.json: day 20250502, status warning, "
            "finished 2025-05-02T06:10:00+00:00") in out
    at = out.index("files | rows_read | rows_valid | rows_rejected | rows_warned | files_ok | "
                   "files_failed_threshold | files_quarantined")
    assert out[at + 1] == "3 | 12,500 | 12,400 | 100 | 7 | 2 | 1 | 0"
    # MWAA asked through the CLI token and the stand-in's web server (mwaa_web), as
    # set-variables does: no detour through InvokeRestApi
    assert [r.kind for r in flow.standin.requests] == ["get_environment", "create_cli_token", "cli"]
    assert flow.standin.requests[-1].body == f"dags list-runs {DAG} -o json"


def test_json_output_is_one_document(deployed):
    flow = deployed
    put_log(flow, "20250502", "warning", "2025-05-02T06:10:00+00:00", TOTALS)
    result = status(flow, "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # the whole of stdout: one document
    assert set(doc) == {"environment", "stack_name", "stack", "events", "mwaa", "runs", "log"}
    assert (doc["environment"], doc["stack_name"]) == (flow.name, flow.stack)
    assert doc["stack"]["data"]["status"] == "CREATE_COMPLETE"
    assert doc["stack"]["data"]["outputs"]["AirflowWebUIUrl"] == f"https://{flow.name}.airflow.example.com"
    assert doc["mwaa"]["data"]["state"] == "AVAILABLE"
    assert doc["runs"] == {"data": [], "problem": None}
    assert (doc["log"]["data"]["key"], doc["log"]["data"]["totals"]) == (
        "logs/pipeline_execution_20250502.json", TOTALS)
    assert result.stderr == ""


def test_a_rolled_back_stack_shows_its_last_events_the_cause_and_exits_2(flow):
    failed_stack(flow)
    result = status(flow)
    assert result.exit_code == 2, result.output
    out = flow.lines(result.output)
    assert out[1].startswith(f"Stack {flow.stack}: ROLLBACK_COMPLETE (last change 20")
    at = out.index("Last stack events")
    assert out[at + 1] == "time | logical id | type | status | reason"
    rows = out[at + 2:at + 10]
    assert [row.split(" | ")[1:4] for row in rows[:2]] == [
        [flow.stack, "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE"],
        ["ScratchBucket", "AWS::S3::Bucket", "DELETE_COMPLETE"]]
    # the rollback's deletions push the cause out of the last 8 events: it is shown apart
    assert not any("CREATE_FAILED" in row for row in rows)
    assert out[at + 10:at + 13] == [
        "Failed resources (causes first):",
        f"ScratchBucket (AWS::S3::Bucket) CREATE_FAILED: {TAKEN}",
        f"Fix the cause above, then run 'm7etl deploy --env {flow.name} --recreate'."]
    doc = json.loads(status(flow, "--output", "json").stdout)
    assert doc["stack"]["data"]["failures"] == [{"logical_id": "ScratchBucket",
                                                 "resource_type": "AWS::S3::Bucket",
                                                 "status": "CREATE_FAILED", "reason": TAKEN}]
    assert len(doc["events"]["data"]) == 8


def test_a_create_change_set_never_executed_is_not_followed_nor_a_failure(flow):
    """REVIEW_IN_PROGRESS never ends by itself: --follow would wait for nothing."""
    flow.client("cloudformation").create_change_set(
        StackName=flow.stack, ChangeSetName="abandoned", ChangeSetType="CREATE",
        TemplateBody=json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}))
    result = status(flow, "--follow", "--wait-minutes", "1")
    assert result.exit_code == 0, result.output
    out = flow.lines(result.output)
    assert out[1].startswith(f"Stack {flow.stack}: REVIEW_IN_PROGRESS")
    assert not any(line.startswith("Following stack") for line in out)
    assert (f"A CREATE change set was made and never executed (the stack has no resources): run "
            f"'m7etl deploy --env {flow.name}' to start over.") in out


# =============================================================================================
# --follow
# =============================================================================================
def _moving(flow, monkeypatch, steps: list[tuple[str, str | None, str | None]]) -> list:
    """Put the deployed stack back in UPDATE_IN_PROGRESS; each DescribeStacks of it but the
    first applies the next step (logical id or None for the stack, status, reason). The
    reads so far are returned: clear them to start counting again."""
    from moto.cloudformation.models import CloudFormationBackend, Event, cloudformation_backends

    backend = cloudformation_backends["123456789012"]["eu-west-1"]
    stack = next(s for s in backend.stacks.values() if s.name == flow.stack)
    stack.status = "UPDATE_IN_PROGRESS"
    stack._add_stack_event("UPDATE_IN_PROGRESS", "User Initiated")
    original, reads = CloudFormationBackend.describe_stacks, []

    def describe_stacks(self, name_or_stack_id):
        if name_or_stack_id in (stack.name, stack.stack_id):
            reads.append(name_or_stack_id)
            if len(reads) > 1 and steps:
                logical_id, status, reason = steps.pop(0)
                if logical_id is None:
                    stack.status = status
                    stack._add_stack_event(status, reason)
                else:
                    stack.events.append(Event(stack.stack_id, stack.name, logical_id, logical_id,
                                              "AWS::SSM::Parameter", status, reason, None))
        return original(self, name_or_stack_id)

    monkeypatch.setattr(CloudFormationBackend, "describe_stacks", describe_stacks)
    return reads


def _event_lines(out: list[str]) -> list[tuple[str, str]]:
    """(logical id, status) of the lines the event printer wrote: 'HH:MM:SS id type STATUS'."""
    return [(w[1], w[3]) for w in (line.split() for line in out)
            if len(w) > 3 and w[0].count(":") == 2 and w[3].isupper() and "_" in w[3]]


def test_follow_prints_the_events_of_a_stack_in_progress_until_it_completes(deployed, monkeypatch):
    flow = deployed
    reads = _moving(flow, monkeypatch, [("RawToSilverVersion", "UPDATE_IN_PROGRESS", None),
                                        ("RawToSilverVersion", "UPDATE_COMPLETE", None),
                                        (None, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None),
                                        (None, "UPDATE_COMPLETE", None)])
    before = status(flow)  # without --follow: where it stands, and how to follow it
    assert before.exit_code == 0, before.output
    assert flow.lines(before.output)[1].startswith(f"Stack {flow.stack}: UPDATE_IN_PROGRESS")
    assert f"Follow it with 'm7etl status --env {flow.name} --follow'." in flow.lines(before.output)
    reads.clear()  # the next read is the first again: the stack moves from the one after
    result = status(flow, "--follow")
    assert result.exit_code == 0, result.output
    out = flow.lines(result.output)
    assert out[0] == (f"Following stack {flow.stack} (UPDATE_IN_PROGRESS); Ctrl-C stops watching, "
                      "not the deployment:")
    assert _event_lines(out) == [("RawToSilverVersion", "UPDATE_IN_PROGRESS"),
                                 ("RawToSilverVersion", "UPDATE_COMPLETE"),
                                 (flow.stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
                                 (flow.stack, "UPDATE_COMPLETE")]
    assert any(line.startswith(f"Stack {flow.stack}: UPDATE_COMPLETE (last change") for line in out)
    assert flow.describe()["StackStatus"] == "UPDATE_COMPLETE"


def test_follow_to_a_rollback_shows_the_failure_and_exits_2(deployed, monkeypatch):
    flow = deployed
    reason = "Parameter value v: is invalid"
    _moving(flow, monkeypatch, [("RawToSilverVersion", "UPDATE_IN_PROGRESS", None),
                                ("RawToSilverVersion", "UPDATE_FAILED", reason),
                                (None, "UPDATE_ROLLBACK_IN_PROGRESS", "The following resource(s) "
                                 "failed to update: [RawToSilverVersion]."),
                                ("RawToSilverVersion", "UPDATE_COMPLETE", None),
                                (None, "UPDATE_ROLLBACK_COMPLETE", None)])
    result = status(flow, "--follow", "--output", "json")
    assert result.exit_code == 2, result.output
    assert ("RawToSilverVersion", "UPDATE_FAILED") in _event_lines(flow.lines(result.stderr))
    doc = json.loads(result.stdout)
    assert doc["stack"]["data"]["status"] == "UPDATE_ROLLBACK_COMPLETE"
    assert doc["stack"]["data"]["failures"] == [{"logical_id": "RawToSilverVersion",
                                                 "resource_type": "AWS::SSM::Parameter",
                                                 "status": "UPDATE_FAILED", "reason": reason}]
    assert doc["stack"]["data"]["next_step"] == "Fix the cause above, then deploy again."


# =============================================================================================
# MWAA's state, from the stand-in's GetEnvironment
# =============================================================================================
def test_the_standins_get_environment_is_botocores_model(flow):
    model = botocore.session.get_session().get_service_model("mwaa")
    shape = model.operation_model("GetEnvironment").output_shape.members["Environment"]
    request = urllib.request.Request(f"{flow.standin.endpoint}/environments/{flow.mwaa}",
                                     headers={"Authorization": "AWS4-HMAC-SHA256 Credential=x"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        raw = json.loads(answer.read())["Environment"]  # botocore would drop unknown keys
    assert set(raw) <= set(shape.members)
    assert raw["Status"] in shape.members["Status"].enum
    assert set(raw["LastUpdate"]) <= set(shape.members["LastUpdate"].members)
    assert raw["LastUpdate"]["Status"] in shape.members["LastUpdate"].members["Status"].enum
    mwaa = flow.standin.client()
    env = mwaa.get_environment(Name=flow.mwaa)["Environment"]
    assert (env["Name"], env["Status"], env["AirflowVersion"], env["WebserverUrl"]) == (
        flow.mwaa, "AVAILABLE", "3.0.6", flow.standin.host)
    with pytest.raises(mwaa.exceptions.ResourceNotFoundException,
                       match="Environment m7-etl-mwaa-other not found"):
        mwaa.get_environment(Name="m7-etl-mwaa-other")
    unsigned = urllib.request.Request(f"{flow.standin.endpoint}/environments/{flow.mwaa}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=5)
    assert (refused.value.code, refused.value.headers["x-amzn-ErrorType"]) == (
        403, "AccessDeniedException")


def test_a_failed_mwaa_update_is_shown_with_its_error(deployed):
    flow = deployed
    flow.standin.env_status = "UPDATE_FAILED"
    flow.standin.env_last_update = {"Status": "FAILED", "Error": {
        "ErrorCode": "INCORRECT_CONFIGURATION", "ErrorMessage": "requirements.txt failed to install"}}
    result = status(flow)
    assert result.exit_code == 0, result.output  # exit 2 is for the stack's failures
    assert (f"MWAA {flow.mwaa}: UPDATE_FAILED (Airflow 3.0.6) - last update FAILED: "
            "requirements.txt failed to install") in flow.lines(result.output)


def test_an_environment_mwaa_does_not_know_is_said_in_its_place(deployed, tmp_path):
    flow = deployed
    config = tmp_path / "other.toml"
    config.write_text(flow.config.read_text().replace(
        f'code_bucket = "{flow.code_bucket}"\n',
        f'code_bucket = "{flow.code_bucket}"\nmwaa_environment = "m7-etl-mwaa-other"\n'),
        encoding="utf-8")
    result = flow.run("status", config=config)
    assert result.exit_code == 0, result.output
    out = flow.lines(result.output)
    assert "MWAA: Environment m7-etl-mwaa-other does not exist (yet)." in out
    assert "DAG runs: No MWAA environment to ask." in out
    assert out[1].startswith(f"Stack {flow.stack}: CREATE_COMPLETE")  # the other parts are shown
