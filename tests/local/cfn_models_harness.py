"""The harness of the local CloudFormation tests: a moto server in a subprocess with
``cfn_models.install()`` (as the local stack's server), a network stack exporting VPC and
PrivateSubnet1/2 in two AZs, and one pipeline environment's buckets, artefacts and stack.

Nothing of the models reaches the test process's moto (conftest's session server).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml

from m7etl.local.standins.mwaa import MwaaStandin

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = (ROOT / "templates" / "etl-pipeline-mwaa.yaml").read_text(encoding="utf-8")
ACCOUNT, REGION = "123456789012", "eu-west-1"
PASSWORD = "Sentinel-Pa55word-9c1d"
ARTEFACTS = ("lambda/raw_to_silver.zip", "lambda/silver_to_gold.zip", "lambda/s3_event.zip",
             "lambda/maintenance.zip", "layers/etl-dependencies.zip", "glue/gold_to_snowflake.py",
             "glue/m7etl_glue.zip", "requirements/requirements.txt", "dags/m7_etl_pipeline.py")
NETWORK = """
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.20.0.0/16}}
  Private1:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.20.1.0/24, AvailabilityZone: eu-west-1a}
  Private2:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.20.2.0/24, AvailabilityZone: eu-west-1b}
Outputs:
  VpcId: {Value: !Ref Vpc, Export: {Name: VPC}}
  Subnet1: {Value: !Ref Private1, Export: {Name: PrivateSubnet1}}
  Subnet2: {Value: !Ref Private2, Export: {Name: PrivateSubnet2}}
"""
SERVER = """
import sys
from m7etl.local.moto import cfn_models
cfn_models.install(mwaa=sys.argv[1] or None)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("port", server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test closes it
server.stop()
"""


@contextmanager
def local_moto(mwaa_endpoint: str | None) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("M7_LOCAL_MWAA_ENDPOINT", "AWS_ENDPOINT_URL_MWAA", "AWS_ENDPOINT_URL")}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION})
    # moto logs every request to stderr: a file, as a pipe nobody reads would fill up.
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, mwaa_endpoint or ""], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(60)
        try:
            if not lines or not lines[0].startswith("port "):
                log.seek(0)
                pytest.fail(f"the local moto server did not start: {log.read()[-2000:]}")
            endpoint = f"http://127.0.0.1:{lines[0].split()[1]}"
            cf = boto3.client("cloudformation", endpoint_url=endpoint, region_name=REGION)
            cf.create_stack(StackName="network", TemplateBody=NETWORK)
            yield endpoint
        finally:
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def zip_of(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}.py", "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


@dataclass
class Env:
    endpoint: str
    name: str

    data = property(lambda self: f"m7-etl-data-solocco-{self.name}")
    code = property(lambda self: f"m7-solocco-code-repository-{self.name}")
    stack = property(lambda self: f"m7-etl-pipeline-mwaa-{self.name}")
    mwaa = property(lambda self: f"m7-etl-mwaa-{self.name}")

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def prepare(self, skip: tuple[str, ...] = ()) -> None:
        """Both buckets (the code bucket versioned) and the artefacts but ``skip``."""
        s3 = self.client("s3")
        for bucket in (self.data, self.code):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=self.code, VersioningConfiguration={"Status": "Enabled"})
        for key in ARTEFACTS:
            if key not in skip:
                body = zip_of(Path(key).stem) if key.endswith(".zip") else f"# {key}\n".encode()
                s3.put_object(Bucket=self.code, Key=key, Body=body)

    def parameters(self, **values: str) -> list[dict]:
        values = {"Environment": self.name, "SnowflakePassword": PASSWORD, **values}
        return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]

    def create(self, **values: str) -> float:
        started = time.monotonic()
        self.client("cloudformation").create_stack(
            StackName=self.stack, TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
            Parameters=self.parameters(**values))
        return time.monotonic() - started

    def describe(self) -> dict:
        return self.client("cloudformation").describe_stacks(StackName=self.stack)["Stacks"][0]

    def outputs(self) -> dict[str, str]:
        return {o["OutputKey"]: o["OutputValue"] for o in self.describe().get("Outputs", [])}

    def resources(self) -> dict[str, dict]:
        pages = self.client("cloudformation").get_paginator("list_stack_resources").paginate(
            StackName=self.stack)
        return {r["LogicalResourceId"]: r for page in pages for r in page["StackResourceSummaries"]}

    def physical(self, logical_id: str) -> str:
        return self.resources()[logical_id]["PhysicalResourceId"]


def template_resources() -> dict[str, dict]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load(TEMPLATE, Loader=Loader)["Resources"]


def new_env(endpoint: str, standin: MwaaStandin | None = None) -> Env:
    env = Env(endpoint, f"t{uuid.uuid4().hex[:8]}")
    if standin is not None:
        standin.env_name = env.mwaa  # the stand-in serves this environment
    return env


