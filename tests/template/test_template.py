"""Rules of templates/etl-pipeline-mwaa.yaml, checked on the template itself.

The template is read with cfn-lint's YAML decoder (it knows the short-form tags) and its
intrinsic functions are resolved by a small evaluator (``cfn_resolve.Resolver``) for a given
set of parameter values, so the tests assert on the names, ARNs and policies CloudFormation
would see. What each role's policies let its function do is proven against IAM itself in
``test_iam_enforced.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfn_resolve import ACCOUNT, PASSWORD, REGION, ROOT, TEMPLATE_PATH, Resolver
from cfnlint.decode import cfn_yaml

DOCS_PATH = ROOT / "docs" / "template.md"

TEMPLATE_BODY_LIMIT = 51_200  # bytes accepted by create-stack --template-body

# checkov checks the template may skip; each skip carries its reason in the resource metadata.
ALLOWED_CHECKOV_SKIPS = {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"}

FUNCTIONS = {
    "RawToSilverFunction": ("m7-etl-raw-to-silver", "raw_to_silver", "lambda/raw_to_silver.zip"),
    "SilverToGoldFunction": (
        "m7-etl-silver-to-gold",
        "silver_to_gold",
        "lambda/silver_to_gold.zip",
    ),
    "S3EventLambdaFunction": ("m7-etl-s3-event", "s3_event", "lambda/s3_event.zip"),
    "MaintenanceFunction": ("m7-etl-maintenance", "maintenance", "lambda/maintenance.zip"),
}
COMMON_ENV = {
    "M7_ENVIRONMENT",
    "M7_DATA_BUCKET",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
EXTRA_ENV = {
    "RawToSilverFunction": {"M7_ERROR_THRESHOLD", "M7_WARNING_THRESHOLD"},
    "SilverToGoldFunction": set(),
    "S3EventLambdaFunction": {"M7_MWAA_ENV_NAME", "M7_DAG_ID"},
    "MaintenanceFunction": {
        f"M7_RETENTION_DAYS_{p}"
        for p in ("LANDING", "RAW", "SILVER", "REJECTS", "QUARANTINE", "LOGS", "GOLD")
    },
}

@pytest.fixture(scope="module")
def template() -> dict:
    return cfn_yaml.load(str(TEMPLATE_PATH))


@pytest.fixture(scope="module")
def test_env(template) -> Resolver:
    """The guide's command: only SnowflakePassword given, every other parameter by default."""
    return Resolver(template)


