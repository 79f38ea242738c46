"""The real template on a local moto server taught the missing CloudFormation types:
created (every output, every resource in its service), updated, deleted, through a change
set, and rolled back when an update fails. Expected values are written out from the
template and the CloudFormation resource reference, not computed by the models; the
harness is cfn_models_harness.py.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from cfn_models_harness import (
    ACCOUNT,
    PASSWORD,
    REGION,
    TEMPLATE,
    Env,
    local_moto,
    new_env,
    template_resources,
    zip_of,
)

from m7etl.local.standins.mwaa import MwaaStandin


@pytest.fixture(scope="module")
def standin() -> Iterator[MwaaStandin]:
    server = MwaaStandin().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def moto(aws_env, standin) -> Iterator[str]:
    with local_moto(standin.endpoint) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def deployed(moto, standin) -> tuple[Env, float]:
    """One stack of the real template, created once for the read-only tests below."""
    env = new_env(moto, standin)
    env.prepare()
    seconds = env.create()
    print(f"\ncreate_stack of the real template: {seconds:.2f} s")
    return env, seconds


# =============================================================================================
# The real template, created
# =============================================================================================
def test_the_real_template_creates_with_every_output(deployed, standin):
    env, seconds = deployed
    stack = env.describe()
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    secret_arn = env.client("secretsmanager").describe_secret(
        SecretId=f"m7-etl/snowflake-{env.name}")["ARN"]
    assert re.fullmatch(rf"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
                        rf"m7-etl/snowflake-{env.name}-[A-Za-z0-9]{{6}}", secret_arn)
    assert env.outputs() == {
        "MwaaEnvironmentName": env.mwaa,
        "AirflowWebUIUrl": f"https://{standin.host}",
        "DashboardUrl": f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}"
                        f"#dashboards:name=m7-etl-pipeline-{env.name}",
        "S3EventLambdaFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
                                    f"m7-etl-s3-event-{env.name}",
        "RawToSilverFunctionName": f"m7-etl-raw-to-silver-{env.name}",
        "SilverToGoldFunctionName": f"m7-etl-silver-to-gold-{env.name}",
        "S3EventFunctionName": f"m7-etl-s3-event-{env.name}",
        "MaintenanceFunctionName": f"m7-etl-maintenance-{env.name}",
        "GlueJobName": f"m7-etl-gold-to-snowflake-{env.name}",
        "SnowflakeSecretArn": secret_arn,
        "AlertTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:m7-etl-alerts-{env.name}",
        "DataBucketName": env.data,
    }
    assert seconds < 10
    # GetEnvironment asked of the stand-in (it has no CreateEnvironment route yet).
    assert [r.path for r in standin.of_kind("get_environment")][-1] == f"/environments/{env.mwaa}"


def test_every_resource_is_listed_with_its_physical_id_and_events(deployed):
    env, _ = deployed
    resources = env.resources()
    # Every resource of the template but AlertEmailSubscription (its Condition: no AlertEmail).
    assert set(resources) == set(template_resources()) - {"AlertEmailSubscription"}
    assert {r["ResourceStatus"] for r in resources.values()} == {"CREATE_COMPLETE"}
    assert resources["PipelineKeyAlias"]["PhysicalResourceId"] == f"alias/m7-etl-{env.name}"
    assert resources["GlueSecurityConfiguration"]["PhysicalResourceId"] == f"m7-etl-glue-{env.name}"
    assert resources["MwaaEnvironment"]["PhysicalResourceId"] == env.mwaa
    assert re.fullmatch(r"sgr-[0-9a-f]{17}", resources["MwaaSecurityGroupSelfEgress"]
                        ["PhysicalResourceId"])
    assert re.fullmatch(rf"{env.stack}-AlertTopicPolicy-[A-Z0-9]+",
                        resources["AlertTopicPolicy"]["PhysicalResourceId"])
    assert resources["DependenciesLayer"]["PhysicalResourceId"] == (
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:m7-etl-dependencies-{env.name}:1")
    # Its events: IN_PROGRESS/COMPLETE each, a resource after those it references.
    events = env.client("cloudformation").describe_stack_events(StackName=env.stack)[
        "StackEvents"][::-1]
    assert [(e["LogicalResourceId"], e["ResourceStatus"]) for e in (events[0], events[-1])] == [
        (env.stack, "CREATE_IN_PROGRESS"), (env.stack, "CREATE_COMPLETE")]
    done = [e["LogicalResourceId"] for e in events[1:-1] if e["ResourceStatus"] == "CREATE_COMPLETE"]
    assert sorted(done) == sorted(set(template_resources()) - {"AlertEmailSubscription"})
    for first, then in (("PipelineKey", "PipelineKeyAlias"), ("DependenciesLayer",
                        "RawToSilverFunction"), ("MwaaSecurityGroup", "MwaaEnvironment"),
                        ("MwaaEnvironment", "DagFailureAlarm"), ("GoldToSnowflakeJob",
                        "GlueJobFailedRule")):
        assert done.index(first) < done.index(then), (first, then)
    assert {e["PhysicalResourceId"] for e in events if e["LogicalResourceId"] == "MwaaEnvironment"} \
        == {env.mwaa}


def test_the_secret_holds_the_password_as_the_template_writes_it(deployed):
    env, _ = deployed
    sm = env.client("secretsmanager")
    secret = sm.describe_secret(SecretId=f"m7-etl/snowflake-{env.name}")
    assert json.loads(sm.get_secret_value(SecretId=secret["ARN"])["SecretString"]) == {
        "password": PASSWORD}
    assert secret["Description"] == "Snowflake password of the m7etl loader, read at run time."
    assert secret["KmsKeyId"] == env.physical("PipelineKey")
    stack = env.describe()
    assert PASSWORD not in json.dumps(stack, default=str)  # NoEcho: moto alone showed it
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}[
        "SnowflakePassword"] == "****"


def test_the_glue_job_is_in_moto_glue_with_its_arguments(deployed):
    env, _ = deployed
    job = env.client("glue").get_job(JobName=f"m7-etl-gold-to-snowflake-{env.name}")["Job"]
    secret_arn = env.outputs()["SnowflakeSecretArn"]
    assert job["DefaultArguments"] == {
        "--environment": env.name, "--data_bucket": env.data,
        "--snowflake_user": "M7_ETL_LOADER", "--snowflake_role": "M7_ETL_LOADER",
        "--snowflake_warehouse": "M7_ETL_WH", "--snowflake_database": "M7_ETL",
        "--snowflake_schema": "GOLD", "--snowflake_secret_id": secret_arn,
        "--additional-python-modules": "snowflake-connector-python==3.12.4,PyYAML==6.0.2",
        "library-set": "analytics",
        "--extra-py-files": f"s3://{env.code}/glue/m7etl_glue.zip",
        "--snowflake_stage": "M7_GOLD_STAGE",
    }  # no --snowflake_account: its parameter is empty (NoValue); no continuous-log argument
    # (Spark jobs only: a python-shell job writes to /aws-glue/python-jobs/{output,error})
    assert job["Command"] == {"Name": "pythonshell", "PythonVersion": "3.9",
                              "ScriptLocation": f"s3://{env.code}/glue/gold_to_snowflake.py"}
    assert job["Role"] == f"arn:aws:iam::{ACCOUNT}:role/{env.physical('GlueJobRole')}"
    assert (job["MaxCapacity"], job["Timeout"], job["MaxRetries"], job["GlueVersion"]) == (
        0.0625, 60, 0, "3.0")
    assert job["ExecutionProperty"] == {"MaxConcurrentRuns": 4}
    assert job["SecurityConfiguration"] == f"m7-etl-glue-{env.name}"


def test_functions_carry_their_layer_and_settings(deployed):
    env, _ = deployed
    config = env.client("lambda").get_function(
        FunctionName=f"m7-etl-raw-to-silver-{env.name}")["Configuration"]
    assert [layer["Arn"] for layer in config["Layers"]] == [
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:m7-etl-dependencies-{env.name}:1"]
    assert (config["Architectures"], config["EphemeralStorage"], config["MemorySize"],
            config["Timeout"], config["Handler"]) == (["x86_64"], {"Size": 2048}, 2048, 900,
                                                      "raw_to_silver.handler")
    assert config["Environment"]["Variables"]["M7_DATA_BUCKET"] == env.data
    assert config["Environment"]["Variables"]["M7_ERROR_THRESHOLD"] == "5.0"
    layer = env.client("lambda").list_layer_versions(
        LayerName=f"m7-etl-dependencies-{env.name}")["LayerVersions"]
    assert [(v["Version"], v["CompatibleArchitectures"], v["CompatibleRuntimes"]) for v in layer] \
        == [(1, ["x86_64"], ["python3.12", "python3.13"])]


def test_policies_alias_alarms_dashboard_and_egress_are_in_their_services(deployed):
    env, _ = deployed
    topic = env.outputs()["AlertTopicArn"]
    policy = json.loads(env.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]
                        ["Policy"])
    assert [(s["Sid"], s["Resource"]) for s in policy["Statement"]] == [
        ("AlarmsAndEventsPublish", topic), ("DenyInsecureTransport", topic)]
    queue = env.client("sqs").get_queue_url(QueueName=f"m7-etl-dlq-{env.name}")["QueueUrl"]
    queue_policy = json.loads(env.client("sqs").get_queue_attributes(
        QueueUrl=queue, AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert queue_policy["Statement"][0]["Sid"] == "DenyInsecureTransport"
    aliases = {a["AliasName"]: a["TargetKeyId"]
               for a in env.client("kms").list_aliases()["Aliases"]}
    assert aliases[f"alias/m7-etl-{env.name}"] == env.physical("PipelineKey")
    alarms = {a["AlarmName"]: a for a in env.client("cloudwatch").describe_alarms(
        AlarmNamePrefix="m7-etl-")["MetricAlarms"] if a["AlarmName"].endswith(env.name)}
    assert len(alarms) == 7
    rejected = alarms[f"m7-etl-rejected-rows-{env.name}"]
    assert (rejected["Threshold"], rejected["ComparisonOperator"], rejected["AlarmActions"]) == (
        5.0, "GreaterThanThreshold", [topic])
    assert rejected["Metrics"][0]["Expression"] == (
        "SELECT MAX(RejectedPercent) FROM SCHEMA(M7Etl, dataset, service)")
    body = json.loads(env.client("cloudwatch").get_dashboard(
        DashboardName=f"m7-etl-pipeline-{env.name}")["DashboardBody"])
    assert body["widgets"][-1]["properties"]["alarms"][0] == (  # a GetAtt in its Fn::Sub
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:m7-etl-raw-to-silver-errors-{env.name}")
    group = env.client("ec2").describe_security_groups(
        GroupIds=[env.physical("MwaaSecurityGroup")])["SecurityGroups"][0]
    assert {"IpProtocol": "-1", "UserIdGroupPairs": [group["GroupId"]]} in [
        {"IpProtocol": p["IpProtocol"],
         "UserIdGroupPairs": [g["GroupId"] for g in p.get("UserIdGroupPairs", [])]}
        for p in group["IpPermissionsEgress"]]
    exports = {e["Name"]: e["Value"] for e in env.client("cloudformation").list_exports()["Exports"]}
    assert group["VpcId"] == exports["VPC"]  # Fn::ImportValue of the network stack


# =============================================================================================
# Update and delete
# =============================================================================================
def test_an_update_reaches_every_resource_using_a_changed_parameter(moto, standin):
    env = new_env(moto, standin)
    env.prepare()
    env.create()
    glue, job_name = env.client("glue"), f"m7-etl-gold-to-snowflake-{env.name}"
    run_id = glue.start_job_run(JobName=job_name)["JobRunId"]
    layer_v2 = env.client("s3").put_object(Bucket=env.code, Key="layers/etl-dependencies.zip",
                                           Body=zip_of("layer_v2"))["VersionId"]
    started = time.monotonic()
    env.client("cloudformation").update_stack(
        StackName=env.stack, TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": "Environment", "UsePreviousValue": True},
                    {"ParameterKey": "SnowflakePassword", "ParameterValue": "New-Pa55word"},
                    {"ParameterKey": "GlueTimeoutMinutes", "ParameterValue": "30"},
                    {"ParameterKey": "LogRetentionInDays", "ParameterValue": "7"},
                    {"ParameterKey": "LayerCodeVersion", "ParameterValue": layer_v2},
                    {"ParameterKey": "AlertEmail", "ParameterValue": "ops@example.com"}])
    print(f"\nupdate_stack: {time.monotonic() - started:.2f} s")
    assert env.describe()["StackStatus"] == "UPDATE_COMPLETE"
    job = glue.get_job(JobName=job_name)["Job"]
    assert job["Timeout"] == 30
    assert [r["Id"] for r in glue.get_job_runs(JobName=job_name)["JobRuns"]] == [run_id]
    # Only in the secret's Fn::Sub: moto alone would not have updated it.
    secret = env.client("secretsmanager").get_secret_value(SecretId=f"m7-etl/snowflake-{env.name}")
    assert json.loads(secret["SecretString"]) == {"password": "New-Pa55word"}
    groups = env.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/m7-etl-")
    assert {g["logGroupName"]: g["retentionInDays"] for g in groups["logGroups"]
            if g["logGroupName"].endswith(env.name)} == {
        f"/aws/lambda/m7-etl-{f}-{env.name}": 7
        for f in ("raw-to-silver", "silver-to-gold", "s3-event", "maintenance")}
    # A new layer version replaces the old one, and the functions are moved to it.
    v2 = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:m7-etl-dependencies-{env.name}:2"
    assert [v["LayerVersionArn"] for v in env.client("lambda").list_layer_versions(
        LayerName=f"m7-etl-dependencies-{env.name}")["LayerVersions"]] == [v2]
    for function in ("raw-to-silver", "silver-to-gold", "s3-event", "maintenance"):
        config = env.client("lambda").get_function_configuration(
            FunctionName=f"m7-etl-{function}-{env.name}")
        assert [layer["Arn"] for layer in config["Layers"]] == [v2], function
    assert env.outputs()["AirflowWebUIUrl"] == f"https://{standin.host}"
    # HasAlertEmail is true now: the subscription is added.
    subscriptions = env.client("sns").list_subscriptions_by_topic(
        TopicArn=env.outputs()["AlertTopicArn"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"], s["SubscriptionArn"]) for s in subscriptions] == [
        ("email", "ops@example.com", env.physical("AlertEmailSubscription"))]


def test_a_delete_removes_every_resource_and_the_names_can_be_reused(moto, standin):
    env = new_env(moto, standin)
    env.prepare()
    env.create()
    stack_id = env.describe()["StackId"]
    env.client("cloudformation").delete_stack(StackName=env.stack)
    cf = env.client("cloudformation")
    assert cf.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    with pytest.raises(ClientError, match="EntityNotFoundException"):
        env.client("glue").get_job(JobName=f"m7-etl-gold-to-snowflake-{env.name}")
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        env.client("secretsmanager").describe_secret(SecretId=f"m7-etl/snowflake-{env.name}")
    assert [f for f in env.client("lambda").list_functions()["Functions"]
            if f["FunctionName"].endswith(env.name)] == []
    assert f"alias/m7-etl-{env.name}" not in {
        a["AliasName"] for a in env.client("kms").list_aliases()["Aliases"]}
    assert env.client("cloudwatch").describe_alarms(
        AlarmNames=[f"m7-etl-rejected-rows-{env.name}"])["MetricAlarms"] == []
    assert env.client("cloudwatch").list_dashboards(
        DashboardNamePrefix=f"m7-etl-pipeline-{env.name}")["DashboardEntries"] == []
    assert env.client("ssm").get_parameters(
        Names=[f"/m7etl/{env.name}/data-bucket"])["InvalidParameters"] == [
        f"/m7etl/{env.name}/data-bucket"]
    env.create()  # the secret went at once, as CloudFormation deletes it: the name is free
    assert env.describe()["StackStatus"] == "CREATE_COMPLETE"


def test_a_change_set_creates_the_stack_with_imports_and_outputs(moto, standin):
    """m7etl deploy's path: moto's change sets had no exports (Fn::ImportValue failed) and
    left the stack without outputs."""
    env = new_env(moto, standin)
    env.prepare()
    cf = env.client("cloudformation")
    change_set = cf.create_change_set(
        StackName=env.stack, ChangeSetName="m7etl-1", ChangeSetType="CREATE",
        TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"], Parameters=env.parameters())
    cf.execute_change_set(ChangeSetName=change_set["Id"])
    assert env.describe()["StackStatus"] == "CREATE_COMPLETE"
    outputs = env.outputs()
    assert outputs["GlueJobName"] == f"m7-etl-gold-to-snowflake-{env.name}"
    assert outputs["AirflowWebUIUrl"] == f"https://{standin.host}"


def test_a_failed_update_rolls_back_to_the_previous_template(moto, standin):
    env = new_env(moto, standin)
    env.prepare()
    env.create()
    env.client("cloudformation").update_stack(
        StackName=env.stack, TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": "Environment", "UsePreviousValue": True},
                    {"ParameterKey": "SnowflakePassword", "UsePreviousValue": True},
                    {"ParameterKey": "GlueTimeoutMinutes", "ParameterValue": "30"},
                    {"ParameterKey": "LayerCodeVersion", "ParameterValue": "no-such-version"}])
    stack = env.describe()
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    events = env.client("cloudformation").describe_stack_events(StackName=env.stack)["StackEvents"]
    failed = [(e["LogicalResourceId"], e["ResourceStatusReason"]) for e in events
              if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert [f[0] for f in failed] == ["DependenciesLayer"]
    assert "S3 Error Code: NoSuchVersion" in failed[0][1]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}[
        "GlueTimeoutMinutes"] == "60"  # the previous value, and the job with it
    assert env.client("glue").get_job(JobName=f"m7-etl-gold-to-snowflake-{env.name}")["Job"][
        "Timeout"] == 60


def test_a_failed_change_set_is_execute_failed_and_rolled_back(moto, standin):
    env = new_env(moto, standin)
    env.prepare(skip=("lambda/maintenance.zip",))
    cf = env.client("cloudformation")
    change_set = cf.create_change_set(
        StackName=env.stack, ChangeSetName="m7etl-1", ChangeSetType="CREATE",
        TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"], Parameters=env.parameters())
    cf.execute_change_set(ChangeSetName=change_set["Id"])  # answers, as CloudFormation does
    assert cf.describe_change_set(ChangeSetName=change_set["Id"])["ExecutionStatus"] == \
        "EXECUTE_FAILED"
    assert env.describe()["StackStatus"] == "ROLLBACK_COMPLETE"
    assert env.resources() == {} and "Outputs" not in env.describe()


def test_an_update_adds_and_removes_a_resource_whose_condition_changes(moto, standin):
    """AlertEmailSubscription exists only when AlertEmail is set (HasAlertEmail). An update
    that sends AlertEmail="" explicitly (m7etl deploy sends every parameter), where the
    create had left it to its default, rolled the stack back on moto: its update was called
    with no subscription ("'NoneType' object has no attribute 'props'"). CloudFormation
    leaves the resource absent; setting the address adds it, clearing it deletes it."""
    env = new_env(moto, standin)
    env.prepare()
    env.create()
    cf = env.client("cloudformation")

    def change_set(number: int, **values: str) -> str:
        made = cf.create_change_set(
            StackName=env.stack, ChangeSetName=f"m7etl-{number}", ChangeSetType="UPDATE",
            TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": "Environment", "UsePreviousValue": True},
                        {"ParameterKey": "SnowflakePassword", "UsePreviousValue": True},
                        *[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]])
        cf.execute_change_set(ChangeSetName=made["Id"])
        return env.describe()["StackStatus"]

    def subscriptions() -> list[tuple[str, str]]:
        found = env.client("sns").list_subscriptions_by_topic(
            TopicArn=env.outputs()["AlertTopicArn"])["Subscriptions"]
        return [(s["Protocol"], s["Endpoint"]) for s in found]

    assert change_set(1, AlertEmail="", GlueTimeoutMinutes="30") == "UPDATE_COMPLETE"
    assert "AlertEmailSubscription" not in env.resources() and subscriptions() == []
    assert change_set(2, AlertEmail="ops@example.com") == "UPDATE_COMPLETE"
    assert subscriptions() == [("email", "ops@example.com")]
    assert change_set(3, AlertEmail="") == "UPDATE_COMPLETE"
    assert "AlertEmailSubscription" not in env.resources() and subscriptions() == []
