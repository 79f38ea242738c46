"""The full ``m7etl deploy``: the guide's steps 1 to 5 in one command, end to end.

Against the moto server (the stack's change sets executed like CloudFormation, see
conftest.py) and the MWAA stand-in (emulated CLI route), on a fake checkout in tmp_path
whose template is tests/deploy/templates/flow.yaml: the version parameters, the S3-event
function made from the uploaded zip with its S3 permission, the outputs. Run with
``--skip-build`` (build/ holds small files). The stack part alone (change sets, events,
rollbacks, the password prompt) is tests/deploy/test_deploy_cli.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time

import pytest

from m7etl.deploy.upload import SOURCES

# The object each version parameter pins (the guide's layout), and its SSM stand-in.
PINNED = {"RawToSilverCodeVersion": ("lambda/raw_to_silver.zip", "raw-to-silver"),
          "SilverToGoldCodeVersion": ("lambda/silver_to_gold.zip", "silver-to-gold"),
          "S3EventCodeVersion": ("lambda/s3_event.zip", "s3-event"),
          "MaintenanceCodeVersion": ("lambda/maintenance.zip", "maintenance"),
          "LayerCodeVersion": ("layers/etl-dependencies.zip", "layer"),
          "RequirementsVersion": ("requirements/requirements.txt", "requirements")}
GUIDE_VARIABLES = ("environment", "max_days_back", "error_threshold", "warning_threshold")
FILES = len(SOURCES)  # the checkout conftest makes has one file per object of the layout


def function_arn(flow) -> str:
    return f"arn:aws:lambda:eu-west-1:123456789012:function:m7-etl-s3-event-{flow.name}"


def our_rules(flow) -> list[tuple]:
    """The bucket's Lambda rules as (id, function, events, {prefix, suffix})."""
    return [(r["Id"], r["LambdaFunctionArn"], r["Events"],
             {f["Name"].lower(): f["Value"] for f in r["Filter"]["Key"]["FilterRules"]})
            for r in flow.notifications().get("LambdaFunctionConfigurations", [])]


def expected_rules(flow) -> list[tuple]:
    arn = function_arn(flow)
    return [("m7etl-landing-csv", arn, ["s3:ObjectCreated:*"], {"prefix": "landing/", "suffix": ".csv"}),
            ("m7etl-landing-csv-gz", arn, ["s3:ObjectCreated:*"],
             {"prefix": "landing/", "suffix": ".csv.gz"})]


def cli_commands(flow) -> list[str]:
    return [r.body for r in flow.standin.of_kind("cli")]


def flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def checkout_bytes(flow) -> int:
    return sum(p.stat().st_size for p in flow.root.rglob("*") if p.is_file()
               and p.name != "m7etl.toml")


# =============================================================================================
# One command: upload, stack, variables, notifications
# =============================================================================================
def test_a_first_deploy_uploads_creates_the_stack_sets_the_variables_and_the_trigger(flow):
    result = flow.deploy("--yes", "--skip-preflight")
    assert result.exit_code == 0, result.output
    out = flow.lines(result.output)
    total = checkout_bytes(flow)
    assert 1000 <= total < 1_000_000  # shown in kB
    assert f"Uploaded {FILES} file(s), {total / 1000:.1f} kB; skipped 0 unchanged" in out
    # the stack pins the versions S3 gave the upload
    latest = flow.latest_versions()
    assert len(latest) == FILES
    parameters = flow.parameters()
    assert {p: parameters[p] for p in PINNED} == {p: latest[key] for p, (key, _) in PINNED.items()}
    ssm = flow.client("ssm")
    for parameter, (_, name) in PINNED.items():
        stored = ssm.get_parameter(Name=f"/m7etl/{flow.name}/versions/{name}")["Parameter"]["Value"]
        assert stored == f"v:{latest[PINNED[parameter][0]]}"
    # the S3-event function holds the uploaded zip, and lets the data bucket invoke it
    function = flow.client("lambda").get_function(FunctionName=f"m7-etl-s3-event-{flow.name}")
    zipped = (flow.root / "build" / "s3_event.zip").read_bytes()
    assert function["Configuration"]["CodeSha256"] == base64.b64encode(
        hashlib.sha256(zipped).digest()).decode()
    assert flow.outputs()["S3EventLambdaFunctionArn"] == function_arn(flow)
    assert f"Stack {flow.stack} created." in out
    # step 4.2: the variables, in the stand-in's Airflow; step 5: the notifications
    assert flow.standin.variables == {"environment": flow.name, "max_days_back": "3",
                                      "error_threshold": "5.0", "warning_threshold": "10.0"}
    assert (f"{flow.mwaa} via cli-token: environment created, max_days_back created, "
            "error_threshold created, warning_threshold created.") in out
    assert our_rules(flow) == expected_rules(flow)
    assert f"Bucket {flow.data_bucket}: 2 rule(s) added." in out
    assert re.fullmatch(rf"Deployed {flow.name} in \d+\.\d s: {FILES} file\(s\) uploaded "
                        rf"\({total / 1000:.1f} kB\), 0 unchanged; stack created\.", out[-1]), out[-1]