def walk(node: Any, path: str = ""):
    """Every (path, value) leaf of a nested structure."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, node


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


# =============================================================================================
# The guide's command and the seed's names
# =============================================================================================
def test_template_fits_the_template_body_limit():
    size = len(TEMPLATE_PATH.read_bytes())
    assert size < TEMPLATE_BODY_LIMIT, (
        f"{size} bytes: create-stack --template-body (the guide's command) accepts "
        f"at most {TEMPLATE_BODY_LIMIT}"
    )


def test_only_the_password_needs_a_value(template):
    without_default = [n for n, p in template["Parameters"].items() if "Default" not in p]
    assert without_default == ["SnowflakePassword"]


def test_password_parameter_is_noecho_without_default(template):
    spec = template["Parameters"]["SnowflakePassword"]
    assert spec["NoEcho"] in (True, "true")
    assert "Default" not in spec


def test_seed_names_with_defaults(test_env):
    mwaa = test_env.resource("MwaaEnvironment")
    assert mwaa["Name"] == "m7-etl-mwaa-test"
    assert mwaa["AirflowVersion"] == "3.0.6"
    assert mwaa["SourceBucketArn"] == "arn:aws:s3:::m7-solocco-code-repository-test"
    assert mwaa["DagS3Path"] == "dags"
    assert mwaa["RequirementsS3Path"] == "requirements/requirements.txt"
    assert "RequirementsS3ObjectVersion" not in mwaa  # empty parameter = latest
    assert mwaa["NetworkConfiguration"]["SubnetIds"] == [
        "import:PrivateSubnet1",
        "import:PrivateSubnet2",
    ]
    assert test_env.resource("MwaaSecurityGroup")["VpcId"] == "import:VPC"

    for name, (function_name, module, key) in FUNCTIONS.items():
        fn = test_env.resource(name)
        assert fn["FunctionName"] == f"{function_name}-test"
        assert fn["Handler"] == f"{module}.handler"
        assert fn["Code"] == {"S3Bucket": "m7-solocco-code-repository-test", "S3Key": key}
        assert fn["Environment"]["Variables"]["M7_DATA_BUCKET"] == "m7-etl-data-solocco-test"
        assert fn["Runtime"] == "python3.12"
        assert fn["Architectures"] == ["x86_64"]

    layer = test_env.resource("DependenciesLayer")
    assert layer["LayerName"] == "m7-etl-dependencies-test"
    assert layer["Content"] == {
        "S3Bucket": "m7-solocco-code-repository-test",
        "S3Key": "layers/etl-dependencies.zip",
    }

    job = test_env.resource("GoldToSnowflakeJob")
    assert job["Name"] == "m7-etl-gold-to-snowflake-test"
    assert job["Command"]["ScriptLocation"] == (
        "s3://m7-solocco-code-repository-test/glue/gold_to_snowflake.py"
    )
    env = test_env.resource("S3EventLambdaFunction")["Environment"]["Variables"]
    assert env["M7_MWAA_ENV_NAME"] == "m7-etl-mwaa-test"
    assert env["M7_DAG_ID"] == "m7_etl_pipeline"
    assert test_env.resource("SnowflakeSecret")["Name"] == "m7-etl/snowflake-test"


def test_every_name_follows_the_environment(template):
    prod = Resolver(template, Environment="prod")
    assert prod.resource("MwaaEnvironment")["Name"] == "m7-etl-mwaa-prod"
    assert prod.resource("MwaaEnvironment")["SourceBucketArn"].endswith(":::m7-solocco-code-repository-prod")
    for name, (function_name, _, _) in FUNCTIONS.items():
        fn = prod.resource(name)
        assert fn["FunctionName"] == f"{function_name}-prod"
        assert fn["Environment"]["Variables"]["M7_DATA_BUCKET"] == "m7-etl-data-solocco-prod"
        assert fn["Code"]["S3Bucket"] == "m7-solocco-code-repository-prod"
    text = json.dumps(prod.resolve(template["Resources"]))
    assert "-test" not in text.replace("-test-", "")  # no name stayed on the test environment


def test_explicit_buckets_and_versions_are_used(template):
    env = Resolver(
        template,
        DataBucketName="my-data",
        CodeBucketName="my-code",
        RawToSilverCodeVersion="v1",
        LayerCodeVersion="v2",
        RequirementsVersion="v3",
    )
    fn = env.resource("RawToSilverFunction")
    assert fn["Code"] == {
        "S3Bucket": "my-code",
        "S3Key": "lambda/raw_to_silver.zip",
        "S3ObjectVersion": "v1",
    }
    assert fn["Environment"]["Variables"]["M7_DATA_BUCKET"] == "my-data"
    assert env.resource("DependenciesLayer")["Content"]["S3ObjectVersion"] == "v2"
    assert env.resource("MwaaEnvironment")["RequirementsS3ObjectVersion"] == "v3"
    assert env.resource("S3EventInvokePermission")["SourceArn"] == "arn:aws:s3:::my-data"


def test_explicit_network_replaces_the_exports(template):
    env = Resolver(
        template,
        VpcId="vpc-0123456789abcdef0",
        PrivateSubnet1Id="subnet-0123456789abcdef1",
        PrivateSubnet2Id="subnet-0123456789abcdef2",
    )
    assert env.resource("MwaaSecurityGroup")["VpcId"] == "vpc-0123456789abcdef0"
    assert env.resource("MwaaEnvironment")["NetworkConfiguration"]["SubnetIds"] == [
        "subnet-0123456789abcdef1",
        "subnet-0123456789abcdef2",
    ]
    renamed = Resolver(template, VpcExportName="core-VPC", PrivateSubnet1ExportName="core-A")
    assert renamed.resource("MwaaSecurityGroup")["VpcId"] == "import:core-VPC"
    assert renamed.resource("MwaaEnvironment")["NetworkConfiguration"]["SubnetIds"][0] == ("import:core-A")
    assert "ExplicitNetworkIsComplete" in template["Rules"]


def test_template_mentions_every_seed_name():
    text = TEMPLATE_PATH.read_text()
    for name in (
        "m7-etl-data-solocco-",
        "m7-solocco-code-repository-",
        "m7-etl-mwaa-",
        "m7_etl_pipeline",
        "lambda/raw_to_silver.zip",
        "lambda/silver_to_gold.zip",
        "glue/gold_to_snowflake.py",
        "layers/etl-dependencies.zip",
        "requirements/requirements.txt",
        "SnowflakePassword",
        "S3EventLambdaFunction",
        "Default: VPC",
        "Default: PrivateSubnet1",
        "Default: PrivateSubnet2",
        "Default: 3.0.6",
    ):
        assert name in text, name


# =============================================================================================
# MWAA, Lambda, Glue contracts
# =============================================================================================
def test_mwaa_environment_logs_everything_and_takes_parameters(template, test_env):
    mwaa = test_env.resource("MwaaEnvironment")
    logging = mwaa["LoggingConfiguration"]
    assert set(logging) == {
        "DagProcessingLogs",
        "SchedulerLogs",
        "TaskLogs",
        "WebserverLogs",
        "WorkerLogs",
    }
    assert all(cfg["Enabled"] is True for cfg in logging.values())
    raw = template["Resources"]["MwaaEnvironment"]["Properties"]
    assert raw["WebserverAccessMode"] == {"Ref": "WebserverAccessMode"}
    assert raw["EnvironmentClass"] == {"Ref": "EnvironmentClass"}
    assert raw["AirflowVersion"] == {"Ref": "AirflowVersion"}
    # MWAA's own log groups exist in the stack, with retention, before the environment.
    groups = {g["LogGroupName"] for g in test_env.resources("AWS::Logs::LogGroup").values()}
    for kind in ("DAGProcessing", "Scheduler", "Task", "WebServer", "Worker"):
        assert f"airflow-m7-etl-mwaa-test-{kind}" in groups
    assert len(template["Resources"]["MwaaEnvironment"]["DependsOn"]) >= 5


def test_security_group_references_itself(test_env):
    sg = test_env.resource("MwaaSecurityGroup")
    ingress = test_env.resource("MwaaSecurityGroupSelfIngress")
    assert ingress["GroupId"] == ingress["SourceSecurityGroupId"] == "ref:MwaaSecurityGroup"
    assert ingress["IpProtocol"] == "-1"
    assert "SecurityGroupIngress" not in sg  # nothing from outside
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in sg["SecurityGroupEgress"]] == [
        ("tcp", 443, 443)
    ]


def test_lambda_environment_contract(test_env):
    for name, (_, module, _) in FUNCTIONS.items():
        variables = test_env.resource(name)["Environment"]["Variables"]
        assert set(variables) == COMMON_ENV | EXTRA_ENV[name], name
        assert variables["POWERTOOLS_SERVICE_NAME"] == module
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "M7Etl"
        assert variables["M7_ENVIRONMENT"] == "test"
    r2s = test_env.resource("RawToSilverFunction")["Environment"]["Variables"]
    assert float(r2s["M7_ERROR_THRESHOLD"]) == 5.0
    assert float(r2s["M7_WARNING_THRESHOLD"]) == 10.0
    maintenance = test_env.resource("MaintenanceFunction")["Environment"]["Variables"]
    assert maintenance["M7_RETENTION_DAYS_GOLD"] == "0"
    assert all(re.fullmatch(r"\d+", maintenance[k]) for k in maintenance if "RETENTION" in k)


def test_lambda_sizing_and_code_versions_are_parameters(template):
    for name in FUNCTIONS:
        props = template["Resources"][name]["Properties"]
        for key in ("MemorySize", "Timeout", "Runtime", "Architectures"):
            assert "Ref" in json.dumps(props[key]), (name, key)
        assert "Ref" in props["EphemeralStorage"]["Size"]
        assert "Fn::If" in props["Code"]["S3ObjectVersion"]


def test_every_function_has_its_own_log_group(test_env):
    groups = {g["LogGroupName"] for g in test_env.resources("AWS::Logs::LogGroup").values()}
    for name in FUNCTIONS:
        fn = test_env.resource(name)
        expected = f"/aws/lambda/{fn['FunctionName']}"
        assert fn["LoggingConfig"]["LogGroup"] == expected
        assert expected in groups


def test_every_log_group_has_retention_and_encryption(template):
    groups = [r for r in template["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert len(groups) >= 9  # 4 functions, 5 MWAA (the Glue python-shell job writes to its own groups)
    for group in groups:
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
        assert "KmsKeyId" in group["Properties"]


def test_glue_job_contract(test_env):
    job = test_env.resource("GoldToSnowflakeJob")
    assert job["Command"]["Name"] == "pythonshell"
    assert job["Command"]["PythonVersion"] == "3.9"
    args = job["DefaultArguments"]
    for key in (
        "--environment",
        "--data_bucket",
        "--snowflake_user",
        "--snowflake_role",
        "--snowflake_warehouse",
        "--snowflake_database",
        "--snowflake_schema",
        "--snowflake_secret_id",
        "--additional-python-modules",
    ):
        assert key in args, key
    assert args["--data_bucket"] == "m7-etl-data-solocco-test"
    assert args["--snowflake_secret_id"] == "ref:SnowflakeSecret"
    modules = args["--additional-python-modules"].split(",")
    assert all("==" in m for m in modules)  # pinned
    assert {m.split("==")[0] for m in modules} >= {"snowflake-connector-python", "PyYAML"}
    assert args["library-set"] == "analytics"  # pandas, pyarrow, boto3 for the loader
    assert args["--extra-py-files"] == "s3://m7-solocco-code-repository-test/glue/m7etl_glue.zip"
    # An empty account is not passed (the stage's default: test_template_resources.py).
    assert "--snowflake_account" not in args
    assert job["SecurityConfiguration"] == "ref:GlueSecurityConfiguration"


def test_optional_snowflake_settings_are_passed_when_set(template):
    args = Resolver(template, SnowflakeAccount="org-acct", SnowflakeStage="GOLD_STAGE").resource(
        "GoldToSnowflakeJob"
    )["DefaultArguments"]
    assert args["--snowflake_account"] == "org-acct"
    assert args["--snowflake_stage"] == "GOLD_STAGE"


def test_s3_may_invoke_the_event_function_only_from_the_data_bucket(test_env):
    permission = test_env.resource("S3EventInvokePermission")
    assert permission["Principal"] == "s3.amazonaws.com"
    assert permission["SourceArn"] == "arn:aws:s3:::m7-etl-data-solocco-test"
    assert permission["SourceAccount"] == ACCOUNT
    assert permission["FunctionName"].endswith(":function:m7-etl-s3-event-test")


def test_maintenance_runs_daily(test_env):
    rule = test_env.resource("MaintenanceScheduleRule")
    assert rule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert rule["Targets"][0]["Arn"].endswith(":function:m7-etl-maintenance-test")


# =============================================================================================
# The secret never leaks
# =============================================================================================
def test_password_lives_only_in_the_secret(template, test_env):
    resolved = {
        "Resources": test_env.resolve(template["Resources"]),
        "Outputs": test_env.resolve(template["Outputs"]),
        "Metadata": test_env.resolve(template.get("Metadata", {})),
    }
    hits = [path for path, value in walk(resolved) if isinstance(value, str) and PASSWORD in value]
    assert hits == ["/Resources/SnowflakeSecret/Properties/SecretString"]
    secret = json.loads(test_env.resource("SnowflakeSecret")["SecretString"])
    assert secret == {"password": PASSWORD}


def test_no_function_environment_or_output_names_a_password(template, test_env):
    for name in FUNCTIONS:
        variables = test_env.resource(name)["Environment"]["Variables"]
        assert not [k for k in variables if re.search("PASSWORD|SECRET", k)], name
    for name, output in template["Outputs"].items():
        assert "SnowflakePassword" not in json.dumps(output), name


# =============================================================================================
# Least privilege
# =============================================================================================
READ_VERBS = ("Get", "List", "Describe")
# Actions that accept no resource but "*"; write ones must carry a Condition.
RESOURCELESS_ACTIONS = {"s3:GetAccountPublicAccessBlock", "cloudwatch:PutMetricData"}
# Resources outside the stack's own names that AWS requires, each with its reason.
DOCUMENTED_FOREIGN_RESOURCES = {
    # MWAA's Celery queues live in an AWS-owned account (AWS's documented execution role).
    f"arn:aws:sqs:{REGION}:*:airflow-celery-*",
    # Glue's default Python-shell log groups, shared by the account.
    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws-glue/python-jobs/output:*",
    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws-glue/python-jobs/error:*",
}
OWN_NAME = re.compile(
    r"m7-etl-data-solocco-test|m7-solocco-code-repository-test|m7-etl-mwaa-test|"
    r"m7-etl-[a-z0-9-]+-test|m7-etl-glue-test"
)


def is_write(action: str) -> bool:
    return not action.split(":", 1)[1].startswith(READ_VERBS)


def role_statements(resolver: Resolver) -> list[tuple[str, dict]]:
    out = []
    for name, role in resolver.resources("AWS::IAM::Role").items():
        assert not role.get("ManagedPolicyArns"), f"{name}: managed policies are not scoped"
        for policy in role.get("Policies", []):
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                out.append((name, statement))
    return out


@pytest.fixture(scope="module", params=["defaults", "gold-retention"])
def any_env(request, template) -> Resolver:
    if request.param == "gold-retention":
        return Resolver(template, RetentionDaysGold="30")
    return Resolver(template)


def test_no_wildcard_action_and_no_not_action(any_env):
    statements = role_statements(any_env)
    assert len(statements) > 30
    for role, statement in statements:
        assert "NotAction" not in statement, role
        for action in as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), (role, action)


def test_every_allowed_resource_belongs_to_the_stack(any_env):
    for role, statement in role_statements(any_env):
        if statement["Effect"] != "Allow":
            continue
        actions = as_list(statement["Action"])
        sid = statement.get("Sid", "?")
        if "NotResource" in statement:
            # AWS's documented MWAA statement: AWS-owned keys, only through SQS.
            assert "Resource" not in statement
            via = statement["Condition"]["StringLike"]["kms:ViaService"]
            assert via == [f"sqs.{REGION}.amazonaws.com"], (role, sid)
            assert all(a.startswith("kms:") for a in actions), (role, sid)
            continue
        for resource in as_list(statement["Resource"]):
            where = (role, sid, resource)
            if resource == "*":
                assert set(actions) <= RESOURCELESS_ACTIONS, where
                if any(is_write(a) for a in actions):
                    assert statement.get("Condition"), where
                continue
            if resource.startswith(("ref:", "att:")):
                continue  # a resource this stack creates
            if resource in DOCUMENTED_FOREIGN_RESOURCES:
                continue
            if resource == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:*":
                assert not any(is_write(a) for a in actions), where
                continue
            assert OWN_NAME.search(resource), where
            if ":s3:::" not in resource:
                assert f":{REGION}:{ACCOUNT}:" in resource, where


def s3_grants(resolver: Resolver, role: str) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for name, statement in role_statements(resolver):
        if name != role or statement["Effect"] != "Allow":
            continue
        for action in as_list(statement["Action"]):
            if action.startswith("s3:") and action != "s3:GetAccountPublicAccessBlock":
                for resource in as_list(statement["Resource"]):
                    short = resource.replace("arn:aws:s3:::m7-etl-data-solocco-test", "DATA")
                    short = short.replace("arn:aws:s3:::m7-solocco-code-repository-test", "CODE")
                    grants.setdefault(action, set()).add(short)
    return grants


# What each function and the DAG may do in the data bucket is proven by running them as IAM
# users holding the template's policies (test_iam_enforced.py). The code bucket is read by
# AWS's services themselves (MWAA's DAG sync, Glue's script download), out of reach there.
CODE_BUCKET_READS = {
    "MwaaExecutionRole": {
        "s3:GetObject": {"CODE/dags/*", "CODE/requirements/*"},
        "s3:GetObjectVersion": {"CODE/dags/*", "CODE/requirements/*"},
    },
    "GlueJobRole": {"s3:GetObject": {"CODE/glue/gold_to_snowflake.py", "CODE/glue/m7etl_glue.zip"}},
}


@pytest.mark.parametrize("role", ["RawToSilverRole", "SilverToGoldRole", "S3EventRole",
                                  "MaintenanceRole", "GlueJobRole", "MwaaExecutionRole"])
def test_the_code_bucket_is_only_read_where_the_services_read_it(test_env, role):
    objects = {action: {r for r in resources if r.startswith("CODE/")}
               for action, resources in s3_grants(test_env, role).items()}
    assert {a: r for a, r in objects.items() if r} == CODE_BUCKET_READS.get(role, {})


def test_every_listing_of_the_data_bucket_names_its_prefixes(any_env):
    """s3:ListBucket on the data bucket only with an s3:prefix condition (the prefixes each
    function lists, or HEADs: a missing key answers 404 rather than 403 only with it)."""
    listing = [(role, st) for role, st in role_statements(any_env)
               if "s3:ListBucket" in as_list(st["Action"])
               and st["Resource"] == "arn:aws:s3:::m7-etl-data-solocco-test"]
    assert {role for role, _ in listing} == {"RawToSilverRole", "SilverToGoldRole", "S3EventRole",
                                            "MaintenanceRole", "GlueJobRole", "MwaaExecutionRole"}
    for role, statement in listing:
        assert as_list(statement["Action"]) == ["s3:ListBucket"], role
        ((operator, tests),) = statement["Condition"].items()
        assert operator in ("StringLike", "StringEquals") and list(tests) == ["s3:prefix"], role
        assert all(p and p != "*" for p in tests["s3:prefix"]), role


def test_each_function_writes_only_its_own_log_group(test_env):
    roles = {
        "RawToSilverRole": "m7-etl-raw-to-silver-test",
        "SilverToGoldRole": "m7-etl-silver-to-gold-test",
        "S3EventRole": "m7-etl-s3-event-test",
        "MaintenanceRole": "m7-etl-maintenance-test",
    }
    for role, function_name in roles.items():
        log_resources = {
            r
            for name, st in role_statements(test_env)
            if name == role and any(a.startswith("logs:") for a in as_list(st["Action"]))
            for r in as_list(st["Resource"])
        }
        assert log_resources == {f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function_name}:*"}


def test_mwaa_invokes_exactly_the_pipeline_functions_and_job(test_env):
    by_action: dict[str, set[str]] = {}
    for name, st in role_statements(test_env):
        if name == "MwaaExecutionRole" and st["Effect"] == "Allow":
            for action in as_list(st["Action"]):
                by_action.setdefault(action, set()).update(as_list(st.get("Resource", [])))
    assert by_action["lambda:InvokeFunction"] == {
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:m7-etl-raw-to-silver-test",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:m7-etl-silver-to-gold-test",
    }
    assert by_action["glue:StartJobRun"] == {
        f"arn:aws:glue:{REGION}:{ACCOUNT}:job/m7-etl-gold-to-snowflake-test"
    }
    # The DAG's failure alert: its own topic only (the role had no sns:Publish before, so
    # the alert task would have been AccessDenied in AWS).
    assert len(by_action["sns:Publish"]) == 1 and "AlertTopic" in str(by_action["sns:Publish"])
    assert not [
        a
        for a in by_action
        if a.startswith(("lambda:", "glue:"))
        and a
        not in {
            "lambda:InvokeFunction",
            "glue:StartJobRun",
            "glue:GetJob",
            "glue:GetJobRun",
            "glue:GetJobRuns",
            "glue:BatchStopJobRun",
        }
    ]


def test_only_the_glue_role_reads_the_secret(test_env):
    readers = {
        name
        for name, st in role_statements(test_env)
        if any(a.startswith("secretsmanager:") for a in as_list(st["Action"]))
    }
    assert readers == {"GlueJobRole"}


def test_s3_event_function_may_only_trigger_its_environment(test_env):
    resources = {
        r
        for name, st in role_statements(test_env)
        if name == "S3EventRole" and any(a.startswith("airflow:") for a in as_list(st["Action"]))
        for r in as_list(st["Resource"])
    }
    assert resources == {
        f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/m7-etl-mwaa-test",
        f"arn:aws:airflow:{REGION}:{ACCOUNT}:role/m7-etl-mwaa-test/User",
    }


def test_no_named_iam_resources(template):
    """CAPABILITY_IAM (the guide's command) cannot create named IAM resources."""
    for name, res in template["Resources"].items():
        if res["Type"].startswith("AWS::IAM::"):
            assert "RoleName" not in res["Properties"], name
            assert "ManagedPolicyName" not in res["Properties"], name


# =============================================================================================
# Encryption, TLS, alarms, dashboard, outputs
# =============================================================================================
def test_storage_is_encrypted_and_tls_only(test_env):
    assert test_env.resource("PipelineKey")["EnableKeyRotation"] is True
    assert test_env.resource("SnowflakeSecret")["KmsKeyId"] == "ref:PipelineKey"
    assert test_env.resource("AlertTopic")["KmsMasterKeyId"] == "ref:PipelineKey"
    assert test_env.resource("DeadLetterQueue")["KmsMasterKeyId"] == "ref:PipelineKey"
    for policy_name in ("AlertTopicPolicy", "DeadLetterQueuePolicy"):
        statements = test_env.resource(policy_name)["PolicyDocument"]["Statement"]
        assert any(
            st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for st in statements
        ), policy_name
    for name in FUNCTIONS:
        assert test_env.resource(name)["KmsKeyArn"] == "att:PipelineKey.Arn"


def test_alarms_go_to_the_alert_topic(test_env):
    alarms = test_env.resources("AWS::CloudWatch::Alarm")
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == ["ref:AlertTopic"], name
    metrics = {(a.get("Namespace"), a.get("MetricName")) for a in alarms.values()}
    assert ("AmazonMWAA", "DAGDurationFailed") in metrics
    lambda_alarms = {
        a["Dimensions"][0]["Value"]
        for a in alarms.values()
        if (a.get("Namespace"), a.get("MetricName")) == ("AWS/Lambda", "Errors")
    }
    assert lambda_alarms == {f"{n}-test" for n, _, _ in FUNCTIONS.values()}
    rejected = alarms["RejectedRowsAlarm"]
    assert "RejectedPercent" in rejected["Metrics"][0]["Expression"]
    assert "M7Etl" in rejected["Metrics"][0]["Expression"]
    assert rejected["Threshold"] == "5.0"
    glue_rule = test_env.resource("GlueJobFailedRule")
    assert glue_rule["EventPattern"]["detail"]["jobName"] == ["m7-etl-gold-to-snowflake-test"]
    assert set(glue_rule["EventPattern"]["detail"]["state"]) == {"FAILED", "TIMEOUT", "ERROR"}
    assert glue_rule["Targets"][0]["Arn"] == "ref:AlertTopic"


def test_email_subscription_is_optional(template):
    assert Resolver(template).resource("AlertEmailSubscription") == {}
    sub = Resolver(template, AlertEmail="ops@example.com").resource("AlertEmailSubscription")
    assert sub["Endpoint"] == "ops@example.com" and sub["Protocol"] == "email"


def test_dashboard_is_valid_json_with_the_guide_metrics(test_env):
    body = json.loads(test_env.resource("Dashboard")["DashboardBody"])
    text = json.dumps(body)
    for metric in (
        "Invocations",
        "Errors",
        "Duration",
        "Throttles",
        "RowsRead",
        "RowsValid",
        "RowsRejected",
        "RejectedPercent",
        "SchedulerHeartbeat",
        "DAGDurationFailed",
        "TriggeredRules",
    ):
        assert metric in text, metric
    assert "m7-etl-raw-to-silver-test" in text and "m7-etl-mwaa-test" in text
    assert len(body["widgets"]) >= 8


def test_outputs(template, test_env):
    outputs = test_env.resolve(template["Outputs"])
    for key in (
        "AirflowWebUIUrl",
        "DashboardUrl",
        "S3EventLambdaFunctionArn",
        "RawToSilverFunctionName",
        "SilverToGoldFunctionName",
        "S3EventFunctionName",
        "MaintenanceFunctionName",
        "GlueJobName",
        "SnowflakeSecretArn",
        "AlertTopicArn",
        "MwaaEnvironmentName",
    ):
        assert key in outputs, key
    assert outputs["AirflowWebUIUrl"]["Value"].startswith("https://")
    assert outputs["DashboardUrl"]["Value"].startswith(f"https://{REGION}.console.aws.amazon.com/")
    assert outputs["DashboardUrl"]["Value"].endswith("name=m7-etl-pipeline-test")
    assert outputs["S3EventLambdaFunctionArn"]["Value"].endswith(":function:m7-etl-s3-event-test")
    assert outputs["MwaaEnvironmentName"]["Value"] == "m7-etl-mwaa-test"
    assert outputs["GlueJobName"]["Value"] == "m7-etl-gold-to-snowflake-test"


# =============================================================================================
# Real tools
# =============================================================================================
def cfn_lint(path: Path) -> list[str]:
    from cfnlint.api import lint_file

    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in lint_file(path)]


