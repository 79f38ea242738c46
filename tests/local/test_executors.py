"""The moto server's executors: moto's functions, Glue job and S3 notifications run for real.

The patches are installed in a moto server of its own, in a subprocess (``SERVER`` below),
never in this process, so no other test sees a patched moto. The test talks to it with
plain boto3 clients, as the DAG, the CLI and the functions do.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from m7etl.exceptions import ConfigurationError
from m7etl.local.moto.executors import Settings
from m7etl.local.moto.executors_lambda import answer_headers, request_error
from m7etl.local.moto.notifications import s3_record
from m7etl.local.standins.lambda_invoke import Invocation
from m7etl.local.standins.mwaa import MwaaStandin

# The modules that build the layer share its wheel cache (.work/wheels): one xdist worker.
pytestmark = pytest.mark.xdist_group("wheel-cache")

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
MWAA_ENV = "m7-etl-mwaa-test"
SERVER = '''
import sys
from m7etl.local.moto import executors
executors.install(warehouse_dir=sys.argv[1], work_dir=sys.argv[2], mwaa_endpoint=sys.argv[3] or None)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # the test closes stdin to stop the server
executors.shutdown()
server.stop()
'''


@dataclass
class Server:
    endpoint: str
    proc: subprocess.Popen
    warehouse: Path
    log: Path

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            config=Config(retries={"max_attempts": 0}, read_timeout=300))

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(folder: Path, mwaa_endpoint: str = "") -> Server:
    folder.mkdir(parents=True, exist_ok=True)
    script, log = folder / "server.py", folder / "server.log"
    script.write_text(SERVER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(folder / "warehouse"),
                                 str(folder / "work"), mwaa_endpoint], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    port = proc.stdout.readline().strip()
    assert port.isdigit(), log.read_text()
    return Server(f"http://127.0.0.1:{port}", proc, folder / "warehouse", log)


@pytest.fixture(scope="module")
def mwaa():
    standin = MwaaStandin(env_name=MWAA_ENV).start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_env, mwaa):
    running = start_server(tmp_path_factory.mktemp("moto-executors"), mwaa.endpoint)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def role(server) -> str:
    return server.client("iam").create_role(
        RoleName="m7-etl-test-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_bucket(server: Server) -> str:
    bucket = unique("m7-etl-data")
    server.client("s3").create_bucket(Bucket=bucket,
                                      CreateBucketConfiguration={"LocationConstraint": REGION})
    return bucket


def zip_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def create_function(server: Server, role: str, source: str, **extra) -> tuple[str, str]:
    name = unique("m7-etl-fn")
    arn = server.client("lambda").create_function(
        FunctionName=name, Runtime=extra.pop("Runtime", "python3.12"), Role=role,
        Handler="fn.handler", Code={"ZipFile": zip_bytes({"fn.py": source})}, Timeout=60,
        **extra)["FunctionArn"]
    return name, arn


def wait_for(probe, seconds: float = 30.0, every: float = 0.1):
    """``probe()`` once it is truthy, else None after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    return None


def read(s3, bucket: str, key: str) -> bytes | None:
    with contextlib.suppress(ClientError):
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return None


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
                  .get("Contents", []))


def shape(doc):
    """A document's keys all the way down, with the leaves' types."""
    return {k: shape(v) for k, v in doc.items()} if isinstance(doc, dict) else type(doc).__name__


# -- pure builders ---------------------------------------------------------------------------
def test_the_payload_limits_and_the_answer_headers_are_lambdas():
    assert request_error("Event", b"") is None
    assert request_error("Event", b'"' + b"x" * 262_142 + b'"') is None  # 256 KB exactly
    assert request_error("Event", b'"' + b"x" * 262_143 + b'"')[:2] == (413, "RequestTooLargeException")
    assert request_error("RequestResponse", b'"' + b"x" * 262_143 + b'"') is None  # 6 MB there
    done = Invocation("fn", "rid-1", "RequestResponse", "Unhandled", b"{}", "START\nEND\n", 0.1, False)
    assert answer_headers(done, "$LATEST", tail=False) == {
        "x-amz-executed-version": "$LATEST", "x-amzn-RequestId": "rid-1",
        "x-amz-function-error": "Unhandled"}
    ok = Invocation("fn", "rid-2", "RequestResponse", None, b"{}", "START\nEND\n", 0.1, False)
    assert answer_headers(ok, "3", tail=True) == {
        "x-amz-executed-version": "3", "x-amzn-RequestId": "rid-2",
        "x-amz-log-result": "U1RBUlQKRU5ECg=="}


