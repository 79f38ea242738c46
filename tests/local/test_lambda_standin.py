"""The Lambda stand-in: an unmodified boto3 client invoking zips run by a fresh CPython.

Tiny functions built here check the protocol (status codes, headers, error shapes, log
tail, Event and DryRun) against botocore's own service model; the real ``raw_to_silver``
zip and layer then process a raw file from the moto S3 server.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from m7etl.exceptions import ConfigurationError
from m7etl.local.standins import lambda_invoke
from m7etl.local.standins.lambda_invoke import FunctionSpec, LambdaStandin, find_python, load_functions

# The modules that build the layer share its wheel cache (.work/wheels): one xdist worker.
pytestmark = pytest.mark.xdist_group("wheel-cache")

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:"

ECHO = '''
import importlib.util, os, sys
import lib_a

def handler(event, context):
    print("hello from", context.function_name)
    for _ in range(event.get("chatter", 0)):
        print("y" * 99)
    return {"event": event, "greeting": os.environ.get("GREETING"), "layer": lib_a.VALUE,
            "function_name": context.function_name, "arn": context.invoked_function_arn,
            "request_id": context.aws_request_id, "memory": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "region": os.environ["AWS_REGION"], "flags": [sys.flags.isolated, sys.flags.no_site],
            "python": "%d.%d" % sys.version_info[:2], "sys_path": sys.path,
            "click": importlib.util.find_spec("click") is not None,
            "boto3": importlib.util.find_spec("boto3").origin,
            "m7etl": importlib.util.find_spec("m7etl") is not None,
            "credentials_file": os.environ.get("AWS_SHARED_CREDENTIALS_FILE"),
            "key_id": os.environ.get("AWS_ACCESS_KEY_ID"),
            "endpoint": os.environ.get("AWS_ENDPOINT_URL_S3")}
'''
BOOM = '''
def handler(event, context):
    return check(event["value"])

def check(value):
    raise ValueError("bad input %s" % value)
'''
SLEEPY = '''
import os, time

def handler(event, context):
    with open(event["pid_file"], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(30)
'''
ODD = '''
import os

def handler(event, context):
    if event.get("exit"):
        os._exit(3)
    if event.get("marker"):
        open(event["marker"], "w").write(context.aws_request_id)
    return {1, 2}
'''


def zip_of(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("zips")
    return {
        "echo": zip_of(out / "echo.zip", {"echo.py": ECHO}),
        "boom": zip_of(out / "boom.zip", {"boom.py": BOOM}),
        "sleepy": zip_of(out / "sleepy.zip", {"sleepy.py": SLEEPY}),
        "odd": zip_of(out / "odd.zip", {"odd.py": ODD, "broken.py": "import not_in_the_zip\n"}),
        "layer1": zip_of(out / "layer1.zip", {"python/lib_a.py": "VALUE = 'one'\n",
                                              "python/lib_b.py": "VALUE = 'b'\n"}),
        "layer2": zip_of(out / "layer2.zip", {"python/lib_a.py": "VALUE = 'two'\n"}),
    }


@pytest.fixture(scope="module")
def standin(built, tmp_path_factory, aws_env):
    if find_python("3.12") is None:
        pytest.skip("no CPython 3.12 here (set $M7_PY312 or put python3.12 on PATH)")
    server = LambdaStandin(tmp_path_factory.mktemp("lambda-cache"),
                           env={"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"},
                           log_dir=tmp_path_factory.mktemp("lambda-logs")).start()
    server.register(FunctionSpec("m7-echo", str(built["echo"]), "echo.handler",
                                 layers=(str(built["layer1"]), str(built["layer2"])),
                                 environment={"GREETING": "bonjour"}, timeout=30, memory=256))
    server.register(FunctionSpec("m7-boom", str(built["boom"]), "boom.handler"))
    server.register(FunctionSpec("m7-sleepy", str(built["sleepy"]), "sleepy.handler", timeout=1))
    server.register(FunctionSpec("m7-odd", str(built["odd"]), "odd.handler", timeout=10))
    server.register(FunctionSpec("m7-broken", str(built["odd"]), "broken.handler"))
    server.register(FunctionSpec("m7-nohandler", str(built["odd"]), "odd.missing"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(standin):
    return boto3.client("lambda", endpoint_url=standin.endpoint, region_name="eu-west-1",
                        config=Config(retries={"max_attempts": 0}, read_timeout=120))


def invoke(client, name: str, event=None, **kwargs) -> tuple[dict, object]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event or {}), **kwargs)
    body = response["Payload"].read()
    return response, (json.loads(body) if body else None)


# -- the protocol, from botocore's model -----------------------------------------------------
def test_the_routes_and_headers_are_the_models():
    model = botocore.session.get_session().get_service_model("lambda")
    op = model.operation_model("Invoke")
    assert (op.http["method"], op.http["requestUri"]) == ("POST", lambda_invoke.INVOKE_URI)
    assert lambda_invoke.INVOKE_PATH.match("/2015-03-31/functions/m7-echo/invocations")
    inputs = {n: s.serialization.get("name") for n, s in op.input_shape.members.items()}
    outputs = {n: s.serialization.get("name") for n, s in op.output_shape.members.items()}
    assert inputs["InvocationType"] == lambda_invoke.H_INVOCATION_TYPE
    assert inputs["LogType"] == lambda_invoke.H_LOG_TYPE
    assert inputs["ClientContext"] == lambda_invoke.H_CLIENT_CONTEXT
    assert outputs["FunctionError"] == lambda_invoke.H_FUNCTION_ERROR
    assert outputs["LogResult"] == lambda_invoke.H_LOG_RESULT
    assert outputs["ExecutedVersion"] == lambda_invoke.H_EXECUTED_VERSION
    # StatusCode's documentation: 200 RequestResponse, 202 Event, 204 DryRun.
    doc = op.output_shape.members["StatusCode"].documentation
    documented = dict(re.findall(r"<code>(\w+)</code> invocation type, (?:this|the) status code "
                                 r"is (\d+)", doc))
    assert {k: int(v) for k, v in documented.items()} == lambda_invoke.STATUS
    errors = {e.name: e.metadata["error"]["httpStatusCode"] for e in op.error_shapes}
    assert (errors["ResourceNotFoundException"], errors["InvalidRequestContentException"],
            errors["RequestTooLargeException"], errors["InvalidZipFileException"]) == (404, 400,
                                                                                       413, 502)


# -- successful invocations ------------------------------------------------------------------
def test_request_response_runs_the_zip_isolated_with_its_layers_and_variables(client, standin):
    response, payload = invoke(client, "m7-echo", {"day": "20250501"})
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response and response["ExecutedVersion"] == "$LATEST"
    assert payload["event"] == {"day": "20250501"}
    assert payload["greeting"] == "bonjour"
    assert payload["layer"] == "two"  # the later layer wins, as Lambda extracts in order
    assert (payload["function_name"], payload["arn"]) == ("m7-echo", ARN + "m7-echo")
    assert payload["request_id"] == response["ResponseMetadata"]["RequestId"]
    assert payload["memory"] == "256" and payload["region"] == "eu-west-1"
    assert 0 < payload["remaining_ms"] <= 30_000
    assert payload["flags"] == [1, 1] and payload["python"] == "3.12"
    # The task, the layers (the later first), the SDK folder, the stdlib: nothing of the
    # source tree or this venv.
    task, opt = standin.cache_dir / "task", standin.cache_dir / "opt"
    assert Path(payload["sys_path"][0]).parent == task
    assert [Path(p).parent.parent for p in payload["sys_path"][1:5:2]] == [opt, opt]
    assert payload["sys_path"][5] == str(standin.cache_dir / "runtime")
    assert not [p for p in payload["sys_path"] if p.startswith(str(ROOT))]
    assert payload["click"] is False and payload["m7etl"] is False
    assert payload["boto3"].startswith(str(standin.cache_dir / "runtime"))
    # Credentials are passed through; no profile file of this machine is readable.
    assert payload["key_id"] == "testing" and payload["credentials_file"] == os.devnull
    assert payload["endpoint"] == "http://127.0.0.1:9"


def test_the_code_is_unpacked_once_per_sha(client, standin, built, tmp_path):
    invoke(client, "m7-echo")
    invoke(client, "m7-echo")
    echo = [i.cold for i in standin.invocations if i.function == "m7-echo"]
    assert echo == [True] + [False] * (len(echo) - 1)
    task = standin.cache_dir / "task"
    sha = hashlib.sha256(built["echo"].read_bytes()).hexdigest()[:24]
    assert [p for p in task.iterdir() if (p / "echo.py").is_file()] == [task / sha]
    # A rebuilt zip (another sha) is unpacked anew: a cold start again.
    rebuilt = zip_of(tmp_path / "echo.zip", {"echo.py": ECHO.replace("bonjour", "x") + "\n# v2\n"})
    standin.register(FunctionSpec("m7-echo2", str(rebuilt), "echo.handler",
                                  layers=(str(built["layer1"]),)))
    invoke(client, "m7-echo2")
    assert standin.invocations[-1].cold is True
    assert (standin.cache_dir / "task" / hashlib.sha256(rebuilt.read_bytes()).hexdigest()[:24]).is_dir()


def test_log_tail_is_the_last_4_kb_base64(client):
    response, _ = invoke(client, "m7-echo", {"chatter": 100}, LogType="Tail")
    tail = base64.b64decode(response["LogResult"])
    text = tail.decode()
    rid = response["ResponseMetadata"]["RequestId"]
    assert len(tail) <= 4096 and not text.startswith("START")  # 10 KB of output, cut
    assert text.splitlines()[-1].startswith(f"REPORT RequestId: {rid}\tDuration: ")
    assert f"END RequestId: {rid}" in text and "y" * 99 in text
    short, _ = invoke(client, "m7-echo", LogType="Tail")
    lines = base64.b64decode(short["LogResult"]).decode().splitlines()
    srid = short["ResponseMetadata"]["RequestId"]
    assert lines[:2] == [f"START RequestId: {srid} Version: $LATEST", "hello from m7-echo"]
    assert "LogResult" not in invoke(client, "m7-echo")[0]


def test_event_is_202_and_runs_later_dry_run_is_204_and_runs_nothing(client, standin, tmp_path):
    marker = tmp_path / "ran"
    before = len(standin.invocations)
    response, payload = invoke(client, "m7-odd", {"marker": str(marker)}, InvocationType="Event")
    assert (response["StatusCode"], payload) == (202, None)
    # The invocation is recorded when the function returns, after it wrote the marker: wait
    # for the record, not the marker, or the Event run is counted against the DryRun below.
    deadline = time.monotonic() + 20
    while len(standin.invocations) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == response["ResponseMetadata"]["RequestId"]
    assert standin.invocations[-1].invocation_type == "Event"
    before = len(standin.invocations)
    response, payload = invoke(client, "m7-odd", {"marker": str(tmp_path / "no")},
                               InvocationType="DryRun")
    assert (response["StatusCode"], payload) == (204, None)
    time.sleep(0.3)
    assert len(standin.invocations) == before and not (tmp_path / "no").exists()


def test_a_name_an_arn_and_latest_reach_the_function(client):
    for name in ("m7-echo", ARN + "m7-echo", "123456789012:function:m7-echo", "m7-echo:$LATEST"):
        assert invoke(client, name)[1]["function_name"] == "m7-echo"
    assert invoke(client, "m7-echo", Qualifier="$LATEST")[1]["function_name"] == "m7-echo"


# -- function errors: HTTP 200 and X-Amz-Function-Error --------------------------------------
def test_an_exception_is_unhandled_with_lambdas_error_object(client, standin):
    response, payload = invoke(client, "m7-boom", {"value": 42}, LogType="Tail")
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    rid = response["ResponseMetadata"]["RequestId"]
    assert set(payload) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert (payload["errorMessage"], payload["errorType"], payload["requestId"]) == (
        "bad input 42", "ValueError", rid)
    task = standin.cache_dir / "task"
    assert [re.sub(r"/task/\w+/", "/task/<sha>/", line) for line in payload["stackTrace"]] == [
        f'  File "{task}/<sha>/boom.py", line 3, in handler\n    return check(event["value"])\n'
        f'           ^^^^^^^^^^^^^^^^^^^^^\n',  # Python 3.12's traceback marks the call
        f'  File "{task}/<sha>/boom.py", line 6, in check\n'
        f'    raise ValueError("bad input %s" % value)\n']
    log = base64.b64decode(response["LogResult"]).decode()
    assert "[ERROR] ValueError: bad input 42\nTraceback (most recent call last):" in log


def test_a_timeout_kills_the_process_and_answers_sandbox_timedout(client, tmp_path):
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    response, payload = invoke(client, "m7-sleepy", {"pid_file": str(pid_file)}, LogType="Tail")
    assert time.monotonic() - started < 10  # killed at 1 s, not after the 30 s sleep
    rid = response["ResponseMetadata"]["RequestId"]
    assert (response["StatusCode"], response["FunctionError"]) == (200, "Unhandled")
    assert payload == {"errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds",
                       "errorType": "Sandbox.Timedout"}
    log = base64.b64decode(response["LogResult"]).decode()
    assert re.search(rf"Z {rid} Task timed out after 1.00 seconds\n", log)
    assert "\tStatus: timeout" in log.splitlines()[-1]
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


@pytest.mark.parametrize(("name", "event", "kind", "message"), [
    ("m7-broken", {}, "Runtime.ImportModuleError",
     "Unable to import module 'broken': No module named 'not_in_the_zip'"),
    ("m7-nohandler", {}, "Runtime.HandlerNotFound", "Handler 'missing' missing on module 'odd'"),
    ("m7-odd", {}, "Runtime.MarshalError",
     "Unable to marshal response: Object of type set is not JSON serializable"),
    ("m7-odd", {"exit": True}, "Runtime.ExitError", "RequestId: {rid} Error: Runtime exited with "
                                                     "error: exit status 3"),
])
def test_runtime_errors_have_the_runtimes_types(client, name, event, kind, message):
    response, payload = invoke(client, name, event)
    rid = response["ResponseMetadata"]["RequestId"]
    assert response["FunctionError"] == "Unhandled"
    assert (payload["errorType"], payload["errorMessage"]) == (kind, message.format(rid=rid))


# -- errors of the API itself ------------------------------------------------------------------
def test_an_unknown_function_or_version_is_resource_not_found(client):
    with pytest.raises(ClientError) as info:
        client.invoke(FunctionName="m7-nope")
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error["Error"] == {"Code": "ResourceNotFoundException",
                              "Message": f"Function not found: {ARN}m7-nope"}
    assert error["Type"] == "User"
    with pytest.raises(client.exceptions.ResourceNotFoundException,
                       match=f"Function not found: {ARN}m7-echo:7"):
        client.invoke(FunctionName="m7-echo", Qualifier="7")


def test_bad_requests_get_the_modelled_errors(client, standin):
    with pytest.raises(client.exceptions.InvalidRequestContentException,
                       match="Could not parse request body into json: Expecting value"):
        client.invoke(FunctionName="m7-echo", Payload=b"not json")
    with pytest.raises(client.exceptions.RequestTooLargeException,
                       match="Request must be smaller than 6291456 bytes"):
        client.invoke(FunctionName="m7-echo", Payload=json.dumps({"x": "a" * 6_300_000}))
    request = urllib.request.Request(f"{standin.endpoint}/2015-03-31/functions/m7-echo/invocations",
                                     data=b"{}", method="POST")  # not signed
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 403
    assert info.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


# -- registration ------------------------------------------------------------------------------
def test_registration_refuses_what_lambda_refuses(standin, built, tmp_path):
    with pytest.raises(ConfigurationError) as info:
        standin.register(FunctionSpec("m7-x", str(built["echo"]), "echo.handler",
                                      environment={"AWS_REGION": "us-east-1", "A": "1"}))
    assert str(info.value) == ("Function 'm7-x': reserved environment variable(s) AWS_REGION. "
                               "Lambda sets these itself; remove them from the function's variables.")
    with pytest.raises(ConfigurationError) as info:
        standin.register(FunctionSpec("m7-x", str(tmp_path / "build" / "raw_to_silver.zip"),
                                      "raw_to_silver.handler"))
    assert str(info.value) == (f"Function m7-x: {tmp_path}/build/raw_to_silver.zip does not exist. "
                               "Build it with `m7etl package` (build/).")
    with pytest.raises(ConfigurationError, match="timeout 901 is not 1-900 seconds"):
        FunctionSpec("m7-x", "x.zip", "x.handler", timeout=901).check()


def test_a_functions_file_resolves_paths_next_to_it(tmp_path, built):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "f.zip").write_bytes(built["echo"].read_bytes())
    spec_file = tmp_path / "functions.json"
    spec_file.write_text(json.dumps({"functions": [
        {"name": "m7-echo", "code": "build/f.zip", "handler": "echo.handler",
         "environment": {"GREETING": "salut"}, "timeout": 5}]}))
    (spec,) = load_functions(spec_file)
    assert (spec.code, spec.environment, spec.timeout, spec.memory) == (
        str(tmp_path / "build" / "f.zip"), {"GREETING": "salut"}, 5, 128)
    spec_file.write_text(json.dumps([{"name": "m7-echo", "code": "f.zip", "handlr": "x.y"}]))
    with pytest.raises(ConfigurationError) as info:
        load_functions(spec_file)
    assert str(info.value) == (f"Function 'm7-echo' in {spec_file}: unknown key(s) handlr. The "
                               "keys are name, code, handler, layers, environment, timeout, "
                               "memory, runtime.")


def test_the_command_line_serves_a_functions_file_until_sigterm(built, tmp_path, aws_env):
    if find_python("3.12") is None:
        pytest.skip("no CPython 3.12 here")
    spec_file = tmp_path / "functions.json"
    spec_file.write_text(json.dumps([{"name": "m7-boom", "code": str(built["boom"]),
                                      "handler": "boom.handler"}]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "m7etl.local.standins.lambda_invoke", "--port", "0",
         "--functions", str(spec_file), "--cache-dir", str(tmp_path / "cache")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"Lambda stand-in \(m7-boom\) on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        lam = boto3.client("lambda", endpoint_url=match.group(1), region_name="eu-west-1",
                           config=Config(retries={"max_attempts": 0}))
        _, payload = invoke(lam, "m7-boom", {"value": 7})
        assert payload["errorMessage"] == "bad input 7"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert "invoke m7-boom RequestResponse: Unhandled in" in proc.stderr.read()
    spec_file.write_text("[{")
    bad = subprocess.run([sys.executable, "-m", "m7etl.local.standins.lambda_invoke",
                          "--functions", str(spec_file)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith(
        f"lambda stand-in: Cannot read the functions file {spec_file}: Expecting property name")


# -- the real function ---------------------------------------------------------------------
def _template_function(logical_id: str, values: dict[str, str]) -> tuple[dict, dict, object]:
    """(Properties, Environment.Variables resolved, the resolver) of a template function."""
    from m7etl.deploy.stack import parse_template

    template = parse_template((ROOT / "templates" / "etl-pipeline-mwaa.yaml").read_text(), "t")
    props = template["Resources"][logical_id]["Properties"]
    defaults = {k: str(v.get("Default")) for k, v in template["Parameters"].items()}

    def resolve(value):
        if isinstance(value, dict) and "Ref" in value:
            return values.get(value["Ref"], defaults[value["Ref"]])
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return values[".".join(value["Fn::GetAtt"])]
        return str(value)

    return props, {k: resolve(v) for k, v in props["Environment"]["Variables"].items()}, resolve


@pytest.fixture(scope="module")
def real_build(tmp_path_factory) -> tuple[Path, Path]:
    """raw_to_silver.zip (built now, as `m7etl package` does) and the python3.12 layer: build/
    when it is there, else built with the wheel cache .work/wheels (about 10 s)."""
    from m7etl.deploy.artefacts import build_all
    from m7etl.deploy.layer import build_layer
    from m7etl.exceptions import PackageError

    out = tmp_path_factory.mktemp("real-build")
    build_all(out, skip_layer=True, glue=False)
    layer = ROOT / "build" / "etl-dependencies.zip"
    if not layer.is_file():
        try:
            layer = build_layer(out, wheel_cache=ROOT / ".work" / "wheels").path
        except PackageError as exc:
            pytest.skip(f"no layer in build/ and it cannot be built here: {exc}")
    return out / "raw_to_silver.zip", layer


@pytest.mark.slow
def test_the_built_raw_to_silver_processes_a_raw_file_from_moto(real_build, moto_endpoint,
                                                               tmp_path, capsys):
    code, layer = real_build
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    bucket = f"m7-etl-data-solocco-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    header = ("device_id,subscriber_id,model,firmware_version,region,activation_date,"
              "last_seen_at,status,signal_quality_pct")
    devices = [f"STB{i:09d}" for i in range(4)]
    rows = [f"{d},SUB{i:08d},M7-UHD4K,2.0.{i},Occitanie,2021-03-0{i + 1},"
            f"2025-05-01 08:00:0{i},active,9{i}" for i, d in enumerate(devices)]
    raw_key = "raw/20250501/Device_20250501.csv"
    s3.put_object(Bucket=bucket, Key=raw_key, Body=("\n".join([header, *rows]) + "\n").encode())
    props, variables, resolve = _template_function("RawToSilverFunction", {
        "Environment": "test", "DataBucketSsm.Value": bucket})
    assert set(variables) == {"M7_ENVIRONMENT", "M7_DATA_BUCKET", "M7_ERROR_THRESHOLD",
                              "M7_WARNING_THRESHOLD", "POWERTOOLS_SERVICE_NAME",
                              "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
    with LambdaStandin(tmp_path / "cache", env={"AWS_ENDPOINT_URL": moto_endpoint}) as standin:
        standin.register(FunctionSpec("m7-etl-raw-to-silver-test", str(code), props["Handler"],
                                      layers=(str(layer),), environment=variables,
                                      timeout=int(resolve(props["Timeout"])),
                                      memory=int(resolve(props["MemorySize"]))))
        lam = boto3.client("lambda", endpoint_url=standin.endpoint, region_name="eu-west-1",
                           config=Config(retries={"max_attempts": 0}, read_timeout=900))
        times = []
        for _ in range(2):
            started = time.monotonic()
            response, summary = invoke(lam, "m7-etl-raw-to-silver-test", {"key": raw_key},
                                       LogType="Tail")
            times.append(time.monotonic() - started)
            assert "FunctionError" not in response, summary
        first, second = standin.invocations
    assert (summary["status"], summary["rows_read"], summary["rows_valid"],
            summary["rows_rejected"]) == ("ok", 4, 4, 0)
    import pyarrow.parquet as pq

    body = s3.get_object(Bucket=bucket, Key=summary["outputs"]["silver"])["Body"].read()
    assert [r["device_id"] for r in pq.read_table(io.BytesIO(body)).to_pylist()] == devices
    log = base64.b64decode(response["LogResult"]).decode()
    assert '"RowsValid":[4.0]' in log.replace(" ", "")  # the EMF metrics, in the log
    assert (first.cold, second.cold) == (True, False)
    with capsys.disabled():
        print(f"\nraw_to_silver via the stand-in: cold {times[0]:.2f} s (init "
              f"{first.init_ms:.0f} ms), warm {times[1]:.2f} s (init {second.init_ms:.0f} ms)")


# -- Airflow's operator ------------------------------------------------------------------------
AIRFLOW_CHECK = '''
import json, sys
from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator

def run(task_id, name, payload):
    operator = LambdaInvokeFunctionOperator(
        task_id=task_id, function_name=name, payload=json.dumps(payload), log_type="Tail",
        aws_conn_id="aws_standin", botocore_config={"read_timeout": 900, "retries": {"max_attempts": 0}})
    try:
        return {"returned": json.loads(operator.execute({}))}
    except ValueError as exc:
        return {"raised": exc.args[0], "payload": json.loads(exc.args[1]["Payload"])}

print("RESULT:" + json.dumps([run("ok", "m7-echo", {"day": "20250501"}),
                              run("boom", "m7-boom", {"value": 5})]))
'''


@pytest.mark.slow
def test_airflows_lambda_operator_invokes_the_stand_in(standin, tmp_path):
    pytest.importorskip("airflow.providers.amazon")
    connection = {"conn_type": "aws", "extra": {"region_name": "eu-west-1", "service_config": {
        "lambda": {"endpoint_url": standin.endpoint}}}}
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_CONN_AWS_STANDIN": json.dumps(connection)}
    proc = subprocess.run([sys.executable, "-c", AIRFLOW_CHECK], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT:")]
    ok, boom = json.loads(line[len("RESULT:"):])
    assert ok["returned"]["event"] == {"day": "20250501"} and ok["returned"]["layer"] == "two"
    assert boom["raised"] == "Lambda function execution resulted in error"
    assert (boom["payload"]["errorType"], boom["payload"]["errorMessage"]) == ("ValueError",
                                                                               "bad input 5")
    # The operator logs the tail it was given: the function's own output reached the task log.
    assert "hello from m7-echo" in proc.stdout + proc.stderr
