"""The stack deploy's rules as data (m7etl.deploy.stack), its thin AWS layer against the
moto server (changeset, events), and what deploy would send for the real template.

moto cannot create templates/etl-pipeline-mwaa.yaml (MWAA, Glue, secrets...): the real
template is checked here for what deploy sends it (every parameter declared, every value
within its AllowedPattern/AllowedValues/Min/Max), read with cfn-lint's loader as
tests/template/test_template.py does; the moto tests use tests/deploy/templates/.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import cfn_yaml

from m7etl.deploy.changeset import (
    ChangeSetRef,
    Polling,
    create_change_set,
    describe_stack,
    read_template,
    wait_change_set,
)
from m7etl.deploy.config import EnvConfig, load_env
from m7etl.deploy.events import EventStream, watch
from m7etl.deploy.stack import (
    VERSION_PARAMETERS,
    ParameterChange,
    ResourceChange,
    change_set_failure,
    change_set_name,
    change_set_request,
    check_value,
    decide,
    failures,
    fresh_events,
    is_no_change,
    is_terminal,
    outcome,
    outputs,
    parse_s3_url,
    parse_template,
    plan_stack,
    required_capabilities,
    resource_changes,
    template_url,
)
from m7etl.exceptions import DeployError

ROOT = Path(__file__).resolve().parents[2]
REAL_TEMPLATE = ROOT / "templates" / "etl-pipeline-mwaa.yaml"
SMALL = Path(__file__).parent / "templates" / "pipeline.yaml"
PASSWORD = "Sentinel-Pa55word-c3a9"
VERSIONS = {"RawToSilverCodeVersion": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
            "SilverToGoldCodeVersion": "null", "S3EventCodeVersion": "a1", "MaintenanceCodeVersion": "a2",
            "LayerCodeVersion": "a3", "RequirementsVersion": "a4"}


def small() -> dict:
    return parse_template(SMALL.read_text(encoding="utf-8"), str(SMALL))


def config(env: str = "test", **overrides) -> EnvConfig:
    return load_env(env, search=False).with_flags(**overrides)


# =============================================================================================
# The template
# =============================================================================================
def test_the_short_forms_read_as_their_long_form():
    text = """
Resources:
  A:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !Sub "t-${Environment}"
      DisplayName: !If [HasName, !Ref Name, !GetAtt B.Arn]
      Tags: [{Key: k, Value: !Join ["-", [a, !Select [0, !Split [",", "x,y"]]]]}]
