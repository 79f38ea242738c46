"""``python -m m7etl.local.moto.server``: the local stack's moto server, as a process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import boto3
import pytest

from m7etl.local.moto.cfn_models_stack import resolved_parameters
from m7etl.local.moto.server import READY

TEMPLATE = {"Parameters": {"Name": {"Type": "String"},
                           "Size": {"Type": "Number", "Default": 2},
                           "Mode": {"Type": "String", "Default": "fast"}},
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic",
                                    "Properties": {"TopicName": {"Ref": "Name"}}}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_parameters_compare_with_the_templates_defaults_resolved():
    assert resolved_parameters(TEMPLATE, {"Name": "a"}) == {"Name": "a", "Size": "2",
                                                            "Mode": "fast"}
    assert resolved_parameters(TEMPLATE, {"Name": "a", "Size": "2", "Mode": "fast"}) == \
        resolved_parameters(TEMPLATE, {"Name": "a"})
    assert resolved_parameters(TEMPLATE, {"Name": "a", "Size": "3"}) != \
        resolved_parameters(TEMPLATE, {"Name": "a"})


@pytest.fixture
def server(tmp_path):
    port = free_port()
    with open(tmp_path / "moto.log", "w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "m7etl.local.moto.server", "--port",
                                 str(port), "--work-dir", str(tmp_path / "work"),
                                 "--warehouse-dir", str(tmp_path / "warehouse")],
                                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while READY not in (tmp_path / "moto.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "moto.log").read_text()
            time.sleep(0.1)
        yield proc, port, tmp_path / "moto.log"
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_it_serves_then_stops_on_sigterm(server):
    proc, port, log = server
    assert f"{READY}http://127.0.0.1:{port} " in log.read_text()
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="eu-west-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="probe", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["probe"]
    started = time.monotonic()
    proc.terminate()
    assert proc.wait(timeout=20) == 0
    assert time.monotonic() - started < 20


def test_an_update_that_changes_nothing_is_no_changes_as_in_aws(server):
    _, port, _ = server
    cf = boto3.client("cloudformation", endpoint_url=f"http://127.0.0.1:{port}",
                      region_name="eu-west-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    body = json.dumps(TEMPLATE)
    cf.create_stack(StackName="probe", TemplateBody=body,
                    Parameters=[{"ParameterKey": "Name", "ParameterValue": "m7-probe"}])
    # As m7etl deploy sends it: the uploaded template's URL, every parameter.
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="eu-west-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="code", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="code", Key="templates/probe.json", Body=body.encode())
    url = "https://code.s3.eu-west-1.amazonaws.com/templates/probe.json"
    every = [{"ParameterKey": k, "UsePreviousValue": True} for k in ("Name", "Size", "Mode")]
    same = cf.create_change_set(StackName="probe", ChangeSetName="same", ChangeSetType="UPDATE",
                                TemplateURL=url, Parameters=every)
    described = cf.describe_change_set(ChangeSetName=same["Id"])
    assert (described["Status"], described["StatusReason"]) == (
        "FAILED", "The submitted information didn't contain changes. Submit different "
                  "information to create a change set.")
    other = cf.create_change_set(StackName="probe", ChangeSetName="other", ChangeSetType="UPDATE",
                                 TemplateURL=url, Parameters=[
                                     *every[:2], {"ParameterKey": "Mode", "ParameterValue": "slow"}])
    assert cf.describe_change_set(ChangeSetName=other["Id"])["Status"] == "CREATE_COMPLETE"


def test_a_port_taken_is_one_line_and_exit_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "m7etl.local.moto.server", "--port",
                               str(port), "--work-dir", str(tmp_path / "w"), "--warehouse-dir",
                               str(tmp_path / "wh")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"moto server: cannot listen on 127.0.0.1:{port}: Address already in use")
