"""What AWS refuses, refused on the local stack: the failed resource's CREATE_FAILED with
the thing, the cause and the next step, then the rollback; and the MWAA environment with
the MWAA stand-in (``GetEnvironment`` only, or the whole control plane) and without one.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from cfn_models_harness import (
    ACCOUNT,
    REGION,
    TEMPLATE,
    Env,
    local_moto,
    new_env,
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


def _create_failure(env: Env, **values: str) -> tuple[str, str]:
    """Create the stack, which fails: (the failed resource's logical id, its reason), once
    the stack is rolled back as CloudFormation does (the call itself succeeds)."""
    env.create(**values)
    assert env.describe()["StackStatus"] == "ROLLBACK_COMPLETE"
    events = env.client("cloudformation").describe_stack_events(StackName=env.stack)[
        "StackEvents"][::-1]  # oldest first
    failed = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
    assert len(failed) == 1
    rollback = next(e for e in events if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS")
    assert rollback["ResourceStatusReason"] == (
        f"The following resource(s) failed to create: [{failed[0]['LogicalResourceId']}]. "
        "Rollback requested by user.")
    assert events[-1]["ResourceStatus"] == "ROLLBACK_COMPLETE"
    created = {e["LogicalResourceId"] for e in events if e["ResourceStatus"] == "CREATE_COMPLETE"
               and e["ResourceType"] != "AWS::CloudFormation::Stack"}
    deleted = {e["LogicalResourceId"] for e in events if e["ResourceStatus"] == "DELETE_COMPLETE"}
    assert created and created == deleted  # everything made before the failure, deleted
    assert env.resources() == {}
    return failed[0]["LogicalResourceId"], failed[0]["ResourceStatusReason"]


FAILURES = {  # what is missing -> (the failed resource, its reason, from {env} and {code})
    "function zip": ({"skip": ("lambda/s3_event.zip",)}, "S3EventLambdaFunction",
                     "m7-etl-s3-event-{env}: Error occurred while GetObject. S3 Error Code: "
                     "NoSuchKey. S3 Error Message: The specified key does not exist. Upload "
                     "s3://{code}/lambda/s3_event.zip first (m7etl upload)."),
    "layer version": ({"LayerCodeVersion": "no-such-version"}, "DependenciesLayer",
                      "m7-etl-dependencies-{env}: Error occurred while GetObject. S3 Error Code: "
                      "NoSuchVersion. S3 Error Message: The specified version does not exist. "
                      "Upload s3://{code}/layers/etl-dependencies.zip (version no-such-version) "
                      "first (m7etl upload)."),
    "requirements": ({"skip": ("requirements/requirements.txt",)}, "MwaaEnvironment",
                     "m7-etl-mwaa-{env}: Unable to read RequirementsS3Path s3://{code}/"
                     "requirements/requirements.txt: the object does not exist. Upload it first "
                     "(m7etl upload)."),
}


@pytest.mark.parametrize("missing", FAILURES)
def test_a_missing_object_fails_its_resource_and_rolls_back(moto, standin, missing):
    values, logical_id, reason = FAILURES[missing]
    env = new_env(moto, standin)
    env.prepare(skip=values.get("skip", ()))
    parameters = {k: v for k, v in values.items() if k != "skip"}
    assert _create_failure(env, **parameters) == (logical_id, reason.format(env=env.name,
                                                                            code=env.code))
    assert env.client("ssm").get_parameters(Names=[f"/m7etl/{env.name}/data-bucket"])[
        "Parameters"] == []  # made before the failure, rolled back


def test_mwaa_refuses_two_subnets_in_one_zone(moto, standin):
    env = new_env(moto, standin)
    env.prepare()
    ec2 = env.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24",
                                 AvailabilityZone="eu-west-1a")["Subnet"]["SubnetId"]
               for i in (1, 2)]
    assert _create_failure(env, VpcId=vpc, PrivateSubnet1Id=subnets[0],
                           PrivateSubnet2Id=subnets[1]) == ("MwaaEnvironment", (
        f"{env.mwaa}: The subnets {subnets[0]}, {subnets[1]} are in one Availability Zone "
        "(eu-west-1a); MWAA needs two."))


def test_the_standin_must_serve_the_environment(moto, standin):
    env = new_env(moto)
    standin.env_name = "m7-etl-mwaa-someone-else"
    env.prepare()
    assert _create_failure(env) == ("MwaaEnvironment", (
        f"{env.mwaa}: The MWAA stand-in at {standin.endpoint} does not serve this environment "
        f"(ResourceNotFoundException). Start it (make local-up) with --env-name {env.mwaa}, or "
        "unset M7_LOCAL_MWAA_ENDPOINT and AWS_ENDPOINT_URL_MWAA to model the environment "
        "without it."))


def test_without_a_standin_the_environment_is_modelled_in_moto(aws_env):
    with local_moto(None) as endpoint:
        env = new_env(endpoint)
        env.prepare()
        env.create()
        outputs = env.outputs()
    assert outputs["MwaaEnvironmentName"] == env.mwaa
    assert re.fullmatch(r"https://[0-9a-f-]{36}\.c2\.eu-west-1\.airflow\.amazonaws\.com",
                        outputs["AirflowWebUIUrl"])


class Registrar(BaseHTTPRequestHandler):
    """A stand-in with MWAA's Create/Update/Delete/GetEnvironment routes (as the local
    stack's LocalMwaa has): what the model sends it, as botocore serialises it."""

    calls: ClassVar[list[tuple[str, str, dict]]] = []
    environments: ClassVar[dict[str, dict]] = {}
    log_message = staticmethod(lambda *_args: None)

    def _answer(self, status: int, body: dict, error: str = "") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"] or 0)) or b"{}")
        self.calls.append((self.command, name, body))
        if self.command == "DELETE":
            self.environments.pop(name, None)
        elif self.command == "PUT" or name in self.environments:
            self.environments[name] = {**self.environments.get(name, {}), **body, "Name": name,
                                       "Status": "AVAILABLE", "WebserverUrl": "registrar:1"}
        self._answer(200, {"Arn": f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/{name}"})

    do_PATCH = do_DELETE = do_PUT

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        if name in self.environments:
            return self._answer(200, {"Environment": self.environments[name]})
        self._answer(404, {"message": f"Environment {name} not found"},
                     "ResourceNotFoundException")


def test_a_standin_with_the_control_plane_gets_create_update_delete(aws_env):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registrar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with local_moto(f"http://127.0.0.1:{server.server_address[1]}") as endpoint:
            env = new_env(endpoint)
            env.prepare()
            env.create()
            assert env.outputs()["AirflowWebUIUrl"] == "https://registrar:1"
            env.client("cloudformation").update_stack(
                StackName=env.stack, TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
                Parameters=[{"ParameterKey": "Environment", "UsePreviousValue": True},
                            {"ParameterKey": "SnowflakePassword", "UsePreviousValue": True},
                            {"ParameterKey": "MwaaMaxWorkers", "ParameterValue": "5"}])
            role = f"arn:aws:iam::{ACCOUNT}:role/{env.physical('MwaaExecutionRole')}"
            group, topic = env.physical("MwaaSecurityGroup"), env.outputs()["AlertTopicArn"]
            exports = {e["Name"]: e["Value"]
                       for e in env.client("cloudformation").list_exports()["Exports"]}
            env.client("cloudformation").delete_stack(StackName=env.stack)
    finally:
        server.shutdown()
    (verb, name, created), (patch, _, updated), (delete, _, _) = [
        c for c in Registrar.calls if c[1] == env.mwaa]
    assert (verb, patch, delete, name) == ("PUT", "PATCH", "DELETE", env.mwaa)
    logs = {"Enabled": True, "LogLevel": "INFO"}
    assert created == {
        "ExecutionRoleArn": role, "SourceBucketArn": f"arn:aws:s3:::{env.code}",
        "DagS3Path": "dags", "RequirementsS3Path": "requirements/requirements.txt",
        "EnvironmentClass": "mw1.small", "AirflowVersion": "3.0.6",
        "WebserverAccessMode": "PUBLIC_ONLY", "MinWorkers": 1, "MaxWorkers": 2,
        "NetworkConfiguration": {"SubnetIds": [exports["PrivateSubnet1"], exports["PrivateSubnet2"]],
                                 "SecurityGroupIds": [group]},
        "AirflowConfigurationOptions": {"m7etl.environment": env.name,
                                        "m7etl.data_bucket": env.data,
                                        "m7etl.alert_topic_arn": topic},
        "LoggingConfiguration": {f"{kind}Logs": logs for kind in (
            "DagProcessing", "Scheduler", "Task", "Webserver", "Worker")}}
    assert updated["MaxWorkers"] == 5 and "SubnetIds" not in updated["NetworkConfiguration"]
    assert env.mwaa not in Registrar.environments
