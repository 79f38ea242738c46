"""``m7etl notifications``: our two landing/ rules merged into the bucket's configuration.

The pure part (rules, overlap, merge, the invoke permission) is tested as data; the command
runs against the moto server with a real bucket, a Lambda function (created, never run:
moto needs an IAM role for it), its resource policy and a small stack whose only job is
to carry the ``S3EventLambdaFunctionArn`` output, as the real stack does.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import boto3
import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.deploy.config import load_env
from m7etl.deploy.notifications import (
    ADDED,
    REMOVED,
    UNCHANGED,
    UPDATED,
    configure_notifications,
    desired_rules,
    merge,
    overlaps,
    permits_bucket,
)
from m7etl.exceptions import DeployError
from m7etl.storage.aws import Clients

FN = "arn:aws:lambda:eu-west-1:123456789012:function:m7-etl-s3-event-test"
QUEUE = "arn:aws:sqs:eu-west-1:123456789012:exports"
ACCOUNT = "123456789012"


def rule(rule_id, prefix=None, suffix=None, events=("s3:ObjectCreated:*",), arn=FN,
         key="LambdaFunctionArn", name_case=str.lower):
    filters = [{"Name": name_case(n), "Value": v} for n, v in (("prefix", prefix), ("suffix", suffix))
               if v is not None]
    out = {"Id": rule_id, key: arn, "Events": list(events)}
    if filters:
        out["Filter"] = {"Key": {"FilterRules": filters}}
    return out


# -- pure ---------------------------------------------------------------------------------

def test_desired_rules_are_landing_csv_and_landing_csv_gz():
    assert desired_rules(FN) == [
        {"Id": "m7etl-landing-csv", "LambdaFunctionArn": FN, "Events": ["s3:ObjectCreated:*"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "landing/"},
                                            {"Name": "suffix", "Value": ".csv"}]}}},
        {"Id": "m7etl-landing-csv-gz", "LambdaFunctionArn": FN, "Events": ["s3:ObjectCreated:*"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "landing/"},
                                            {"Name": "suffix", "Value": ".csv.gz"}]}}},
    ]


@pytest.mark.parametrize(("a", "b", "expected"), [
    (("landing/", ".csv"), ("landing/", ".csv"), True),
    (("landing/", ".csv"), (None, ".csv"), True),          # the guide's suffix-only rule
    (("landing/", ".csv"), ("landing/sub/", None), True),  # no suffix overlaps every suffix
    (("landing/", ".csv"), ("land", "v"), True),           # prefix of a prefix, suffix of a suffix
    (("landing/", ".csv"), ("exports/", ".csv"), False),
    (("landing/", ".csv"), ("landing/", ".csv.gz"), False),
    (("landing/", ".csv"), ("landing/", ".json"), False),
    (("landing/", ".csv"), ("raw/", None), False),
])
def test_overlap_needs_both_prefixes_and_suffixes_to_overlap(a, b, expected):
    assert overlaps(rule("a", *a), rule("b", *b)) is expected
    assert overlaps(rule("b", *b), rule("a", *a)) is expected


@pytest.mark.parametrize(("events_a", "events_b", "expected"), [
    (["s3:ObjectCreated:*"], ["s3:ObjectCreated:Put"], True),
    (["s3:ObjectCreated:Put"], ["s3:ObjectCreated:Post", "s3:ObjectCreated:Put"], True),
    (["s3:ObjectCreated:*"], ["s3:ObjectRemoved:*"], False),
    (["s3:ObjectCreated:Put"], ["s3:ObjectCreated:Copy"], False),
])
def test_overlap_needs_a_shared_event_type(events_a, events_b, expected):
    assert overlaps(rule("a", "landing/", ".csv", events_a),
                    rule("b", "landing/", ".csv", events_b)) is expected


def test_our_two_rules_do_not_overlap_each_other():
    csv, gz = desired_rules(FN)
    assert not overlaps(csv, gz)


def test_merge_into_an_empty_configuration_adds_both_rules():
    new, changes = merge({"ResponseMetadata": {"HTTPStatusCode": 200}}, desired_rules(FN))
    assert new == {"LambdaFunctionConfigurations": desired_rules(FN)}
    assert [(c.rule_id, c.action) for c in changes] == [("m7etl-landing-csv", ADDED),
                                                         ("m7etl-landing-csv-gz", ADDED)]


def test_merge_keeps_every_foreign_rule_and_eventbridge_as_read():
    exports = rule("exports-to-sqs", "exports/", None, arn=QUEUE, key="QueueArn")
    other_fn = rule("thumbs", "images/", ".png",
                    arn="arn:aws:lambda:eu-west-1:123456789012:function:thumbs")
    topic = rule("deleted", None, None, ["s3:ObjectRemoved:*"],
                 arn="arn:aws:sns:eu-west-1:123456789012:t", key="TopicArn")
    existing = {"ResponseMetadata": {"RequestId": "x"}, "QueueConfigurations": [exports],
                "LambdaFunctionConfigurations": [other_fn], "TopicConfigurations": [topic],
                "EventBridgeConfiguration": {}}
    new, changes = merge(existing, desired_rules(FN))
    assert new == {"QueueConfigurations": [exports],
                   "LambdaFunctionConfigurations": [other_fn, *desired_rules(FN)],
                   "TopicConfigurations": [topic], "EventBridgeConfiguration": {}}
    assert {c.action for c in changes} == {ADDED}


def test_merge_sees_our_rules_in_s3s_capitalised_answer_as_unchanged():
    as_s3_answers = [rule("m7etl-landing-csv", "landing/", ".csv", name_case=str.capitalize),
                     rule("m7etl-landing-csv-gz", "landing/", ".csv.gz", name_case=str.capitalize)]
    new, changes = merge({"LambdaFunctionConfigurations": as_s3_answers}, desired_rules(FN))
    assert [c.action for c in changes] == [UNCHANGED, UNCHANGED]
    assert new == {"LambdaFunctionConfigurations": as_s3_answers}


def test_merge_replaces_our_rule_by_id_when_it_points_elsewhere():
    stale = rule("m7etl-landing-csv", "landing/", ".csv",
                 arn="arn:aws:lambda:eu-west-1:123456789012:function:old")
    new, changes = merge({"LambdaFunctionConfigurations": [stale]}, desired_rules(FN))
    assert [(c.rule_id, c.action) for c in changes] == [("m7etl-landing-csv", UPDATED),
                                                         ("m7etl-landing-csv-gz", ADDED)]
    assert changes[0].before == stale
    assert new == {"LambdaFunctionConfigurations": desired_rules(FN)}


def test_merge_refuses_an_overlapping_foreign_rule_and_names_it():
    other = "arn:aws:lambda:eu-west-1:123456789012:function:other"
    foreign = rule("csv-to-other", "landing/", ".csv", arn=other)
    with pytest.raises(DeployError) as caught:
        merge({"LambdaFunctionConfigurations": [foreign]}, desired_rules(FN), bucket="data-b")
    assert str(caught.value) == (
        "Bucket data-b: the existing rule 'csv-to-other' (prefix 'landing/', suffix '.csv', "
        f"events s3:ObjectCreated:*) to lambda {other} overlaps m7etl's rule "
        "'m7etl-landing-csv' (prefix 'landing/', suffix '.csv'); S3 refuses overlapping rules, "
        "so nothing was written. Narrow or remove rule 'csv-to-other' (S3 console: bucket > "
        "Properties > Event notifications), or run again with --replace-rule csv-to-other to "
        "let m7etl replace it.")


def test_the_guides_hand_made_rule_is_recognised_and_can_be_replaced():
    guide = rule("NjY0ZGM", None, ".csv")  # step 5 as typed: suffix only, same function
    with pytest.raises(DeployError, match="looks like the guide's hand-made step-5 rule"):
        merge({"LambdaFunctionConfigurations": [guide]}, desired_rules(FN))
    new, changes = merge({"LambdaFunctionConfigurations": [guide]}, desired_rules(FN),
                         replace=("NjY0ZGM",))
    assert new == {"LambdaFunctionConfigurations": desired_rules(FN)}
    assert [(c.rule_id, c.action) for c in changes] == [
        ("NjY0ZGM", REMOVED), ("m7etl-landing-csv", ADDED), ("m7etl-landing-csv-gz", ADDED)]


S3_SOURCE = {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::data-b"},
             "StringEquals": {"AWS:SourceAccount": ACCOUNT}}


def statement(principal=None, action="lambda:InvokeFunction", condition=None, effect="Allow"):
    return {"Effect": effect, "Principal": principal or {"Service": "s3.amazonaws.com"},
            "Action": action, "Resource": FN, "Condition": condition or {}}


@pytest.mark.parametrize(("stmt", "expected"), [
    (statement(condition=S3_SOURCE), True),                                 # the template's
    (statement(condition={"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::data-*"}}), True),
    (statement(condition={"StringEquals": {"AWS:SourceAccount": ACCOUNT}}), True),
    (statement(condition={"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::other"}}), False),
    (statement(condition={"StringEquals": {"AWS:SourceAccount": "999999999999"}}), False),
    (statement(principal={"Service": "events.amazonaws.com"}, condition=S3_SOURCE), False),
    (statement(action="lambda:GetFunction", condition=S3_SOURCE), False),
    (statement(effect="Deny", condition=S3_SOURCE), False),
])
def test_invoke_permission_must_let_s3_invoke_for_this_bucket(stmt, expected):
    assert permits_bucket({"Statement": [stmt]}, "data-b", ACCOUNT) is expected


def test_no_policy_is_no_permission():
    assert permits_bucket({}, "data-b", ACCOUNT) is False


# -- against the moto server --------------------------------------------------------------

def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("s3_event.py", "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


@pytest.fixture
def pipeline(moto_endpoint, tmp_path):
    """A data bucket, the S3-event function with its S3 permission, a stack exporting its ARN,
    and an m7etl.toml pointing at all three through the moto server."""
    u = uuid.uuid4().hex[:10]
    c = {n: boto3.client(n, endpoint_url=moto_endpoint, region_name="eu-west-1")
         for n in ("s3", "iam", "lambda", "cloudformation", "sqs")}
    bucket, stack = f"m7-etl-data-notif-{u}", f"m7-notif-{u}"
    c["s3"].create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    role = c["iam"].create_role(RoleName=f"s3-event-{u}", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "lambda.amazonaws.com"}}]}
    ))["Role"]["Arn"]
    arn = c["lambda"].create_function(FunctionName=f"m7-etl-s3-event-{u}", Runtime="python3.12",
                                      Role=role, Handler="s3_event.handler",
                                      Code={"ZipFile": _zip()})["FunctionArn"]
    c["cloudformation"].create_stack(StackName=stack, TemplateBody=json.dumps({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"S3EventLambdaFunctionArn": {"Value": arn}}}))
    config = tmp_path / "m7etl.toml"
    config.write_text(f'[test]\nendpoint_url = "{moto_endpoint}"\ndata_bucket = "{bucket}"\n'
                      f'stack_name = "{stack}"\n', encoding="utf-8")

    class Pipeline:
        pass

    p = Pipeline()
    p.u, p.bucket, p.stack, p.arn, p.config, p.clients = u, bucket, stack, arn, config, c
    p.permit = lambda source=bucket: c["lambda"].add_permission(
        FunctionName=arn, StatementId=f"s3-{source}", Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{source}", SourceAccount=ACCOUNT)
    p.read = lambda: {k: v for k, v in c["s3"].get_bucket_notification_configuration(
        Bucket=bucket).items() if k != "ResponseMetadata"}
    return p


def invoke(p, *args):
    return CliRunner().invoke(cli, ["notifications", "--env", "test", "--config", str(p.config),
                                    *args])


def foreign_queue_rule(p) -> dict:
    queue = p.clients["sqs"].create_queue(QueueName=f"exports-{p.u}")["QueueUrl"]
    queue_arn = p.clients["sqs"].get_queue_attributes(
        QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    foreign = {"Id": "exports-to-sqs", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
               "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "exports/"}]}}}
    p.clients["s3"].put_bucket_notification_configuration(
        Bucket=p.bucket, NotificationConfiguration={"QueueConfigurations": [foreign]})
    return foreign


def test_configures_the_bucket_and_keeps_a_foreign_rule(pipeline):
    p = pipeline
    p.permit()
    foreign = foreign_queue_rule(p)
    result = invoke(p)
    assert result.exit_code == 0, result.output
    assert p.read() == {"QueueConfigurations": [foreign],
                        "LambdaFunctionConfigurations": desired_rules(p.arn)}
    assert result.stdout.splitlines()[-1] == f"Bucket {p.bucket}: 2 rule(s) added."
    assert table_rows(result.stdout) == [
        ["m7etl-landing-csv", "s3:ObjectCreated:*", "landing/", ".csv", f"lambda m7-etl-s3-event-{p.u}",
         "added"],
        ["m7etl-landing-csv-gz", "s3:ObjectCreated:*", "landing/", ".csv.gz",
         f"lambda m7-etl-s3-event-{p.u}", "added"],
        ["exports-to-sqs", "s3:ObjectCreated:*", "exports/", "(any)", f"sqs exports-{p.u}", "kept"]]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the rich table, as cells."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines()
            if line.startswith("│")]


def test_a_second_run_changes_nothing_and_does_not_write(pipeline):
    p = pipeline
    p.permit()
    foreign_queue_rule(p)
    assert invoke(p).exit_code == 0
    before = p.read()
    result = invoke(p)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        f"Bucket {p.bucket}: already configured (landing/*.csv and landing/*.csv.gz to the "
        "S3-event function); nothing written.")
    assert p.read() == before
    # The library itself, watched at the wire: no PutBucketNotificationConfiguration at all.
    clients = Clients(endpoint_url=str(p.clients["s3"].meta.endpoint_url), region="eu-west-1")
    puts = []
    clients("s3").meta.events.register(
        "before-call.s3.PutBucketNotificationConfiguration", lambda **kw: puts.append(kw))
    report = configure_notifications(load_env("test", p.config), clients)
    assert (report.changed, report.written, puts) == (False, False, [])
    assert [c.action for c in report.changes] == [UNCHANGED, UNCHANGED]


def test_an_overlapping_foreign_rule_is_refused_and_nothing_is_written(pipeline):
    p = pipeline
    p.permit()
    other = p.clients["lambda"].create_function(
        FunctionName=f"other-{p.u}", Runtime="python3.12", Handler="s3_event.handler",
        Role=p.clients["iam"].get_role(RoleName=f"s3-event-{p.u}")["Role"]["Arn"],
        Code={"ZipFile": _zip()})["FunctionArn"]
    foreign = rule("csv-to-other", "landing/", ".csv", arn=other)
    p.clients["s3"].put_bucket_notification_configuration(
        Bucket=p.bucket, NotificationConfiguration={"LambdaFunctionConfigurations": [foreign]})
    result = invoke(p)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Bucket {p.bucket}: the existing rule 'csv-to-other' (prefix 'landing/', suffix "
        f"'.csv', events s3:ObjectCreated:*) to lambda {other} overlaps m7etl's rule "
        "'m7etl-landing-csv' (prefix 'landing/', suffix '.csv'); S3 refuses overlapping rules, "
        "so nothing was written. Narrow or remove rule 'csv-to-other' (S3 console: bucket > "
        "Properties > Event notifications), or run again with --replace-rule csv-to-other to "
        "let m7etl replace it.\n")
    assert p.read() == {"LambdaFunctionConfigurations": [foreign]}
    replaced = invoke(p, "--replace-rule", "csv-to-other")
    assert replaced.exit_code == 0, replaced.output
    assert p.read() == {"LambdaFunctionConfigurations": desired_rules(p.arn)}
    assert replaced.stdout.splitlines()[-1] == (
        f"Bucket {p.bucket}: 1 rule(s) removed, 2 rule(s) added.")


def test_a_missing_invoke_permission_is_reported_with_its_fix(pipeline):
    p = pipeline
    result = invoke(p)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Function {p.arn} does not let S3 invoke it for bucket {p.bucket} (the stack's "
        "S3EventInvokePermission is missing or names another bucket). Run `m7etl deploy --env "
        f"test` to restore it, or grant it by hand: aws lambda add-permission --function-name "
        f"{p.arn} --statement-id s3-invoke-{p.bucket} --action lambda:InvokeFunction --principal "
        f"s3.amazonaws.com --source-arn arn:aws:s3:::{p.bucket} --source-account {ACCOUNT}\n")
    assert p.read() == {}


def test_a_permission_for_another_bucket_does_not_count(pipeline):
    p = pipeline
    p.permit(source=f"someone-else-{p.u}")
    result = invoke(p)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: Function {p.arn} does not let S3 invoke it for "
                                    f"bucket {p.bucket}")
    assert p.read() == {}


def test_dry_run_shows_the_change_and_writes_nothing(pipeline):
    p = pipeline
    p.permit()
    result = invoke(p, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        f"Dry run: bucket {p.bucket} would get 2 rule(s) added; nothing written.")
    assert p.read() == {}


def test_json_output_is_the_report(pipeline):
    p = pipeline
    p.permit()
    result = invoke(p, "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["bucket"], doc["function_arn"], doc["changed"], doc["written"]) == (
        p.bucket, p.arn, True, True)
    assert [(r["id"], r["prefix"], r["suffix"], r["target"], r["change"]) for r in doc["rules"]] == [
        ("m7etl-landing-csv", "landing/", ".csv", p.arn, "added"),
        ("m7etl-landing-csv-gz", "landing/", ".csv.gz", p.arn, "added")]
    assert "Event notifications" in result.stderr  # the table went to stderr


def test_a_missing_stack_says_to_deploy_first(pipeline, tmp_path):
    p = pipeline
    config = tmp_path / "nostack.toml"
    config.write_text(p.config.read_text().replace(p.stack, f"absent-{p.u}"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["notifications", "--env", "test", "--config", str(config)])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: Stack absent-{p.u} does not exist in this account and "
                             "region. Run `m7etl deploy --env test` first.\n")


def test_a_stack_without_the_output_says_to_deploy(pipeline):
    p = pipeline
    p.clients["cloudformation"].create_stack(StackName=f"bare-{p.u}", TemplateBody=json.dumps(
        {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}))
    p.config.write_text(p.config.read_text().replace(p.stack, f"bare-{p.u}"), encoding="utf-8")
    result = invoke(p)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: Stack bare-{p.u} (CREATE_COMPLETE) has no output "
                             "S3EventLambdaFunctionArn. Run `m7etl deploy --env test` first.\n")


def test_a_missing_bucket_is_named(pipeline):
    p = pipeline
    p.permit()
    p.clients["s3"].delete_bucket(Bucket=p.bucket)
    result = invoke(p)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: Data bucket {p.bucket} does not exist. Create it (a "
                             "prerequisite of the guide) or set data_bucket in m7etl.toml.\n")


def client_error(code: str, message: str = "m", op: str = "GetBucketNotificationConfiguration"):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, op)


@pytest.mark.parametrize(("code", "message", "retryable"), [
    ("AccessDenied", "Access denied to reading the notifications of bucket b. Grant the caller "
                     "s3:GetBucketNotification and run again.", False),
    ("SlowDown", "AWS throttled reading the notifications of bucket b (SlowDown). Run the same "
                 "command again.", True),
    ("ExpiredToken", "The AWS session expired during reading the notifications of bucket b. "
                     "Refresh the credentials (e.g. aws sso login) and run again.", False),
])
def test_expected_aws_refusals_become_one_line_errors(code, message, retryable):
    from m7etl.deploy.notifications import read_configuration

    class Refusing:
        def get_bucket_notification_configuration(self, **_kw):
            raise client_error(code)

    with pytest.raises(DeployError) as caught:
        read_configuration(Refusing(), "b")
    assert (str(caught.value), caught.value.retryable) == (message, retryable)


def test_no_credentials_is_one_line_and_exit_1(pipeline, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        (tmp_path / name).write_text("", encoding="utf-8")
        monkeypatch.setenv(name, str(tmp_path / name))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = invoke(pipeline)
    assert result.exit_code == 1
    assert result.stderr == ("Error: No AWS credentials found. Configure them (aws configure, "
                             "AWS_PROFILE or environment variables) and run again.\n")