def test_the_s3_record_has_s3s_fields_and_key_encoding():
    record = s3_record("s3:ObjectCreated:Put", region="eu-west-1", bucket="data", key="landing/a b+c.csv",
                       size=12, etag='"abc"', configuration_id="m7etl-landing-csv",
                       account_id="123456789012", sequencer="0000000000000000AB",
                       now=datetime(2025, 5, 3, 7, 15, 42, 123456, tzinfo=UTC), request_id="R1",
                       host_id="H1")
    owner = record["s3"]["bucket"].pop("ownerIdentity")["principalId"]
    assert re.fullmatch(r"A[0-9A-F]{13}", owner)  # opaque in S3 too; stable per account
    assert record == {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
        "eventTime": "2025-05-03T07:15:42.123Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:123456789012"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "R1", "x-amz-id-2": "H1"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "m7etl-landing-csv",
               "bucket": {"name": "data", "arn": "arn:aws:s3:::data"},
               "object": {"key": "landing/a+b%2Bc.csv", "size": 12, "eTag": "abc",
                          "sequencer": "0000000000000000AB"}}}
    removed = s3_record("s3:ObjectRemoved:Delete", region="eu-west-1", bucket="data", key="k",
                        size=12, etag='"abc"', configuration_id="c", account_id="1",
                        sequencer="01", now=datetime(2025, 5, 3, tzinfo=UTC), version_id="v1")
    assert removed["s3"]["object"] == {"key": "k", "versionId": "v1", "sequencer": "01"}
    assert removed["eventName"] == "ObjectRemoved:Delete"
    assert removed["s3"]["bucket"]["ownerIdentity"]["principalId"] != owner  # another account


def test_the_endpoint_is_the_given_one_else_the_learned_one_else_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("M7_LOCAL_MOTO_ENDPOINT", raising=False)
    settings = Settings(tmp_path, None)
    with pytest.raises(ConfigurationError) as info:
        settings.runtime_env()
    assert str(info.value) == (
        "The moto server's own endpoint is unknown, so the function or job would reach real AWS. "
        "Serve requests first, or set $M7_LOCAL_MOTO_ENDPOINT or install(endpoint=...).")
    settings.learn({"SERVER_NAME": "0.0.0.0", "SERVER_PORT": "5000"})
    settings.learn({"SERVER_NAME": "10.0.0.9", "SERVER_PORT": "6000"})  # the first one stays
    assert settings.moto_endpoint() == "http://127.0.0.1:5000"
    monkeypatch.setenv("M7_LOCAL_MOTO_ENDPOINT", "http://127.0.0.1:7000/")
    settings.mwaa_endpoint = "http://127.0.0.1:9003"
    assert settings.runtime_env() == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:7000", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true", "AWS_ENDPOINT_URL_MWAA": "http://127.0.0.1:9003"}


# -- Lambda ----------------------------------------------------------------------------------
FUNCTION = '''
import json, os, sys, boto3, helper

def handler(event, context):
    boto3.client("s3").put_object(Bucket=os.environ["M7_DATA_BUCKET"], Key="written/by-fn.json",
                                  Body=json.dumps(event).encode())
    return {"event": event, "helper": helper.VALUE, "arn": context.invoked_function_arn,
            "env": {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_MWAA",
                    "M7_ENVIRONMENT", "AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION")},
            "venv_on_path": any(".venv" in p for p in sys.path)}
'''


