"""``m7etl doctor``: one line per prerequisite, exit 2 when one fails.

Against the moto server: buckets, versioning, public access block, a small network stack
exporting a real moto VPC and subnets, credentials. moto has no MWAA, so the environment
and ``aws_default`` checks run against a minimal stand-in below that speaks the two MWAA
calls the doctor makes (``GetEnvironment`` and ``InvokeRestApi``).
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.deploy.config import load_env
from m7etl.deploy.doctor import (
    FAIL,
    PASS,
    SKIP,
    Check,
    check_credentials,
    check_template,
    network_plan,
    run_checks,
    subnet_problem,
)
from m7etl.storage.aws import Clients

ROOT = Path(__file__).resolve().parents[2]
REAL_TEMPLATE = ROOT / "templates" / "etl-pipeline-mwaa.yaml"
TINY_TEMPLATE = "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Topic:\n    Type: AWS::SNS::Topic\n"
IDENTITY = "account 123456789012 as arn:aws:sts::123456789012:user/moto"
W = 25  # the longest check name, code-bucket-public-access


def line(status: str, name: str, detail: str) -> str:
    return f"{status}  {name.ljust(W)}  {detail}"


# -- pure ---------------------------------------------------------------------------------

def test_network_plan_follows_the_templates_condition():
    assert network_plan({}) == network_plan({"PrivateSubnet1Id": "subnet-1"})  # ids need VpcId
    assert network_plan({}).names == {"VPC": "VPC", "PrivateSubnet1": "PrivateSubnet1",
                                      "PrivateSubnet2": "PrivateSubnet2"}
    renamed = network_plan({"VpcExportName": "core-vpc", "PrivateSubnet2ExportName": "core-b"})
    assert (renamed.mode, renamed.names) == ("exports", {
        "VPC": "core-vpc", "PrivateSubnet1": "PrivateSubnet1", "PrivateSubnet2": "core-b"})
    explicit = network_plan({"VpcId": "vpc-1", "PrivateSubnet1Id": "subnet-1",
                             "PrivateSubnet2Id": "subnet-2"})
    assert (explicit.mode, explicit.names, explicit.problem) == (
        "explicit", {"VPC": "vpc-1", "PrivateSubnet1": "subnet-1", "PrivateSubnet2": "subnet-2"},
        None)
    assert network_plan({"VpcId": "vpc-1"}).problem == (
        "VpcId is set but PrivateSubnet1Id and PrivateSubnet2Id are not")
    assert network_plan({"VpcId": "vpc-1", "PrivateSubnet1Id": "subnet-1"}).problem == (
        "VpcId is set but PrivateSubnet2Id is not")


def test_subnet_problems():
    ids = {"VPC": "vpc-1", "PrivateSubnet1": "subnet-a", "PrivateSubnet2": "subnet-b"}
    a = {"SubnetId": "subnet-a", "VpcId": "vpc-1", "AvailabilityZone": "eu-west-1a"}
    b = {"SubnetId": "subnet-b", "VpcId": "vpc-1", "AvailabilityZone": "eu-west-1b"}
    assert subnet_problem(ids, [a, b]) is None
    assert subnet_problem(ids, [a, {**b, "AvailabilityZone": "eu-west-1a"}]) == (
        "subnet-a and subnet-b are both in eu-west-1a")
    assert subnet_problem(ids, [a, {**b, "VpcId": "vpc-2"}]) == "subnet subnet-b is in vpc-2, not in vpc-1"
    assert subnet_problem(ids, [a]) == "subnet subnet-b does not exist"
    assert subnet_problem({**ids, "PrivateSubnet2": "subnet-a"}, [a]) == (
        "PrivateSubnet1 and PrivateSubnet2 are the same subnet subnet-a")


# -- the template -------------------------------------------------------------------------

def test_the_projects_template_passes_cfn_lint():
    check = check_template(REAL_TEMPLATE, "eu-west-1")
    assert check == Check("template", PASS, f"{REAL_TEMPLATE} passes cfn-lint (eu-west-1)")


def test_a_template_cfn_lint_rejects_fails_with_its_first_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_TEMPLATE + "    Properties:\n      Bogus: 1\n", encoding="utf-8")
    check = check_template(bad, "eu-west-1")
    assert (check.status, check.detail) == (FAIL, f"{bad}: 1 cfn-lint error(s); first E3002 line 6: "
                                                  "Additional properties are not allowed ('Bogus' was "
                                                  "unexpected)")
    assert check.fix == "Run `make lint-template` and fix what cfn-lint reports."


def test_a_template_warning_warns(tmp_path):
    warned = tmp_path / "warned.yaml"
    warned.write_text("Parameters:\n  Unused: {Type: String}\n" + TINY_TEMPLATE, encoding="utf-8")
    check = check_template(warned, "eu-west-1")
    assert (check.status, check.detail) == ("warn", f"{warned}: 1 cfn-lint warning(s); first W2001 "
                                                    "line 2: Parameter Unused not used.")


def test_a_missing_template_fails(tmp_path):
    check = check_template(tmp_path / "nope.yaml", "eu-west-1")
    assert (check.status, check.detail) == (FAIL, f"template {tmp_path / 'nope.yaml'} not found")


# -- a healthy environment in moto, and what breaks it ------------------------------------

class Env:
    """The resources of one doctor test: unique names, so tests share the moto server."""

    def __init__(self, moto: str, tmp_path: Path):
        self.moto, self.tmp = moto, tmp_path
        self.u = uuid.uuid4().hex[:10]
        self.c = {n: boto3.client(n, endpoint_url=moto, region_name="eu-west-1")
                  for n in ("s3", "ec2", "cloudformation")}
        self.data, self.code = f"m7-etl-data-doc-{self.u}", f"m7-code-doc-{self.u}"
        self.stack, self.mwaa = f"m7-doc-{self.u}", f"m7-etl-mwaa-{self.u}"
        self.template = tmp_path / "tiny.yaml"
        self.template.write_text(TINY_TEMPLATE, encoding="utf-8")
        self.extra = ""

    def bucket(self, name: str, region: str = "eu-west-1") -> None:
        s3 = boto3.client("s3", endpoint_url=self.moto, region_name=region)
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})

    def healthy_buckets(self) -> None:
        self.bucket(self.data)
        self.bucket(self.code)
        self.c["s3"].put_bucket_versioning(Bucket=self.code,
                                           VersioningConfiguration={"Status": "Enabled"})
        self.c["s3"].put_public_access_block(Bucket=self.code, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})

    def network(self, zones=("eu-west-1a", "eu-west-1b"), export=True) -> dict[str, str]:
        ec2 = self.c["ec2"]
        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=z)
                   ["Subnet"]["SubnetId"] for i, z in enumerate(zones, start=1)]
        self.ids = {"VPC": vpc, "PrivateSubnet1": subnets[0], "PrivateSubnet2": subnets[1]}
        self.exports = {role: f"{role}-{self.u}" for role in self.ids}
        if export:
            self.c["cloudformation"].create_stack(StackName=f"net-{self.u}", TemplateBody=json.dumps({
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {role: {"Value": value, "Export": {"Name": self.exports[role]}}
                            for role, value in self.ids.items()}}))
        return self.ids

    def toml(self, parameters: dict[str, str] | None = None, **keys: str) -> Path:
        params = {"VpcExportName": f"VPC-{self.u}",
                  "PrivateSubnet1ExportName": f"PrivateSubnet1-{self.u}",
                  "PrivateSubnet2ExportName": f"PrivateSubnet2-{self.u}"}
        params.update(parameters or {})
        values = {"endpoint_url": self.moto, "data_bucket": self.data, "code_bucket": self.code,
                  "stack_name": self.stack, "mwaa_environment": self.mwaa, **keys}
        text = "[test]\n" + "".join(f'{k} = "{v}"\n' for k, v in values.items())
        text += self.extra + "[test.parameters]\n" + "".join(f'{k} = "{v}"\n' for k, v in params.items())
        path = self.tmp / "m7etl.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def doctor(self, *args: str, config: Path | None = None):
        return CliRunner().invoke(cli, ["doctor", "--env", "test", "--config",
                                        str(config or self.toml()), "--template",
                                        str(self.template), *args])

    def healthy_lines(self) -> list[str]:
        ids = self.ids
        return [
            line("pass", "region", "eu-west-1"),
            line("pass", "credentials", IDENTITY),
            line("pass", "data-bucket", f"{self.data} (eu-west-1)"),
            line("pass", "code-bucket", f"{self.code} (eu-west-1)"),
            line("pass", "code-bucket-versioning", f"versioning enabled on {self.code}"),
            line("pass", "code-bucket-public-access", f"all public access blocked on {self.code}"),
            line("pass", "network", f"exports VPC-{self.u}={ids['VPC']}, PrivateSubnet1-{self.u}="
                                    f"{ids['PrivateSubnet1']}, PrivateSubnet2-{self.u}="
                                    f"{ids['PrivateSubnet2']}"),
            line("pass", "subnets", f"{ids['PrivateSubnet1']} (eu-west-1a), {ids['PrivateSubnet2']} "
                                    f"(eu-west-1b) in {ids['VPC']}"),
            line("pass", "template", f"{self.template} passes cfn-lint (eu-west-1)"),
            line("skip", "mwaa-environment", f"environment {self.mwaa} not created yet"),
            line("skip", "airflow-connection", "needs an AVAILABLE environment"),
        ]


@pytest.fixture
def env(moto_endpoint, tmp_path):
    return Env(moto_endpoint, tmp_path)


def test_a_healthy_environment_before_its_first_deploy_passes(env):
    env.healthy_buckets()
    env.network()
    result = env.doctor()
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        *env.healthy_lines(), "11 checks: 9 passed, 0 failed, 0 warned, 2 skipped."]


def test_versioning_off_fails_with_its_fix_and_exit_2(env):
    env.healthy_buckets()
    env.c["s3"].put_bucket_versioning(Bucket=env.code, VersioningConfiguration={"Status": "Suspended"})
    env.network()
    result = env.doctor()
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert lines[4] == line("fail", "code-bucket-versioning",
                            f"versioning is suspended on {env.code} (MWAA requires it). Fix: aws s3api "
                            f"put-bucket-versioning --bucket {env.code} --versioning-configuration "
                            "Status=Enabled")
    assert lines[-1] == ("11 checks: 8 passed, 1 failed, 0 warned, 2 skipped. Fix the failed "
                         "check(s) and run m7etl doctor --env test again.")


def test_a_bucket_never_versioned_and_without_public_access_block(env):
    env.bucket(env.data)
    env.bucket(env.code)
    env.network()
    lines = env.doctor().stdout.splitlines()
    fix = (f"aws s3api put-public-access-block --bucket {env.code} "
           "--public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,"
           "BlockPublicPolicy=true,RestrictPublicBuckets=true")
    assert lines[4].startswith(line("fail", "code-bucket-versioning",
                                    f"versioning is not enabled on {env.code} (MWAA requires it). "))
    assert lines[5] == line("fail", "code-bucket-public-access",
                            f"{env.code} has no public access block (MWAA requires one). Fix: {fix}")


def test_a_partial_public_access_block_names_the_settings_left_off(env):
    env.healthy_buckets()
    env.c["s3"].put_public_access_block(Bucket=env.code, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": True,
        "RestrictPublicBuckets": False})
    env.network()
    result = env.doctor()
    assert result.exit_code == 2
    assert result.stdout.splitlines()[5].startswith(line(
        "fail", "code-bucket-public-access",
        f"{env.code} leaves IgnorePublicAcls, RestrictPublicBuckets off (MWAA requires all four). "
        "Fix: aws s3api put-public-access-block"))


def test_missing_buckets_fail_and_skip_what_depends_on_them(env):
    env.network()
    result = env.doctor()
    assert result.exit_code == 2
    assert result.stdout.splitlines()[2:6] == [
        line("fail", "data-bucket", f"bucket {env.data} does not exist. Fix: Create it (aws s3 mb "
                                    f"s3://{env.data} --region eu-west-1: a prerequisite of the "
                                    "guide) or set data_bucket in m7etl.toml."),
        line("fail", "code-bucket", f"bucket {env.code} does not exist. Fix: Create it (aws s3 mb "
                                    f"s3://{env.code} --region eu-west-1: a prerequisite of the "
                                    "guide) or set code_bucket in m7etl.toml."),
        line("skip", "code-bucket-versioning", "needs the code bucket"),
        line("skip", "code-bucket-public-access", "needs the code bucket"),
    ]


def test_a_data_bucket_in_another_region_fails(env):
    env.healthy_buckets()
    env.c["s3"].delete_bucket(Bucket=env.data)
    env.bucket(env.data, region="us-east-1")
    env.network()
    assert env.doctor().stdout.splitlines()[2] == line(
        "fail", "data-bucket", f"bucket {env.data} is in us-east-1, not eu-west-1. Fix: Deploy to "
                               "us-east-1 (--region us-east-1) or use a bucket in eu-west-1: the "
                               "stack's functions and MWAA must be in the bucket's region.")


def test_absent_exports_fail_with_the_three_ways_out(env):
    env.healthy_buckets()
    env.network(export=False)
    result = env.doctor()
    assert result.exit_code == 2
    assert result.stdout.splitlines()[6:8] == [
        line("fail", "network", f"CloudFormation export(s) VPC-{env.u}, PrivateSubnet1-{env.u}, "
                                f"PrivateSubnet2-{env.u} not found in eu-west-1. Fix: Deploy the "
                                "network stack that exports them (the guide's step 3), name the "
                                "exports with parameters VpcExportName, PrivateSubnet1ExportName "
                                "and PrivateSubnet2ExportName, or set VpcId, PrivateSubnet1Id and "
                                "PrivateSubnet2Id under [test.parameters] in m7etl.toml."),
        line("skip", "subnets", "needs the network's ids"),
    ]


def test_two_subnets_in_one_zone_fail(env):
    env.healthy_buckets()
    ids = env.network(zones=("eu-west-1a", "eu-west-1a"))
    result = env.doctor()
    assert result.exit_code == 2
    assert result.stdout.splitlines()[7] == line(
        "fail", "subnets", f"{ids['PrivateSubnet1']} and {ids['PrivateSubnet2']} are both in "
                           "eu-west-1a. Fix: MWAA needs two private subnets (with a NAT route) of "
                           "the VPC, in two different Availability Zones: fix the exports or the "
                           "*Id parameters.")


def test_explicit_subnet_ids_replace_the_exports(env):
    env.healthy_buckets()
    ids = env.network(export=False)
    config = env.toml({"VpcId": ids["VPC"], "PrivateSubnet1Id": ids["PrivateSubnet1"],
                       "PrivateSubnet2Id": ids["PrivateSubnet2"]})
    result = env.doctor(config=config)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[6:8] == [
        line("pass", "network", f"explicit ids VPC={ids['VPC']}, PrivateSubnet1="
                                f"{ids['PrivateSubnet1']}, PrivateSubnet2={ids['PrivateSubnet2']}"),
        line("pass", "subnets", f"{ids['PrivateSubnet1']} (eu-west-1a), {ids['PrivateSubnet2']} "
                                f"(eu-west-1b) in {ids['VPC']}"),
    ]


def test_an_explicit_subnet_that_does_not_exist_fails(env):
    env.healthy_buckets()
    ids = env.network(export=False)
    config = env.toml({"VpcId": ids["VPC"], "PrivateSubnet1Id": ids["PrivateSubnet1"],
                       "PrivateSubnet2Id": "subnet-0123456789abcdef0"})
    assert env.doctor(config=config).stdout.splitlines()[7].startswith(line(
        "fail", "subnets", "subnet subnet-0123456789abcdef0 does not exist. Fix: MWAA needs "))


def test_json_output_is_the_list_of_checks(env):
    env.healthy_buckets()
    env.network(zones=("eu-west-1a", "eu-west-1a"))
    result = env.doctor("--output", "json")
    assert result.exit_code == 2
    checks = json.loads(result.stdout)
    assert [c["name"] for c in checks] == [
        "region", "credentials", "data-bucket", "code-bucket", "code-bucket-versioning",
        "code-bucket-public-access", "network", "subnets", "template", "mwaa-environment",
        "airflow-connection"]
    assert [c["status"] for c in checks] == [PASS] * 7 + [FAIL, PASS, SKIP, SKIP]
    assert set(checks[0]) == {"name", "status", "detail", "fix"}
    assert "subnets" in result.stderr  # the lines went to stderr


def test_an_unknown_region_fails_and_skips_every_aws_check(env):
    result = env.doctor("--region", "eu-wst-1")
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        line("fail", "region", "'eu-wst-1' is not an AWS region. Fix: Set region in m7etl.toml or "
                               "pass --region (e.g. eu-west-1)."),
        line("skip", "credentials", "needs a valid region"),
        line("skip", "data-bucket", "needs working credentials and region"),
    ]
    assert lines[8:10] == [
        line("pass", "template", f"{env.template} passes cfn-lint (us-east-1)"),  # its default
        line("skip", "mwaa-environment", "needs working credentials and region")]


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """A session that finds no credentials anywhere (and does not wait for instance metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        empty = tmp_path / name.lower()
        empty.write_text("", encoding="utf-8")
        monkeypatch.setenv(name, str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


NO_CREDENTIALS = ("no AWS credentials found. Fix: Configure them (aws configure, aws sso login, "
                  "AWS_PROFILE or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables), or set "
                  "profile in m7etl.toml.")


def test_no_credentials_is_a_failed_check_not_a_traceback(env, no_credentials):
    check = check_credentials(load_env("test", env.toml()), Clients(endpoint_url=env.moto,
                                                                    region="eu-west-1"))
    assert check == Check("credentials", FAIL, "no AWS credentials found",
                          NO_CREDENTIALS.split("Fix: ", 1)[1])
    result = env.doctor()
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stdout.splitlines()
    assert lines[:3] == [line("pass", "region", "eu-west-1"),
                         line("fail", "credentials", NO_CREDENTIALS),
                         line("skip", "data-bucket", "needs working credentials and region")]
    assert lines[8] == line("pass", "template", f"{env.template} passes cfn-lint (eu-west-1)")


def test_an_unknown_profile_is_a_failed_check(env, no_credentials):
    result = env.doctor(config=env.toml(profile="m7-nope"))
    assert result.exit_code == 2
    assert result.stdout.splitlines()[1] == line(
        "fail", "credentials", "AWS profile 'm7-nope' does not exist. Fix: Create it (aws "
                               "configure --profile NAME) or fix profile in m7etl.toml / --profile.")


# -- once the environment exists: a stand-in for MWAA's two calls ------------------------

class MwaaStandin:
    """``GET /environments/{name}`` and ``POST /restapi/{name}`` (``GET /connections/...``)."""

    def __init__(self):
        self.environments: dict[str, dict] = {}
        self.connections: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def _send(self, status, body, error=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                standin.calls.append(("GetEnvironment", name))
                if name not in standin.environments:
                    return self._send(404, {"message": f"Environment {name} not found"},
                                      "ResourceNotFoundException")
                self._send(200, {"Environment": {"Name": name, **standin.environments[name]}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                standin.calls.append(("InvokeRestApi", f"{body['Method']} {body['Path']}"))
                conn = standin.connections.get(body["Path"].rsplit("/", 1)[-1])
                if conn is None:
                    return self._send(400, {"RestApiStatusCode": 404, "RestApiResponse": {
                        "detail": "The Connection with connection_id: `aws_default` was not found",
                        "status": 404, "title": "Connection not found"}}, "RestApiClientException")
                self._send(200, {"RestApiStatusCode": 200, "RestApiResponse": conn})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def mwaa():
    standin = MwaaStandin()
    yield standin
    standin.server.shutdown()
    standin.server.server_close()


def deployed(env: Env, mwaa: MwaaStandin) -> Path:
    """A healthy environment whose stack exists, with MWAA calls going to the stand-in."""
    env.healthy_buckets()
    env.network()
    env.c["cloudformation"].create_stack(StackName=env.stack, TemplateBody=json.dumps(
        {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}))
    env.extra = f'[test.endpoints]\nmwaa = "{mwaa.endpoint}"\n'
    return env.toml()


def test_an_available_environment_with_aws_default_passes(env, mwaa):
    config = deployed(env, mwaa)
    mwaa.environments[env.mwaa] = {"Status": "AVAILABLE", "AirflowVersion": "3.0.6"}
    mwaa.connections["aws_default"] = {"connection_id": "aws_default", "conn_type": "aws",
                                       "password": "never-shown", "extra": '{"k": "v"}'}
    result = env.doctor(config=config)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[9:] == [
        line("pass", "mwaa-environment", f"{env.mwaa} is AVAILABLE (Airflow 3.0.6)"),
        line("pass", "airflow-connection", f"aws_default (type aws) on {env.mwaa}"),
        "11 checks: 11 passed, 0 failed, 0 warned, 0 skipped."]
    assert mwaa.calls == [("GetEnvironment", env.mwaa), ("InvokeRestApi", "GET /connections/aws_default")]
    assert "never-shown" not in result.output


def test_a_missing_aws_default_fails_with_the_airflow_ui_fix(env, mwaa):
    config = deployed(env, mwaa)
    mwaa.environments[env.mwaa] = {"Status": "AVAILABLE", "AirflowVersion": "3.0.6"}
    result = env.doctor(config=config)
    assert result.exit_code == 2
    assert result.stdout.splitlines()[10] == line(
        "fail", "airflow-connection", f"connection aws_default does not exist on {env.mwaa}. Fix: "
                                      "Admin > Connections in the Airflow UI: add or fix aws_default "
                                      "(type Amazon Web Services, no keys: tasks use the "
                                      "environment's execution role).")


def test_an_aws_default_of_another_type_fails(env, mwaa):
    config = deployed(env, mwaa)
    mwaa.environments[env.mwaa] = {"Status": "AVAILABLE", "AirflowVersion": "3.0.6"}
    mwaa.connections["aws_default"] = {"connection_id": "aws_default", "conn_type": "http"}
    assert env.doctor(config=config).stdout.splitlines()[10].startswith(line(
        "fail", "airflow-connection", "connection aws_default has type 'http', not 'aws'. Fix: "))


def test_a_failed_environment_fails_with_its_error_and_skips_the_connection(env, mwaa):
    config = deployed(env, mwaa)
    mwaa.environments[env.mwaa] = {"Status": "CREATE_FAILED", "AirflowVersion": "3.0.6",
                                   "LastUpdate": {"Status": "FAILED", "Error": {
                                       "ErrorCode": "INCORRECT_CONFIGURATION",
                                       "ErrorMessage": "You may need to check the execution role"}}}
    result = env.doctor(config=config)
    assert result.exit_code == 2
    assert result.stdout.splitlines()[9:11] == [
        line("fail", "mwaa-environment", f"{env.mwaa} is CREATE_FAILED (Airflow 3.0.6): "
                                         "INCORRECT_CONFIGURATION: You may need to check the "
                                         "execution role. Fix: Read the environment's logs in "
                                         "CloudWatch, then m7etl deploy --env test again."),
        line("skip", "airflow-connection", "needs an AVAILABLE environment")]


def test_an_environment_being_created_warns_without_failing(env, mwaa):
    config = deployed(env, mwaa)
    mwaa.environments[env.mwaa] = {"Status": "CREATING", "AirflowVersion": "3.0.6"}
    result = env.doctor(config=config)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[9] == line(
        "warn", "mwaa-environment", f"{env.mwaa} is CREATING (Airflow 3.0.6). Fix: Run m7etl "
                                    "doctor again when it is AVAILABLE.")


def test_a_stack_without_its_environment_yet_skips(env, mwaa):
    config = deployed(env, mwaa)
    result = env.doctor(config=config)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[9] == line("skip", "mwaa-environment",
                                                 f"environment {env.mwaa} not created yet")
    assert mwaa.calls == [("GetEnvironment", env.mwaa)]


def test_run_checks_is_the_deploy_preflight(env):
    """The deploy command calls this and stops on a failed check."""
    env.healthy_buckets()
    env.network()
    checks = run_checks(load_env("test", env.toml()),
                        Clients(endpoint_url=env.moto, region="eu-west-1"),
                        template_path=env.template)
    assert [c.status for c in checks] == [PASS] * 9 + [SKIP, SKIP]


@pytest.mark.parametrize(("code", "detail", "fix"), [
    ("AccessDenied", "access denied to the code bucket's versioning",
     "Grant the caller s3:GetBucketVersioning and run again."),
    ("ExpiredToken", "the AWS session token has expired",
     "Refresh the credentials (e.g. aws sso login) and run again."),
    ("SlowDown", "AWS throttled the code bucket's versioning (SlowDown)", "Run m7etl doctor again."),
])
def test_expected_aws_errors_become_failed_checks(code, detail, fix):
    from botocore.exceptions import ClientError

    from m7etl.deploy.doctor import check_code_versioning

    class Refusing:
        def get_bucket_versioning(self, **_kw):
            raise ClientError({"Error": {"Code": code, "Message": "m"}}, "GetBucketVersioning")

    check = check_code_versioning(load_env("test", search=False), lambda *_a: Refusing())
    assert check == Check("code-bucket-versioning", FAIL, detail, fix)