"""
    props = parse_template(text, "t.yaml")["Resources"]["A"]["Properties"]
    assert props["TopicName"] == {"Fn::Sub": "t-${Environment}"}
    assert props["DisplayName"] == {"Fn::If": ["HasName", {"Ref": "Name"},
                                               {"Fn::GetAtt": ["B", "Arn"]}]}
    assert props["Tags"][0]["Value"] == {"Fn::Join": ["-", ["a", {"Fn::Select": [
        0, {"Fn::Split": [",", "x,y"]}]}]]}
    assert parse_template('{"Resources": {"A": {"Type": "X"}}}', "t.json") == {
        "Resources": {"A": {"Type": "X"}}}


def test_the_real_template_reads_as_cfn_lint_reads_it():
    ours = parse_template(REAL_TEMPLATE.read_text(encoding="utf-8"), str(REAL_TEMPLATE))
    theirs = cfn_yaml.load(str(REAL_TEMPLATE))
    assert ours["Parameters"] == theirs["Parameters"]
    assert set(ours["Resources"]) == set(theirs["Resources"])
    assert ours["Resources"]["MwaaEnvironment"]["Properties"]["Name"] == theirs["Resources"][
        "MwaaEnvironment"]["Properties"]["Name"]


def test_an_unreadable_template_names_itself():
    with pytest.raises(DeployError) as caught:
        parse_template("Resources: [unclosed", "bad.yaml")
    assert str(caught.value).startswith("Template bad.yaml cannot be read: ")
    with pytest.raises(DeployError, match=r"^Template empty.yaml has no Resources section\. "):
        parse_template("Parameters: {}", "empty.yaml")


def test_capabilities_come_from_the_iam_resources():
    role = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}
    named = {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "r"}}
    topic = {"Type": "AWS::SNS::Topic"}
    assert required_capabilities({"Resources": {"T": topic}}) == []
    assert required_capabilities({"Resources": {"T": topic, "R": role}}) == ["CAPABILITY_IAM"]
    assert required_capabilities({"Resources": {"R": role, "N": named}}) == [
        "CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
    assert required_capabilities({"Transform": "AWS::Serverless-2016-10-31",
                                  "Resources": {"T": topic}}) == ["CAPABILITY_AUTO_EXPAND"]


def test_urls_of_the_template():
    assert template_url("m7-solocco-code-repository-test", "eu-west-1") == (
        "https://m7-solocco-code-repository-test.s3.eu-west-1.amazonaws.com/templates/"
        "etl-pipeline-mwaa.yaml")
    assert parse_s3_url("https://my.code.s3.eu-west-1.amazonaws.com/templates/a.yaml?versionId=v9") == (
        "my.code", "templates/a.yaml", "v9")
    assert parse_s3_url("https://s3.eu-west-1.amazonaws.com/code/templates/a.yaml") == (
        "code", "templates/a.yaml", None)
    assert parse_s3_url("http://127.0.0.1:5000/code/templates/a.yaml") == (
        "code", "templates/a.yaml", None)
    assert parse_s3_url("s3://code/templates/a.yaml") == ("code", "templates/a.yaml", None)
    with pytest.raises(DeployError, match=r"^Template URL https://example.com/ does not name"):
        parse_s3_url("https://example.com/")


# =============================================================================================
# Parameters
# =============================================================================================
SPECS = {
    "Environment": {"Type": "String", "AllowedPattern": "^[a-z][a-z0-9-]{0,19}$"},
    "EnvironmentClass": {"Type": "String", "AllowedValues": ["mw1.micro", "mw1.small"]},
    "MwaaMaxWorkers": {"Type": "Number", "MinValue": 1, "MaxValue": 25},
    "LogRetentionInDays": {"Type": "Number", "AllowedValues": [1, 3, 30]},
    "Name": {"Type": "String", "MinLength": 3, "MaxLength": 5},
    "Secret": {"Type": "String", "NoEcho": True, "AllowedPattern": "^[^\"]+$",
               "ConstraintDescription": "no double quote."},
}


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("Environment", "test", None),
    ("Environment", "Test_1", "Environment = 'Test_1' does not match its AllowedPattern "
                              "^[a-z][a-z0-9-]{0,19}$"),
    ("EnvironmentClass", "mw1.huge", "EnvironmentClass = 'mw1.huge' is not one of its "
                                     "AllowedValues: mw1.micro, mw1.small"),
    ("MwaaMaxWorkers", "many", "MwaaMaxWorkers = 'many' is not a number"),
    ("MwaaMaxWorkers", "0", "MwaaMaxWorkers = '0' is below its MinValue 1"),
    ("MwaaMaxWorkers", "26", "MwaaMaxWorkers = '26' is above its MaxValue 25"),
    ("MwaaMaxWorkers", "25", None),
    ("LogRetentionInDays", "30", None),
    ("LogRetentionInDays", "30.0", None),
    ("LogRetentionInDays", "31", "LogRetentionInDays = '31' is not one of its AllowedValues: 1, 3, 30"),
    ("Name", "ab", "Name = 'ab' is shorter than its MinLength 3"),
    ("Name", "abcdef", "Name = 'abcdef' is longer than its MaxLength 5"),
    ("Secret", 'pa"ss', "Secret = (hidden) does not match its AllowedPattern ^[^\"]+$ (no double quote)"),
])
def test_values_are_checked_as_cloudformation_checks_them(name, value, problem):
    assert check_value(name, SPECS[name], value) == problem


def test_a_create_sends_the_environments_values_and_the_password():
    plan = plan_stack(small(), config(), change_set_type="CREATE", password=PASSWORD,
                      versions={"RawToSilverCodeVersion": "v1"})
    assert plan.parameters == [
        {"ParameterKey": "Environment", "ParameterValue": "test"},
        {"ParameterKey": "DataBucketName", "ParameterValue": "m7-etl-data-solocco-test"},
        {"ParameterKey": "CodeBucketName", "ParameterValue": "m7-solocco-code-repository-test"},
        {"ParameterKey": "RawToSilverCodeVersion", "ParameterValue": "v1"},
        {"ParameterKey": "SnowflakePassword", "ParameterValue": PASSWORD}]
    assert plan.changes[-1] == ParameterChange("SnowflakePassword", None, "(changed)", True)
    assert plan.ignored == ["SnowflakeAccount", "SnowflakeDatabase", "SnowflakeRole",
                            "SnowflakeSchema", "SnowflakeStage", "SnowflakeUser",
                            "SnowflakeWarehouse"]  # the small template does not declare them
    assert PASSWORD not in repr(plan)


def test_an_update_keeps_what_is_not_given_and_lists_only_what_changes():
    existing = {"Parameters": [
        {"ParameterKey": "Environment", "ParameterValue": "test"},
        {"ParameterKey": "DataBucketName", "ParameterValue": "m7-etl-data-solocco-test"},
        {"ParameterKey": "CodeBucketName", "ParameterValue": "old-code-bucket"},
        {"ParameterKey": "RawToSilverCodeVersion", "ParameterValue": "v1"},
        {"ParameterKey": "EnvironmentClass", "ParameterValue": "mw1.small"},
        {"ParameterKey": "SnowflakePassword", "ParameterValue": "****"}]}
    plan = plan_stack(small(), config(), change_set_type="UPDATE", existing=existing)
    assert plan.parameters == [
        {"ParameterKey": "Environment", "ParameterValue": "test"},
        {"ParameterKey": "DataBucketName", "ParameterValue": "m7-etl-data-solocco-test"},
        {"ParameterKey": "CodeBucketName", "ParameterValue": "m7-solocco-code-repository-test"},
        {"ParameterKey": "RawToSilverCodeVersion", "UsePreviousValue": True},
        {"ParameterKey": "EnvironmentClass", "UsePreviousValue": True},
        {"ParameterKey": "SnowflakePassword", "UsePreviousValue": True}]
    assert plan.changes == [
        ParameterChange("CodeBucketName", "old-code-bucket", "m7-solocco-code-repository-test"),
        ParameterChange("SnowflakePassword", "(hidden)", "(kept)", True)]
    rotated = plan_stack(small(), config(), change_set_type="UPDATE", existing=existing,
                         password="new-one", versions={"RawToSilverCodeVersion": "v1"})
    assert {"ParameterKey": "RawToSilverCodeVersion", "ParameterValue": "v1"} in rotated.parameters
    assert [c.name for c in rotated.changes] == ["CodeBucketName", "SnowflakePassword"]
    assert rotated.changes[-1].new == "(changed)"


def test_an_unknown_override_names_the_file_and_the_closest_parameter():
    cfg = config(parameters={"MwaaMaxWorker": "3"}, source="/repo/m7etl.toml")
    with pytest.raises(DeployError) as caught:
        plan_stack(small(), cfg, change_set_type="CREATE", password=PASSWORD)
    assert str(caught.value) == (
        "/repo/m7etl.toml: parameter 'MwaaMaxWorker' (under [test.parameters] or "
        "[default.parameters]) is not a parameter of the template. Did you mean 'MwaaMaxWorkers'? "
        "Remove it or use one of: CodeBucketName, DataBucketName, Environment, EnvironmentClass, "
        "MwaaMaxWorkers, RawToSilverCodeVersion, SnowflakePassword.")


def test_every_refused_value_is_named_with_where_it_came_from():
    cfg = config(parameters={"EnvironmentClass": "mw1.huge", "MwaaMaxWorkers": "30"},
                 source="/repo/m7etl.toml")
    with pytest.raises(DeployError) as caught:
        plan_stack(small(), cfg, change_set_type="CREATE", password='a"b')
    assert str(caught.value) == (
        "The template refuses 3 parameter value(s): EnvironmentClass = 'mw1.huge' is not one of "
        "its AllowedValues: mw1.micro, mw1.small, mw1.medium (from [parameters] in "
        "/repo/m7etl.toml); MwaaMaxWorkers = '30' is above its MaxValue 25 (from [parameters] in "
        "/repo/m7etl.toml); SnowflakePassword = (hidden) does not match its AllowedPattern "
        "^[^\"\\\\]+$ (must not be empty nor contain a double quote or a backslash) (from "
        "$M7_SNOWFLAKE_PASSWORD or the prompt). Fix them (m7etl.toml for the settings), then "
        "deploy again: nothing was sent to CloudFormation.")
    assert 'a"b' not in str(caught.value)


def test_a_create_without_the_password_is_refused():
    with pytest.raises(DeployError) as caught:
        plan_stack(small(), config(), change_set_type="CREATE")
    assert str(caught.value) == ("Template parameter SnowflakePassword has no default and no "
                                 "value. Set $M7_SNOWFLAKE_PASSWORD or answer the prompt.")


# ---- the real template --------------------------------------------------------------------
@pytest.fixture(scope="module")
def real() -> dict:
    return cfn_yaml.load(str(REAL_TEMPLATE))


@pytest.mark.parametrize("env", ["test", "prod"])
def test_what_deploy_sends_the_real_template_is_declared_and_valid(real, env):
    plan = plan_stack(real, config(env), change_set_type="CREATE", versions=VERSIONS,
                      password=PASSWORD)
    declared = real["Parameters"]
    sent = {p["ParameterKey"]: p["ParameterValue"] for p in plan.parameters}
    assert plan.ignored == []  # the template declares everything m7etl sets
    assert set(sent) == {"Environment", "DataBucketName", "CodeBucketName", "SnowflakeAccount",
                         "SnowflakeUser", "SnowflakeRole", "SnowflakeWarehouse",
                         "SnowflakeDatabase", "SnowflakeSchema", "SnowflakeStage",
                         "SnowflakePassword", *VERSION_PARAMETERS}
    assert sent["Environment"] == env
    assert sent["DataBucketName"] == f"m7-etl-data-solocco-{env}"
    assert sent["CodeBucketName"] == f"m7-solocco-code-repository-{env}"
    for name, value in sent.items():  # checked here with re, independently of check_value
        pattern = declared[name].get("AllowedPattern")
        assert pattern is None or re.fullmatch(pattern, value), (name, value)
    assert declared["SnowflakePassword"]["NoEcho"] in (True, "true")
    assert plan.capabilities == ["CAPABILITY_IAM"]  # no IAM resource of the template has a name


def test_the_real_template_declares_every_version_parameter(real):
    for name in VERSION_PARAMETERS:
        assert real["Parameters"][name] == {**real["Parameters"][name], "Type": "String",
                                             "Default": ""}


def test_overrides_of_the_real_template_are_checked_before_sending(real):
    ok = config(parameters={"EnvironmentClass": "mw1.medium", "MwaaMaxWorkers": "4",
                            "LogRetentionInDays": "90", "VpcId": "vpc-0123456789abcdef0"})
    plan = plan_stack(real, ok, change_set_type="CREATE", password=PASSWORD)
    assert {"ParameterKey": "LogRetentionInDays", "ParameterValue": "90"} in plan.parameters
    bad = config(parameters={"LogRetentionInDays": "45"}, source="m7etl.toml")
    with pytest.raises(DeployError, match=r"LogRetentionInDays = '45' is not one of its "
                                          r"AllowedValues: 1, 3, 5, 7, 14, 30, 60"):
        plan_stack(real, bad, change_set_type="CREATE", password=PASSWORD)


# =============================================================================================
# Requests and decisions
# =============================================================================================
def test_the_change_set_request_takes_a_body_or_a_url():
    plan = plan_stack(small(), config(), change_set_type="CREATE", password=PASSWORD)
    name = change_set_name(datetime(2026, 5, 1, 12, 30, 5, 120000, tzinfo=UTC))
    assert name == "m7etl-20260501-123005-120000"
    by_url = change_set_request(plan, name, template_url="https://b.s3.eu-west-1.amazonaws.com/t",
                                description="m7etl deploy --env test")
    assert by_url == {"StackName": "m7-etl-pipeline-mwaa", "ChangeSetName": name,
                      "ChangeSetType": "CREATE", "Parameters": plan.parameters,
                      "Capabilities": [], "Description": "m7etl deploy --env test",
                      "TemplateURL": "https://b.s3.eu-west-1.amazonaws.com/t"}
    by_body = change_set_request(plan, name, template_body="x")
    assert (by_body["TemplateBody"], "TemplateURL" in by_body, "Description" in by_body) == (
        "x", False, False)  # an empty Description is refused by CloudFormation: not sent
    with pytest.raises(ValueError):
        change_set_request(plan, name)
    with pytest.raises(DeployError) as caught:
        change_set_request(plan, name, template_body="#" * 51_201)
    assert str(caught.value) == (
        "The template is 51,201 bytes, over the 51,200 a template body may have. Upload it "
        "(m7etl upload) and deploy from the code bucket (no --template).")


def stack(status: str) -> dict:
    return {"StackName": "m7-etl-pipeline-mwaa", "StackStatus": status, "StackId": "id"}


@pytest.mark.parametrize(("status", "recreate", "expected"), [
    (None, False, ("CREATE", False)),
    (None, True, ("CREATE", False)),
    ("CREATE_COMPLETE", False, ("UPDATE", False)),
    ("UPDATE_COMPLETE", False, ("UPDATE", False)),
    ("UPDATE_ROLLBACK_COMPLETE", False, ("UPDATE", False)),
    ("REVIEW_IN_PROGRESS", False, ("CREATE", True)),
    ("ROLLBACK_COMPLETE", True, ("CREATE", True)),
    ("ROLLBACK_FAILED", True, ("CREATE", True)),
])
def test_what_a_deploy_does_with_each_status(status, recreate, expected):
    decision = decide(None if status is None else stack(status), recreate=recreate, env="test")
    assert (decision.change_set_type, decision.delete_first) == expected


@pytest.mark.parametrize(("status", "recreate", "message", "retryable"), [
    ("ROLLBACK_COMPLETE", False,
     "Stack m7-etl-pipeline-mwaa is in ROLLBACK_COMPLETE: its first creation failed (it has no "
     "resources), and CloudFormation cannot update such a stack. See why with 'aws cloudformation "
     "describe-stack-events --stack-name m7-etl-pipeline-mwaa', fix it, then run 'm7etl deploy "
     "--env test --recreate' to delete the stack and create it again.", False),
    ("UPDATE_IN_PROGRESS", False,
     "Stack m7-etl-pipeline-mwaa is busy (UPDATE_IN_PROGRESS). Wait for it to finish ('m7etl "
     "status --env test --follow'), then deploy again.", True),
    ("UPDATE_COMPLETE", True,
     "--recreate only replaces a stack whose creation failed; stack m7-etl-pipeline-mwaa is "
     "UPDATE_COMPLETE. Deploy without --recreate to update it in place (nothing is deleted).", False),
    ("UPDATE_ROLLBACK_FAILED", False,
     "Stack m7-etl-pipeline-mwaa is in UPDATE_ROLLBACK_FAILED: an update failed and so did its "
     "rollback. Fix the resource named in 'aws cloudformation describe-stack-events --stack-name "
     "m7-etl-pipeline-mwaa', run 'aws cloudformation continue-update-rollback --stack-name "
     "m7-etl-pipeline-mwaa', then deploy again.", False),
])
def test_the_statuses_deploy_refuses_say_what_to_do(status, recreate, message, retryable):
    with pytest.raises(DeployError) as caught:
        decide(stack(status), recreate=recreate, env="test")
    assert (str(caught.value), caught.value.retryable) == (message, retryable)


def test_change_sets_as_rows_and_the_empty_ones():
    rows = resource_changes([
        {"Type": "Resource", "ResourceChange": {"Action": "Modify", "LogicalResourceId": "Fn",
                                                "ResourceType": "AWS::Lambda::Function",
                                                "Replacement": "False"}},
        {"Type": "Resource", "ResourceChange": {"Action": "Add", "LogicalResourceId": "Topic",
                                                "ResourceType": "AWS::SNS::Topic"}}])
    assert rows == [ResourceChange("Modify", "Fn", "AWS::Lambda::Function", "False"),
                    ResourceChange("Add", "Topic", "AWS::SNS::Topic", None)]
    assert is_no_change("The submitted information didn't contain changes. Submit different "
                        "information to create a change set.")
    assert is_no_change("No updates are to be performed.")
    assert not is_no_change("Template format error: Unresolved resource dependencies [X]")


def test_a_missing_vpc_export_is_explained():
    error = change_set_failure("No export named VPC found", "m7-etl-pipeline-mwaa", "test")
    assert str(error) == (
        "CloudFormation could not make the change set of stack m7-etl-pipeline-mwaa: No export "
        "named VPC found The template imports VPC, which no stack exports: deploy the VPC stack "
        "exporting VPC, PrivateSubnet1, PrivateSubnet2 (guide, step 3), or set VpcId, "
        "PrivateSubnet1Id and PrivateSubnet2Id under [test.parameters] (m7etl doctor --env test "
        "checks this).")


# =============================================================================================
# Events and outcomes
# =============================================================================================
def ev(event_id: str, logical: str, status: str, reason: str = "", root: bool = False) -> dict:
    return {"EventId": event_id, "StackId": "sid", "LogicalResourceId": logical,
            "PhysicalResourceId": "sid" if root else f"p-{logical}",
            "ResourceType": "AWS::CloudFormation::Stack" if root else "AWS::S3::Bucket",
            "ResourceStatus": status, "ResourceStatusReason": reason}


def test_fresh_events_are_read_newest_first_until_a_seen_one_and_given_oldest_first():
    pages = [[ev("5", "B", "CREATE_COMPLETE"), ev("4", "B", "CREATE_IN_PROGRESS")],
             [ev("3", "S", "CREATE_IN_PROGRESS", root=True), ev("2", "S", "REVIEW_IN_PROGRESS")],
             [ev("1", "S", "UPDATE_COMPLETE")]]

    def consumed():
        for page in pages:
            consumed.count += 1
            yield page
    consumed.count = 0
    assert [e["EventId"] for e in fresh_events(consumed(), {"2", "1"})] == ["3", "4", "5"]
    assert consumed.count == 2  # the third page was never asked for
    assert [e["EventId"] for e in fresh_events(iter(pages), set())] == ["1", "2", "3", "4", "5"]


def test_the_failures_put_the_causes_before_the_cancelled():
    events = [ev("1", "S", "CREATE_IN_PROGRESS", root=True),
              ev("2", "Topic", "CREATE_FAILED", "Resource creation cancelled"),
              ev("3", "Bucket", "CREATE_FAILED", "b already exists"),
              ev("4", "S", "ROLLBACK_IN_PROGRESS", "The following resource(s) failed", root=True),
              ev("5", "S", "ROLLBACK_FAILED", "", root=True)]
    assert [(f.logical_id, f.reason) for f in failures(events)] == [
        ("Bucket", "b already exists"), ("Topic", "Resource creation cancelled")]


def test_terminal_statuses_and_their_outcomes():
    assert [s for s in ("CREATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
                        "ROLLBACK_IN_PROGRESS", "CREATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE",
                        "ROLLBACK_COMPLETE") if is_terminal(s)] == [
        "CREATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE"]
    assert outcome("UPDATE_COMPLETE", "s", "test").ok
    rolled = outcome("UPDATE_ROLLBACK_COMPLETE", "s", "test")
    assert (rolled.ok, rolled.summary) == (False, "Update of stack s failed and was rolled back: "
                                                  "the stack runs its previous version.")
    first = outcome("ROLLBACK_COMPLETE", "s", "prod")
    assert (first.ok, first.next_step) == (False, "Fix the cause above, then run 'm7etl deploy "
                                                  "--env prod --recreate'.")


def test_outputs_put_the_airflow_ui_and_the_dashboard_first():
    described = {"Outputs": [{"OutputKey": "GlueJobName", "OutputValue": "g"},
                             {"OutputKey": "DashboardUrl", "OutputValue": "d"},
                             {"OutputKey": "AlertTopicArn", "OutputValue": "a"},
                             {"OutputKey": "AirflowWebUIUrl", "OutputValue": "u"}]}
    assert list(outputs(described).items()) == [("AirflowWebUIUrl", "u"), ("DashboardUrl", "d"),
                                                ("AlertTopicArn", "a"), ("GlueJobName", "g")]


# =============================================================================================
# The thin layer, against the moto server
# =============================================================================================
@pytest.fixture
def cf(moto_endpoint):
    return boto3.client("cloudformation", endpoint_url=moto_endpoint, region_name="eu-west-1")


@pytest.fixture
def s3(moto_endpoint):
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")


def unique() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_a_missing_stack_is_none(cf):
    assert describe_stack(cf, f"m7-etl-{unique()}") is None


def test_the_template_is_read_from_its_url(s3):
    bucket = f"m7-code-{unique()}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    url = template_url(bucket, "eu-west-1")
    with pytest.raises(DeployError) as caught:
        read_template(s3, url)
    assert str(caught.value) == (
        f"The template is not in the code bucket: s3://{bucket}/templates/etl-pipeline-mwaa.yaml "
        "does not exist. Run 'm7etl upload' first (it uploads the template), or pass --template "
        "templates/etl-pipeline-mwaa.yaml.")
    s3.put_object(Bucket=bucket, Key="templates/etl-pipeline-mwaa.yaml", Body=SMALL.read_bytes())
    assert read_template(s3, url) == SMALL.read_text(encoding="utf-8")


def test_a_change_set_by_template_url_and_its_events(cf, s3):
    """moto reads TemplateURL from its own S3 (a virtual-hosted amazonaws.com URL)."""
    env, bucket = unique(), f"m7-code-{unique()}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=bucket, Key="templates/etl-pipeline-mwaa.yaml", Body=SMALL.read_bytes())
    cfg = config(env, stack_name=f"m7-etl-{env}")
    plan = plan_stack(small(), cfg, change_set_type="CREATE", password=PASSWORD)
    request = change_set_request(plan, "m7etl-1", template_url=template_url(bucket, "eu-west-1"))
    ref = create_change_set(cf, request)
    assert ref.name == "m7etl-1"
    described = wait_change_set(cf, ref, Polling(0.01, 5))
    assert (described["Status"], described["ChangeSetName"]) == ("CREATE_COMPLETE", "m7etl-1")
    assert [c["ResourceChange"]["LogicalResourceId"] for c in described["Changes"]] == [
        "AlertTopic", "ArtefactBucket", "CodeVersionParameter"]
    stream = EventStream(cf, ref.stack_id)
    stream.mark()  # the REVIEW_IN_PROGRESS event is from before: not new
    assert stream.poll() == []
    cf.execute_change_set(ChangeSetName=ref.id)
    seen = []
    final = watch(cf, stream, on_event=seen.append, polling=Polling(0.01, 5))
    assert final["StackStatus"] == "CREATE_COMPLETE"
    assert [(e["LogicalResourceId"], e["ResourceStatus"]) for e in seen] == [
        (f"m7-etl-{env}", "CREATE_IN_PROGRESS"), (f"m7-etl-{env}", "CREATE_COMPLETE")]
    assert stream.poll() == []  # each event is given once


def test_the_watch_polls_with_the_delay_and_gives_up_after_max_wait(cf):
    """A stack left in REVIEW_IN_PROGRESS never reaches a final status: the watch gives up."""
    env = unique()
    answer = cf.create_change_set(StackName=f"m7-etl-{env}", ChangeSetName="c",
                                  ChangeSetType="CREATE", TemplateBody=SMALL.read_text(),
                                  Parameters=[{"ParameterKey": "SnowflakePassword",
                                               "ParameterValue": PASSWORD}])
    ticks = iter(range(100))
    slept, waited = [], []
    with pytest.raises(DeployError) as caught:
        watch(cf, EventStream(cf, answer["StackId"]), on_event=lambda e: None,
              polling=Polling(delay=7, max_wait=180), follow="m7etl status --env x --follow",
              on_wait=waited.append, sleep=slept.append, clock=lambda: next(ticks) * 60.0)
    assert slept == [7, 7]  # polls at 1 and 2 minutes, gave up at 3
    assert waited == [60.0, 120.0]
    assert str(caught.value) == (
        f"Stopped watching stack m7-etl-{env} after 3 min: it is still REVIEW_IN_PROGRESS. The "
        "deployment goes on in CloudFormation (an MWAA environment can take over an hour). "
        "Follow it with 'm7etl status --env x --follow'.")


def test_a_change_set_still_in_progress_is_polled(cf):
    """describe_change_set answers CREATE_PENDING twice, then moto's real answer."""
    env = unique()
    answer = cf.create_change_set(StackName=f"m7-etl-{env}", ChangeSetName="c",
                                  ChangeSetType="CREATE", TemplateBody=SMALL.read_text(),
                                  Parameters=[{"ParameterKey": "SnowflakePassword",
                                               "ParameterValue": PASSWORD}])
    real = cf.describe_change_set
    calls = []

    def describe(**kwargs):
        calls.append(kwargs)
        page = real(**kwargs)
        return {**page, "Status": "CREATE_PENDING"} if len(calls) < 3 else page

    cf.describe_change_set = describe
    slept = []
    ref = ChangeSetRef(answer["Id"], answer["StackId"], "c")
    assert wait_change_set(cf, ref, Polling(3, 60), sleep=slept.append)["Status"] == "CREATE_COMPLETE"
    assert slept == [3, 3]
    assert calls == [{"ChangeSetName": answer["Id"]}] * 3