def test_request_response_runs_the_zip_from_s3_with_its_layer(server, role, mwaa):
    s3, lam = server.client("s3"), server.client("lambda")
    bucket = new_bucket(server)
    s3.put_object(Bucket=bucket, Key="lambda/fn.zip", Body=zip_bytes({"fn.py": FUNCTION}))
    s3.put_object(Bucket=bucket, Key="layers/deps.zip",
                  Body=zip_bytes({"python/helper.py": "VALUE = 'from the layer'\n"}))
    layer = lam.publish_layer_version(LayerName=unique("m7-deps"), Content={
        "S3Bucket": bucket, "S3Key": "layers/deps.zip"})["LayerVersionArn"]
    name = unique("m7-etl-fn")
    arn = lam.create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="fn.handler", Timeout=60,
        Code={"S3Bucket": bucket, "S3Key": "lambda/fn.zip"}, Layers=[layer],
        Environment={"Variables": {"M7_ENVIRONMENT": "test", "M7_DATA_BUCKET": bucket}})["FunctionArn"]
    times = []
    for _ in range(2):
        started = time.monotonic()
        response = lam.invoke(FunctionName=name, Payload=b'{"day": "20250501"}', LogType="Tail")
        times.append(time.monotonic() - started)
    assert (response["StatusCode"], response["ExecutedVersion"]) == (200, "$LATEST")
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {
        "event": {"day": "20250501"}, "helper": "from the layer", "arn": arn,
        "env": {"AWS_ENDPOINT_URL": server.endpoint, "AWS_ENDPOINT_URL_MWAA": mwaa.endpoint,
                "M7_ENVIRONMENT": "test", "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_REGION": REGION},
        "venv_on_path": False}
    assert json.loads(read(s3, bucket, "written/by-fn.json")) == {"day": "20250501"}
    tail = base64.b64decode(response["LogResult"]).decode()
    assert tail.startswith("START RequestId: ") and "\nREPORT RequestId: " in tail
    logs, group = server.client("logs"), f"/aws/lambda/{name}"
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    assert len(streams) == 2 and logs.get_log_events(logGroupName=group, logStreamName=streams[0])[
        "events"][0]["message"].startswith("START RequestId: ")
    print(f"\nInvoke through moto: cold {times[0]:.2f} s, warm {times[1]:.2f} s")


def test_a_handler_exception_is_an_unhandled_function_error(server, role):
    name, _ = create_function(server, role, "def handler(event, context):\n"
                                            "    raise ValueError('no such day: ' + event['day'])\n")
    response = server.client("lambda").invoke(FunctionName=name, Payload=b'{"day": "20250532"}')
    assert (response["StatusCode"], response["FunctionError"]) == (200, "Unhandled")
    error = json.loads(response["Payload"].read())
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "no such day: 20250532")
    assert error["stackTrace"][-1].strip().endswith("raise ValueError('no such day: ' + event['day'])")


def test_event_answers_202_at_once_and_runs_later_dry_run_runs_nothing(server, role):
    s3, lam = server.client("s3"), server.client("lambda")
    bucket = new_bucket(server)
    name, _ = create_function(server, role, (
        "import os, time, boto3\ndef handler(event, context):\n    time.sleep(1)\n"
        "    boto3.client('s3').put_object(Bucket=os.environ['BUCKET'], Key=event['id'], Body=b'1')\n"),
        Environment={"Variables": {"BUCKET": bucket}})
    dry = lam.invoke(FunctionName=name, InvocationType="DryRun", Payload=b'{"id": "dry"}')
    started = time.monotonic()
    event = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"id": "event"}')
    answered = time.monotonic() - started
    assert (dry["StatusCode"], event["StatusCode"]) == (204, 202)
    assert answered < 0.9 and read(s3, bucket, "event") is None
    assert wait_for(lambda: read(s3, bucket, "event")) == b"1"
    ran = time.monotonic() - started
    assert keys(s3, bucket) == ["event"]
    print(f"\nEvent: 202 in {answered:.3f} s, the function's write seen after {ran:.2f} s")