def test_cfn_lint_reports_nothing():
    assert cfn_lint(TEMPLATE_PATH) == []


def test_cfn_lint_would_catch_a_broken_edit(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        TEMPLATE_PATH.read_text().replace("RetentionInDays: !Ref LogRetentionInDays", "RetentionInDays: 4", 1)
    )
    assert any(m.startswith("E3030") for m in cfn_lint(broken))


def find_checkov() -> str | None:
    candidates = [os.environ.get("M7_CHECKOV"), str(ROOT / ".venv-checkov" / "bin" / "checkov")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("checkov")


def test_checkov_skips_are_few_and_documented(template):
    docs = DOCS_PATH.read_text() if DOCS_PATH.exists() else ""
    seen = set()
    for name, res in template["Resources"].items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"] in ALLOWED_CHECKOV_SKIPS, (name, skip["id"])
            assert len(str(skip.get("comment", "")).strip()) >= 20, (name, skip["id"])
            seen.add(skip["id"])
    for check in seen:
        assert check in docs, f"{check} is skipped but not explained in docs/template.md"


def test_checkov_reports_no_failed_check():
    checkov = find_checkov()
    if checkov is None:
        pytest.skip("checkov not installed: run `make checkov` (creates .venv-checkov) or set M7_CHECKOV")
    result = subprocess.run(
        [
            checkov,
            "-f",
            str(TEMPLATE_PATH),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 50  # it really scanned the resources
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert skipped <= ALLOWED_CHECKOV_SKIPS


def test_moto_cloudformation_accepts_the_template(template, monkeypatch):
    """moto's CloudFormation parses the template (sent as JSON: moto's YAML reader does not
    know the short-form tags). moto cannot create MWAA, Glue jobs or secrets, so the stack
    itself is not deployed here; the resolver tests above cover the resolved properties."""
    moto = pytest.importorskip("moto")
    import boto3

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        client = boto3.client("cloudformation", region_name=REGION)
        answer = client.validate_template(TemplateBody=json.dumps(template))
    assert answer["Description"].startswith("m7etl ETL pipeline")