def test_a_second_identical_deploy_uploads_0_bytes_executes_no_change_set_and_says_so(flow):
    assert flow.deploy("--yes", "--skip-preflight").exit_code == 0
    stack, change_sets = flow.describe(), flow.change_sets()
    assert [s["ExecutionStatus"] for s in change_sets] == ["EXECUTE_COMPLETE"]  # the create's
    events = flow.client("cloudformation").describe_stack_events(StackName=flow.stack)["StackEvents"]
    versions = flow.client("s3").list_object_versions(Bucket=flow.code_bucket)["Versions"]
    rules = flow.notifications()
    flow.standin.requests.clear()
    started = time.perf_counter()
    result = flow.deploy("--yes", "--skip-preflight")
    elapsed = time.perf_counter() - started
    print(f"\nsecond identical deploy: {elapsed:.2f} s wall time")  # for the record, not asserted
    assert result.exit_code == 0, result.output
    out = flow.lines(result.output)
    assert f"Uploaded 0 file(s), 0 B; skipped {FILES} unchanged" in out
    assert f"No changes: stack {flow.stack} is up to date (the empty change set was deleted)." in out
    assert "Executing change set" not in result.output
    after = flow.describe()
    assert (after["StackStatus"], after.get("LastUpdatedTime")) == ("CREATE_COMPLETE",
                                                                    stack.get("LastUpdatedTime"))
    assert flow.change_sets() == change_sets  # the first deploy's, executed; no new one
    assert flow.client("cloudformation").describe_stack_events(
        StackName=flow.stack)["StackEvents"] == events
    assert flow.client("s3").list_object_versions(Bucket=flow.code_bucket)["Versions"] == versions
    assert cli_commands(flow) == [f"variables get {k}" for k in GUIDE_VARIABLES]  # no set
    assert (f"{flow.mwaa} via cli-token: nothing changed; already set: environment, "
            "max_days_back, error_threshold, warning_threshold.") in out
    assert flow.notifications() == rules
    assert (f"Bucket {flow.data_bucket}: already configured (landing/*.csv and landing/*.csv.gz "
            "to the S3-event function); nothing written.") in out
    assert re.fullmatch(rf"Deployed {flow.name} in \d+\.\d s: 0 file\(s\) uploaded \(0 B\), "
                        rf"{FILES} unchanged; stack unchanged \(no change set executed\)\.", out[-1])