def test_bad_requests_and_runtimes_the_runner_has_not_get_lambdas_api_errors(server, role):
    lam = server.client("lambda")
    name, _ = create_function(server, role, "def handler(event, context):\n    return 1\n")
    old, _ = create_function(server, role, "def handler(event, context):\n    return 1\n",
                             Runtime="python3.11")
    for function, kwargs, status, code, message in (
            (name, {"Payload": b"{"}, 400, "InvalidRequestContentException",
             "Could not parse request body into json: Expecting property name enclosed in double "
             "quotes: line 1 column 2 (char 1)"),
            (name, {"Payload": b'{"x": "' + b"x" * 300_000 + b'"}', "InvocationType": "Event"}, 413,
             "RequestTooLargeException",
             "Request must be smaller than 262144 bytes for the InvokeFunction operation"),
            (name, {"InvocationType": "Later"}, 400, "InvalidParameterValueException",
             "Invalid InvocationType 'Later': use one of RequestResponse, Event, DryRun."),
            (old, {}, 400, "InvalidParameterValueException",
             f"Function '{old}': runtime python3.11 is not supported. Use python3.12, python3.13.")):
        with pytest.raises(ClientError) as info:
            lam.invoke(FunctionName=function, **kwargs)
        assert (info.value.response["ResponseMetadata"]["HTTPStatusCode"],
                info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]) == (
            status, code, message)


# -- Glue ------------------------------------------------------------------------------------
JOB = '''
import json, os, sys, boto3
print("hello from the job")
body = {"argv": sys.argv[1:], "pid": os.getpid(), "env": {k: os.environ.get(k) for k in (
    "AWS_ENDPOINT_URL", "AWS_REGION", "M7_GLUE_FAKESNOW_DB")}}
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
boto3.client("s3").put_object(Bucket=args["--data_bucket"], Key="job/out.json",
                              Body=json.dumps(body).encode())
if "--fail" in args:
    raise ValueError("no gold for " + args["--fail"])
if "--sleep" in args:
    import time
    time.sleep(float(args["--sleep"]))
'''


def create_job(server: Server, role: str, bucket: str, script: str = "glue/job.py", **extra) -> str:
    name = unique("m7-etl-gold-to-snowflake")
    server.client("s3").put_object(Bucket=bucket, Key="glue/job.py", Body=JOB.encode())
    server.client("glue").create_job(
        Name=name, Role=role, Command={"Name": "pythonshell", "PythonVersion": "3.9",
                                       "ScriptLocation": f"s3://{bucket}/{script}"},
        DefaultArguments={"--environment": "test", "--data_bucket": bucket}, **extra)
    return name


def finished(glue, job: str, run_id: str, seconds: float = 60.0) -> dict:
    def probe():
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        return run if run["JobRunState"] not in ("STARTING", "RUNNING", "STOPPING") else None

    run = wait_for(probe, seconds, every=0.2)
    assert run is not None, f"run {run_id} still running after {seconds} s"
    return run


def test_a_job_run_runs_the_script_from_moto_s3_with_glues_argv(server, role):
    glue, s3 = server.client("glue"), server.client("s3")
    bucket = new_bucket(server)
    job = create_job(server, role, bucket)
    started = time.monotonic()
    run_id = glue.start_job_run(JobName=job, Arguments={"--day": "20250501"})["JobRunId"]
    run = finished(glue, job, run_id)
    took = time.monotonic() - started
    assert re.fullmatch(r"jr_[0-9a-f]{64}", run_id)
    assert (run["JobRunState"], run["Arguments"], run["JobName"]) == (
        "SUCCEEDED", {"--day": "20250501"}, job)
    out = json.loads(read(s3, bucket, "job/out.json"))
    assert isinstance(out.pop("pid"), int) and out == {
        "argv": ["--JOB_NAME", job, "--JOB_RUN_ID", run_id, "--environment", "test",
                 "--data_bucket", bucket, "--day", "20250501"],
        "env": {"AWS_ENDPOINT_URL": server.endpoint, "AWS_REGION": REGION,
                "M7_GLUE_FAKESNOW_DB": str(server.warehouse.resolve())}}
    events = server.client("logs").get_log_events(logGroupName="/aws-glue/python-jobs/output",
                                                  logStreamName=run_id)["events"]
    assert [e["message"] for e in events] == ["hello from the job"]
    print(f"\nGlue run through moto: SUCCEEDED seen after {took:.2f} s")