def test_event_times_are_comparable_for_durations(cf):
    """The printer measures a resource's time from its events' timestamps: real datetimes."""
    env = unique()
    answer = cf.create_change_set(StackName=f"m7-etl-{env}", ChangeSetName="c",
                                  ChangeSetType="CREATE", TemplateBody=SMALL.read_text(),
                                  Parameters=[{"ParameterKey": "SnowflakePassword",
                                               "ParameterValue": PASSWORD}])
    (event,) = cf.describe_stack_events(StackName=answer["StackId"])["StackEvents"]
    assert abs(event["Timestamp"] - datetime.now(UTC)) < timedelta(minutes=5)


# ---- errors moto cannot produce (denied, expired, throttled): botocore's Stubber ------------
def stubbed(service: str = "cloudformation"):
    from botocore.stub import Stubber

    client = boto3.client(service, region_name="eu-west-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    return client, Stubber(client)


def test_a_denied_change_set_names_the_permission():
    client, stub = stubbed()
    stub.add_client_error("create_change_set", "AccessDenied", "User: arn:aws:iam::1:user/ci is "
                          "not authorized to perform: cloudformation:CreateChangeSet")
    plan = plan_stack(small(), config(), change_set_type="CREATE", password=PASSWORD)
    with stub, pytest.raises(DeployError) as caught:
        create_change_set(client, change_set_request(plan, "c", template_body="x"))
    assert str(caught.value) == (
        "AWS denied creating the change set: User: arn:aws:iam::1:user/ci is not authorized to "
        "perform: cloudformation:CreateChangeSet Grant cloudformation:CreateChangeSet (and "
        "iam:PassRole if a role is used) to the credentials in use (check --profile).")


def test_throttling_is_retryable():
    client, stub = stubbed()
    stub.add_client_error("describe_stacks", "Throttling", "Rate exceeded")
    with stub, pytest.raises(DeployError) as caught:
        describe_stack(client, "s")
    assert (str(caught.value), caught.value.retryable) == (
        "AWS throttled reading the stack (Throttling). Wait a minute and run again.", True)


def test_a_session_expiring_during_the_watch_says_the_deployment_goes_on():
    client, stub = stubbed()
    stub.add_client_error("describe_stack_events", "ExpiredToken",
                          "The security token included in the request is expired")
    with stub, pytest.raises(DeployError) as caught:
        watch(client, EventStream(client, "sid"), on_event=lambda e: None,
              follow="m7etl status --env test --follow")
    assert str(caught.value) == (
        "The AWS session expired while watching stack sid. The deployment goes on in "
        "CloudFormation. Refresh the credentials (aws sso login, or new keys), then run again. "
        "Follow it with 'm7etl status --env test --follow'.")