def test_one_changed_artefact_changes_only_its_version_parameter(flow):
    assert flow.deploy("--yes", "--skip-preflight").exit_code == 0
    before = flow.parameters()
    flip_a_byte(flow.root / "build" / "raw_to_silver.zip")
    result = flow.deploy("--yes", "--skip-preflight", "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    new = flow.latest_versions()["lambda/raw_to_silver.zip"]
    assert new != before["RawToSilverCodeVersion"]
    assert [o["key"] for o in doc["upload"]["objects"] if o["action"] == "uploaded"] == [
        "lambda/raw_to_silver.zip"]
    assert (doc["change_set_type"], doc["executed"], doc["outcome"]) == ("UPDATE", True, "updated")
    assert [p for p in doc["parameters"] if not p["secret"]] == [
        {"name": "RawToSilverCodeVersion", "old": before["RawToSilverCodeVersion"], "new": new,
         "secret": False}]
    after = flow.parameters()
    assert {k for k in after if after[k] != before[k]} == {"RawToSilverCodeVersion"}
    assert after["RawToSilverCodeVersion"] == new
    # the change set executed carried the new version and only that (moto lists no resource
    # change for an UPDATE nor updates the SSM parameter: CloudFormation would Modify it)
    cf = flow.client("cloudformation")
    sent = [{p["ParameterKey"]: p.get("ParameterValue") for p in cf.describe_change_set(
        ChangeSetName=s["ChangeSetName"], StackName=flow.stack)["Parameters"]}
        for s in sorted(flow.change_sets(), key=lambda s: s["CreationTime"])]
    assert len(sent) == 2
    assert {k for k in sent[1] if sent[1][k] != sent[0].get(k)} == {"RawToSilverCodeVersion"}


# =============================================================================================
# Stopping early: the preflight, a dry run, a step after the stack
# =============================================================================================
def test_a_failed_preflight_stops_before_anything_is_uploaded_and_exits_2(flow):
    """moto's code bucket has no public access block and there are no VPC exports: the
    doctor fails, and the code bucket, which the upload could have written, stays empty."""
    result = flow.deploy("--yes")
    assert result.exit_code == 2, result.output
    out = flow.lines(result.stdout)
    assert (f"fail code-bucket-public-access {flow.code_bucket} has no public access block (MWAA "
            f"requires one). Fix: aws s3api put-public-access-block --bucket {flow.code_bucket} "
            "--public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,"
            "BlockPublicPolicy=true,RestrictPublicBuckets=true") in out
    assert any(line.startswith("fail network CloudFormation export(s) VPC, PrivateSubnet1, "
                               "PrivateSubnet2 not found in eu-west-1.") for line in out)
    assert result.stderr.strip().splitlines()[-1] == (
        f"Preflight failed: nothing was uploaded or deployed. Fix the checks above (m7etl doctor "
        f"--env {flow.name} runs them alone), or pass --skip-preflight.")
    assert "Versions" not in flow.client("s3").list_object_versions(Bucket=flow.code_bucket)
    with pytest.raises(flow.client("cloudformation").exceptions.ClientError, match="does not exist"):
        flow.describe()
    assert flow.standin.requests == []  # no stack yet: the doctor does not ask MWAA either


def test_a_missing_code_bucket_fails_the_preflight_naming_it(flow, tmp_path):
    missing = f"m7-code-missing-{flow.name}"
    config = tmp_path / "missing.toml"
    config.write_text(flow.config.read_text().replace(f'"{flow.code_bucket}"', f'"{missing}"'),
                      encoding="utf-8")
    result = flow.deploy("--yes", config=config)
    assert result.exit_code == 2, result.output
    out = flow.lines(result.stdout)
    assert (f"fail code-bucket bucket {missing} does not exist. Fix: Create it (aws s3 mb "
            f"s3://{missing} --region eu-west-1: a prerequisite of the guide) or set code_bucket "
            "in m7etl.toml.") in out
    assert "skip code-bucket-versioning needs the code bucket" in out
    assert result.stderr.strip().splitlines()[-1].startswith("Preflight failed: nothing was "
                                                             "uploaded or deployed.")
    s3 = flow.client("s3")
    assert missing not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "Versions" not in s3.list_object_versions(Bucket=flow.code_bucket)  # the real one
    assert s3.list_objects_v2(Bucket=flow.data_bucket)["KeyCount"] == 0


def test_dry_run_uploads_but_leaves_the_stack_variables_and_notifications_alone(flow):
    result = flow.deploy("--dry-run", "--skip-preflight")
    assert result.exit_code == 0, result.output
    assert len(flow.latest_versions()) == FILES  # the upload ran: the change set pins them
    out = flow.lines(result.output)
    assert out[-1].startswith("Dry run: change set m7etl-")
    assert out[-1].endswith(f"deleted; stack {flow.stack} unchanged.")
    with pytest.raises(flow.client("cloudformation").exceptions.ClientError, match="does not exist"):
        flow.describe()
    assert (flow.standin.requests, flow.standin.variables, flow.notifications()) == ([], {}, {})
    # and on an existing stack: the new version is shown, not applied
    assert flow.deploy("--yes", "--skip-preflight").exit_code == 0
    before, rules = flow.describe(), flow.notifications()
    flow.standin.requests.clear()
    flip_a_byte(flow.root / "build" / "maintenance.zip")
    result = flow.deploy("--dry-run", "--skip-preflight")
    assert result.exit_code == 0, result.output
    new = flow.latest_versions()["lambda/maintenance.zip"]
    out = flow.lines(result.output)
    assert f"MaintenanceCodeVersion | {before_value(before, 'MaintenanceCodeVersion')} | {new}" in out
    assert flow.describe() == before
    assert (flow.standin.requests, flow.notifications()) == ([], rules)
    assert "Deployed" not in result.output


def before_value(stack: dict, name: str) -> str:
    return next(p["ParameterValue"] for p in stack["Parameters"] if p["ParameterKey"] == name)


def test_a_failing_step_after_the_stack_says_the_stack_is_deployed_and_what_is_left(flow):
    flow.standin.token_mode = flow.standin.rest_mode = "denied"
    result = flow.deploy("--yes", "--skip-preflight")
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: Stack {flow.stack} is deployed (created), but set-variables "
                           f"failed: Neither route reaches Airflow on {flow.mwaa}: cli-token: MWAA "
                           f"denied CreateCliToken on {flow.mwaa}")
    assert last.endswith(f"Then run 'm7etl set-variables --env {flow.name}' then 'm7etl "
                         f"notifications --env {flow.name}' (or deploy again: what is unchanged "
                         "is skipped).")
    assert flow.describe()["StackStatus"] == "CREATE_COMPLETE"
    assert (flow.standin.variables, flow.notifications()) == ({}, {})
    flow.standin.token_mode = flow.standin.rest_mode = "accept"
    again = flow.deploy("--yes", "--skip-preflight")
    assert again.exit_code == 0, again.output
    assert flow.lines(again.output)[-1].endswith("stack unchanged (no change set executed).")
    assert set(flow.standin.variables) == set(GUIDE_VARIABLES)
    assert our_rules(flow) == expected_rules(flow)