def test_a_failing_or_missing_script_fails_the_run_with_the_reason(server, role):
    glue = server.client("glue")
    bucket = new_bucket(server)
    job = create_job(server, role, bucket)
    run = finished(glue, job, glue.start_job_run(JobName=job, Arguments={
        "--fail": "20250501"})["JobRunId"])
    assert (run["JobRunState"], run["ErrorMessage"]) == ("FAILED", "ValueError: no gold for 20250501")
    missing = create_job(server, role, bucket, script="glue/missing.py")
    run = finished(glue, missing, glue.start_job_run(JobName=missing)["JobRunId"])
    assert (run["JobRunState"], run["ErrorMessage"]) == (
        "FAILED", f"Cannot copy s3://{bucket}/glue/missing.py: An error occurred (NoSuchKey) when "
                  "calling the GetObject operation: The specified key does not exist. Upload it "
                  "first (m7etl upload) or give a local path.")


def test_runs_are_listed_limited_stopped_and_unknown_ones_are_not_found(server, role):
    glue = server.client("glue")
    bucket = new_bucket(server)
    job = create_job(server, role, bucket, ExecutionProperty={"MaxConcurrentRuns": 1})
    first = glue.start_job_run(JobName=job)["JobRunId"]
    finished(glue, job, first)
    long = glue.start_job_run(JobName=job, Arguments={"--sleep": "120"})["JobRunId"]
    with pytest.raises(ClientError) as info:
        glue.start_job_run(JobName=job)
    assert info.value.response["Error"] == {"Code": "ConcurrentRunsExceededException",
                                            "Message": f"Concurrent runs exceeded for {job}"}
    assert [r["Id"] for r in glue.get_job_runs(JobName=job)["JobRuns"]] == [long, first]
    stopped = glue.batch_stop_job_run(JobName=job, JobRunIds=[long])
    assert stopped["SuccessfulSubmissions"] == [{"JobName": job, "JobRunId": long}]
    assert finished(glue, job, long, seconds=20)["JobRunState"] == "STOPPED"
    for call, message in ((lambda: glue.start_job_run(JobName="m7-nope"), "Job m7-nope not found."),
                          (lambda: glue.get_job_run(JobName=job, RunId="jr_nope"),
                           "Job run jr_nope not found.")):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"] == {"Code": "EntityNotFoundException", "Message": message}


# -- S3 notifications --------------------------------------------------------------------------
MARKER = '''
import json, os, time, boto3
from urllib.parse import unquote_plus

def handler(event, context):
    time.sleep(1)
    for record in event["Records"]:
        key = unquote_plus(record["s3"]["object"]["key"])
        boto3.client("s3").put_object(Bucket=record["s3"]["bucket"]["name"],
                                      Key=f"markers/{key}@{record['eventName']}",
                                      Body=json.dumps(record))
'''


def notified_bucket(server: Server, role: str) -> str:
    bucket = new_bucket(server)
    _, arn = create_function(server, role, MARKER)
    server.client("s3").put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": [{
            "Id": "m7etl-landing-csv", "LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "landing/"},
                                               {"Name": "suffix", "Value": ".csv"}]}}}]})
    return bucket


def test_a_landing_csv_reaches_the_function_asynchronously_with_s3s_payload(server, role):
    s3 = server.client("s3")
    bucket = notified_bucket(server, role)
    s3.put_object(Bucket=bucket, Key="raw/x.csv", Body=b"a\n")
    s3.put_object(Bucket=bucket, Key="landing/x.txt", Body=b"a\n")
    started = time.monotonic()
    put = s3.put_object(Bucket=bucket, Key="landing/Device 20250501.csv", Body=b"a,b\n1,2\n")
    answered = time.monotonic() - started
    assert answered < 0.9 and keys(s3, bucket, "markers/") == []  # S3 does not wait
    marker = "markers/landing/Device 20250501.csv@ObjectCreated:Put"
    record = json.loads(wait_for(lambda: read(s3, bucket, marker)))
    arrived = time.monotonic() - started
    real = json.loads((ROOT / "tests" / "events" / "s3_put_single.json").read_text())["Records"][0]
    assert shape(record) == shape(real)
    assert (record["eventName"], record["awsRegion"], record["s3"]["configurationId"],
            record["s3"]["bucket"]["name"], record["s3"]["bucket"]["arn"]) == (
        "ObjectCreated:Put", REGION, "m7etl-landing-csv", bucket, f"arn:aws:s3:::{bucket}")
    obj = record["s3"]["object"]
    assert (obj["key"], obj["size"], obj["eTag"]) == (
        "landing/Device+20250501.csv", 8, put["ETag"].strip('"'))
    assert re.fullmatch(r"[0-9A-F]{18}", obj["sequencer"])
    sent = datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - sent).total_seconds()) < 60
    time.sleep(1.5)  # raw/x.csv and landing/x.txt, put first, would have landed by now
    assert keys(s3, bucket, "markers/") == [marker]
    print(f"\nS3 event: PUT answered in {answered:.3f} s, the function's marker after {arrived:.2f} s")


def test_copy_and_multipart_uploads_into_landing_notify_too(server, role):
    s3 = server.client("s3")
    bucket = notified_bucket(server, role)
    s3.put_object(Bucket=bucket, Key="raw/source.csv", Body=b"a\n")
    s3.copy_object(Bucket=bucket, Key="landing/copied.csv",
                   CopySource={"Bucket": bucket, "Key": "raw/source.csv"})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="landing/multi.csv")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="landing/multi.csv", UploadId=upload, PartNumber=1,
                          Body=b"b\n")
    s3.complete_multipart_upload(Bucket=bucket, Key="landing/multi.csv", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    # one event each, as S3 sends: moto's own CompleteMultipartUpload also sends a Put
    wanted = ["markers/landing/copied.csv@ObjectCreated:Copy",
              "markers/landing/multi.csv@ObjectCreated:CompleteMultipartUpload"]
    assert wait_for(lambda: keys(s3, bucket, "markers/") == wanted)
    time.sleep(1.5)
    assert keys(s3, bucket, "markers/") == wanted
    copied, multi = (json.loads(read(s3, bucket, k)) for k in wanted)
    assert multi["s3"]["object"]["size"] == 2
    assert int(copied["s3"]["object"]["sequencer"], 16) < int(multi["s3"]["object"]["sequencer"], 16)


# -- the real S3-event function ------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_event_build(tmp_path_factory) -> tuple[Path, Path]:
    """s3_event.zip (built now, as `m7etl package` does) and the python3.12 layer: build/ when
    it is there, else built with the wheel cache .work/wheels."""
    from m7etl.deploy.artefacts import build_all
    from m7etl.deploy.layer import build_layer
    from m7etl.exceptions import PackageError

    out = tmp_path_factory.mktemp("s3-event-build")
    build_all(out, skip_layer=True, glue=False, handlers=("s3_event",))
    layer = ROOT / "build" / "etl-dependencies.zip"
    if not layer.is_file():
        try:
            layer = build_layer(out, wheel_cache=ROOT / ".work" / "wheels").path
        except PackageError as exc:
            pytest.skip(f"no layer in build/ and it cannot be built here: {exc}")
    return out / "s3_event.zip", layer


def template_function(logical_id: str, values: dict[str, str]) -> dict:
    """The template's function properties, the Refs and GetAtts it uses resolved."""
    from m7etl.deploy.stack import parse_template

    template = parse_template((ROOT / "templates" / "etl-pipeline-mwaa.yaml").read_text(), "t")
    values = {k: str(v.get("Default")) for k, v in template["Parameters"].items()} | values
    props = template["Resources"][logical_id]["Properties"]

    def resolve(value):
        if not isinstance(value, dict):
            return str(value)
        ((kind, arg),) = value.items()
        if kind == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], arg)
        return values[arg if kind == "Ref" else ".".join(arg)]

    return {"Handler": props["Handler"], "Runtime": resolve(props["Runtime"]),
            "Timeout": int(resolve(props["Timeout"])), "MemorySize": int(resolve(props["MemorySize"])),
            "Environment": {"Variables": {k: resolve(v) for k, v in
                                          props["Environment"]["Variables"].items()}}}