def test_each_step_after_the_stack_can_be_skipped(flow):
    result = flow.deploy("--yes", "--skip-preflight", "--skip-variables")
    assert result.exit_code == 0, result.output
    assert (flow.standin.requests, our_rules(flow)) == ([], expected_rules(flow))
    flow.client("s3").put_bucket_notification_configuration(
        Bucket=flow.data_bucket, NotificationConfiguration={})
    result = flow.deploy("--yes", "--skip-preflight", "--skip-notifications")
    assert result.exit_code == 0, result.output
    assert (set(flow.standin.variables), flow.notifications()) == (set(GUIDE_VARIABLES), {})


# =============================================================================================
# The password
# =============================================================================================
def test_the_password_is_in_no_output_text_or_json(flow):
    runs = [flow.deploy("--yes", "--skip-preflight")]
    flip_a_byte(flow.root / "build" / "s3_event.zip")
    runs.append(flow.deploy("--yes", "--skip-preflight", "--output", "json"))
    runs.append(flow.deploy("--yes", "--skip-preflight", "--output", "json"))  # no changes
    runs.append(flow.run("status"))
    runs.append(flow.run("status", "--output", "json"))
    assert [r.exit_code for r in runs] == [0, 0, 0, 0, 0], [r.output for r in runs]
    assert flow.parameters()["SnowflakePassword"] == flow.password  # it was sent (moto shows NoEcho)
    for result in runs:
        assert flow.password not in result.stdout + result.stderr
    doc = json.loads(runs[1].stdout)
    assert {"name": "SnowflakePassword", "old": "(hidden)", "new": "(changed)",
            "secret": True} in doc["parameters"]
    assert flow.password not in json.dumps([r.body for r in flow.standin.requests], default=str)