@pytest.mark.slow
def test_a_landing_file_is_filed_by_the_real_s3_event_function_and_starts_the_dag(
        server, role, mwaa, s3_event_build):
    from m7etl.deploy.notifications import desired_rules

    s3, lam = server.client("s3"), server.client("lambda")
    code, layer = s3_event_build
    bucket, code_bucket = new_bucket(server), new_bucket(server)
    s3.upload_file(str(code), code_bucket, "lambda/s3_event.zip")
    s3.upload_file(str(layer), code_bucket, "layers/etl-dependencies.zip")
    layer_arn = lam.publish_layer_version(LayerName=unique("m7-etl-dependencies"), Content={
        "S3Bucket": code_bucket, "S3Key": "layers/etl-dependencies.zip"})["LayerVersionArn"]
    props = template_function("S3EventLambdaFunction", {
        "Environment": "test", "DataBucketSsm.Value": bucket})
    assert props["Environment"]["Variables"]["M7_MWAA_ENV_NAME"] == MWAA_ENV
    arn = lam.create_function(FunctionName=unique("m7-etl-s3-event"), Role=role, Layers=[layer_arn],
                              Code={"S3Bucket": code_bucket, "S3Key": "lambda/s3_event.zip"},
                              **props)["FunctionArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": desired_rules(arn)})
    header = ("device_id,subscriber_id,model,firmware_version,region,activation_date,"
              "last_seen_at,status,signal_quality_pct")
    row = "STB000000001,SUB00000001,M7-UHD4K,2.0.1,Occitanie,2021-03-01,2025-05-01 08:00:00,active,91"
    started = time.monotonic()
    s3.put_object(Bucket=bucket, Key="landing/Device_20250501.csv", Body=f"{header}\n{row}\n".encode())
    raw = "raw/20250501/Device_20250501.csv"
    assert wait_for(lambda: keys(s3, bucket, "raw/") == [raw], seconds=120, every=0.2), \
        server.log.read_text()[-3000:]
    filed = time.monotonic() - started
    runs = wait_for(lambda: [run for key, run in list(mwaa.runs.items())
                             if key[0] == "m7_etl_pipeline" and key[1].startswith("s3_20250501_")],
                    seconds=30)
    triggered = time.monotonic() - started
    assert runs and runs[0]["conf"]["raw_keys"] == [raw] and runs[0]["conf"]["date"] == "20250501"
    assert keys(s3, bucket, "landing/") == []
    print(f"\nreal s3_event through moto: PUT -> raw/ in {filed:.2f} s, DAG run at {triggered:.2f} s")


# -- shutdown ------------------------------------------------------------------------------------
def test_shutdown_kills_a_running_job_run(tmp_path, aws_env):
    own = start_server(tmp_path)
    try:
        role = own.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        bucket = new_bucket(own)
        job = create_job(own, role, bucket)
        own.client("glue").start_job_run(JobName=job, Arguments={"--sleep": "300"})
        pid = json.loads(wait_for(lambda: read(own.client("s3"), bucket, "job/out.json"), 60))["pid"]
    finally:
        own.stop()
    assert own.proc.returncode == 0

    def gone() -> bool:  # no such process, or a killed one not reaped yet
        with contextlib.suppress(FileNotFoundError):
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        return True

    assert wait_for(gone, seconds=10)
