"""The MWAA stand-in against what it stands for: botocore's MWAA model (status codes, error
shapes, ``x-amzn-ErrorType``), Airflow 3.0.6's REST models and texts (read from the
installed Airflow), the CLI endpoint's answer, and the real Airflow CLI behind it.

Limits the REST tests rely on (the emulation): no auth or roles, no query parameters or
paging, no DAG params; state in memory.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.loaders import Loader

from m7etl.local.standins.mwaa import (
    MwaaStandin,
    airflow_command,
    clone_airflow_home,
    run_airflow,
    shared_airflow_home,
)
from m7etl.orchestration.mwaa import (
    ALREADY_EXISTS,
    TRIGGERED,
    AirflowError,
    CliOutput,
    CliTokens,
    cli_call,
    table_cell,
    trigger_cli,
)
from m7etl.storage.aws import Clients

ENV, DAG = "m7-etl-mwaa-test", "m7_etl_pipeline"
NO_AIRFLOW = ("the `airflow` command is not installed (make install, or pip install -e "
              "'.[airflow]'): the MWAA stand-in's CLI route runs the real Airflow CLI")
needs_airflow = pytest.mark.skipif(airflow_command() is None, reason=NO_AIRFLOW)
MODEL = Loader().load_service_model("mwaa", "service-2")
GRAPHVIZ = (".../airflow/cli/commands/dag_command.py:46 UserWarning: Could not import graphviz. "
            "Rendering graph to the graphical format will not be possible.\nYou might need to "
            "install the graphviz package and necessary system packages.\nRun `pip install "
            "graphviz` to attempt to install it.\n")


@pytest.fixture
def standin(aws_env):
    server = MwaaStandin(env_name=ENV).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def airflow_template(tmp_path_factory):
    if airflow_command() is None:
        pytest.skip(NO_AIRFLOW)
    return shared_airflow_home(tmp_path_factory.getbasetemp())


def raw_post(url: str, body: bytes, headers: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def control_plane(standin, operation: str, name: str = ENV, body: dict | None = None):
    path = {"InvokeRestApi": "restapi", "CreateCliToken": "clitoken"}[operation]
    return raw_post(f"{standin.endpoint}/{path}/{name}", json.dumps(body or {}).encode(),
                    {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/...",
                     "Content-Type": "application/json"})


def rest(standin, method: str, path: str, body: dict | None = None):
    payload = {"Method": method, "Path": path, **({"Body": body} if body is not None else {})}
    return control_plane(standin, "InvokeRestApi", body=payload)


# -- MWAA's control plane, checked against botocore's model ------------------------------
def assert_modelled_error(operation: str, status: int, headers: dict, body: dict, code: str):
    shape = MODEL["shapes"][code]
    assert shape.get("exception") is True
    assert headers["x-amzn-ErrorType"] == code
    assert status == shape["error"]["httpStatusCode"]
    assert set(body) <= set(shape["members"]) and body
    modelled = {e["shape"] for e in MODEL["operations"][operation]["errors"]}
    # CreateCliToken models only ResourceNotFound; a denied caller gets the service's
    # AccessDeniedException (one of AWS's common errors, modelled in this service's shapes)
    assert code in modelled or (code == "AccessDeniedException")


@pytest.mark.parametrize(("setup", "operation", "name", "body", "code"), [
    ({}, "InvokeRestApi", "m7-etl-mwaa-prod", {"Method": "GET", "Path": "/variables/x"},
     "ResourceNotFoundException"),
    ({}, "CreateCliToken", "m7-etl-mwaa-prod", None, "ResourceNotFoundException"),
    ({"rest_mode": "denied"}, "InvokeRestApi", ENV, {"Method": "GET", "Path": "/x"},
     "AccessDeniedException"),
    ({"token_mode": "denied"}, "CreateCliToken", ENV, None, "AccessDeniedException"),
    ({"rest_mode": "unsupported"}, "InvokeRestApi", ENV, {"Method": "GET", "Path": "/x"},
     "ValidationException"),
    ({}, "InvokeRestApi", ENV, {"Method": "GET", "Path": "/" + "x" * 64}, "ValidationException"),
    ({}, "InvokeRestApi", ENV, {"Method": "HEAD", "Path": "/x"}, "ValidationException"),
    ({}, "InvokeRestApi", ENV, {"Method": "GET", "Path": "/variables/nope"},
     "RestApiClientException"),
    ({"rest_mode": "refuse", "refusal": (500, {"detail": "boom"})}, "InvokeRestApi", ENV,
     {"Method": "GET", "Path": "/x"}, "RestApiServerException"),
])
def test_errors_have_the_modelled_status_type_and_shape(standin, setup, operation, name, body,
                                                        code):
    for key, value in setup.items():
        setattr(standin, key, value)
    status, headers, answer = control_plane(standin, operation, name, body)
    assert_modelled_error(operation, status, headers, answer, code)


def test_answers_have_the_modelled_output_members(standin):
    status, _headers, token = control_plane(standin, "CreateCliToken")
    assert status == MODEL["operations"]["CreateCliToken"]["http"]["responseCode"]
    assert set(token) == set(MODEL["shapes"]["CreateCliTokenResponse"]["members"])
    host, _, port = token["WebServerHostname"].partition(":")
    assert host == "127.0.0.1" and port.isdigit()  # real MWAA: a bare host name; a port here
    status, _headers, answer = rest(standin, "POST", "/variables", {"key": "k", "value": "v"})
    assert status == 200 and set(answer) == set(MODEL["shapes"]["InvokeRestApiResponse"]["members"])
    assert answer["RestApiStatusCode"] == 201


def test_boto3_reads_airflows_error_from_the_modelled_exception(standin):
    with pytest.raises(ClientError) as info:
        standin.client().invoke_rest_api(Name=ENV, Method="GET", Path="/variables/nope")
    response = info.value.response
    assert response["Error"]["Code"] == "RestApiClientException"
    assert response["RestApiStatusCode"] == 404
    assert response["RestApiResponse"] == {"detail": "The Variable with key: `nope` was not found"}


# -- Airflow 3.0.6's REST API, as emulated -----------------------------------------------
AIRFLOW_MODELS = """
import json
from airflow.api_fastapi.core_api.datamodels.dag_run import DAGRunResponse
from airflow.api_fastapi.core_api.datamodels.task_instances import (
    TaskInstanceCollectionResponse, TaskInstanceResponse)
from airflow.api_fastapi.core_api.datamodels.variables import VariableResponse
models = (DAGRunResponse, TaskInstanceResponse, TaskInstanceCollectionResponse, VariableResponse)
print(json.dumps({m.__name__: sorted(m.model_json_schema(mode="serialization")["properties"])
                  for m in models}))
"""


@needs_airflow
def test_rest_answers_carry_the_fields_of_airflows_response_models(standin, tmp_path):
    fields = json.loads(subprocess.run(
        [sys.executable, "-c", AIRFLOW_MODELS], capture_output=True, text=True, check=True,
        env={"PATH": os.environ["PATH"], "AIRFLOW_HOME": str(tmp_path), "HOME": str(tmp_path)},
        timeout=120).stdout.splitlines()[-1])
    _s, _h, run = rest(standin, "POST", f"/dags/{DAG}/dagRuns", {"dag_run_id": "r1",
                                                                "logical_date": None})
    assert sorted(run["RestApiResponse"]) == fields["DAGRunResponse"]
    _s, _h, tis = rest(standin, "GET", f"/dags/{DAG}/dagRuns/r1/taskInstances")
    assert sorted(tis["RestApiResponse"]) == fields["TaskInstanceCollectionResponse"]
    assert sorted(tis["RestApiResponse"]["task_instances"][0]) == fields["TaskInstanceResponse"]
    _s, _h, var = rest(standin, "POST", "/variables", {"key": "k", "value": "v"})
    assert sorted(var["RestApiResponse"]) == fields["VariableResponse"]


@needs_airflow
def test_the_emulated_details_are_airflows_own_texts():
    import importlib.util

    routes = Path(importlib.util.find_spec("airflow").origin).parent / \
        "api_fastapi/core_api/routes/public"
    source = "".join((routes / f).read_text() for f in ("variables.py", "dag_run.py",
                                                        "task_instances.py"))
    for text in ("The Variable with key: `{variable_key}` was not found",
                 "The Variable with key: `{post_body.key}` already exists",
                 "Invalid body, key from request body doesn't match uri parameter",
                 "DAG with dag_id: '{dag_id}' not found",
                 "The DagRun with dag_id: `{dag_id}` and run_id: `{dag_run_id}` was not found",
                 "DagRun with run_id: `{dag_run_id}` was not found"):
        assert text in source, text


def test_rest_status_codes(standin):
    def status_and_detail(method, path, body=None):
        status, _h, answer = rest(standin, method, path, body)
        return (answer.get("RestApiStatusCode"), answer.get("RestApiResponse"))

    code, detail = status_and_detail("POST", f"/dags/{DAG}/dagRuns", {"dag_run_id": "r"})
    assert code == 422 and [e["loc"] for e in detail["detail"]] == [["body", "logical_date"]]
    code, detail = status_and_detail("POST", f"/dags/{DAG}/dagRuns",
                                     {"logical_date": None, "dag_run": "r"})
    assert code == 422 and detail["detail"][0]["type"] == "extra_forbidden"
    assert status_and_detail("POST", f"/dags/{DAG}/dagRuns", {"dag_run_id": "r",
                                                              "logical_date": None})[0] == 200
    code, detail = status_and_detail("POST", f"/dags/{DAG}/dagRuns", {"dag_run_id": "r",
                                                                      "logical_date": None})
    assert code == 409 and detail["detail"]["reason"] == "Unique constraint violation"
    assert status_and_detail("PATCH", "/variables/a", {"key": "b", "value": "1"}) == (400, {
        "detail": "Invalid body, key from request body doesn't match uri parameter"})
    assert status_and_detail("PATCH", "/variables/a", {"key": "a", "value": "1"}) == (404, {
        "detail": "The Variable with key: `a` was not found"})
    assert status_and_detail("DELETE", "/variables")[0] == 405
    assert status_and_detail("GET", "/nowhere") == (404, {"detail": "Not Found"})


# -- the web server's CLI endpoint --------------------------------------------------------
def test_cli_answers_base64_stdout_and_stderr_only(standin):
    token = standin.client().create_cli_token(Name=ENV)
    status, _h, answer = raw_post(f"http://{token['WebServerHostname']}/aws_mwaa/cli",
                                  b"variables get nope",
                                  {"Authorization": f"Bearer {token['CliToken']}"})
    assert status == 200 and set(answer) == {"stdout", "stderr"}
    assert base64.b64decode(answer["stderr"]) == b"Variable nope does not exist\n"
    assert raw_post(f"{standin.endpoint}/aws_mwaa/cli", b"version",
                    {"Authorization": "Bearer made-up"})[0] == 403


def test_an_expired_token_is_replaced_once(standin):
    standin.token_ttl = 0.3
    tokens = CliTokens(standin.client(), ENV, clock=lambda: 0.0)  # it never thinks it stale
    http = standin.http
    assert cli_call(standin.client(), ENV, "variables set a 1", http, tokens=tokens).ok
    time.sleep(0.4)  # the token expires on the stand-in's side
    assert cli_call(standin.client(), ENV, "variables get a", http, tokens=tokens).stdout == "1\n"
    assert len(standin.of_kind("create_cli_token")) == 2 and len(standin.of_kind("cli")) == 3


def test_warnings_on_stderr_are_not_failures():
    ok = CliOutput("dags list-runs d -o json", "[]\n", GRAPHVIZ)
    assert ok.ok and ok.problems == []
    failed = CliOutput("dags trigger nodag", "", GRAPHVIZ + "Traceback (most recent call last):\n"
                       "  File \"x\", line 1\nairflow.exceptions.DagNotFound: Dag id nodag not "
                       "found in DagModel\n")
    assert failed.problems[0] == "Traceback (most recent call last):"
    assert failed.last_problem() == "airflow.exceptions.DagNotFound: Dag id nodag not found in DagModel"


# What Airflow 3.0.6 printed for `dags trigger` here: rich wraps long cells over two lines.
TRIGGER_TABLE = "\n".join((
    "conf                       | dag_id          | dag_run_id                | logical_date | state ",
    "===========================+=================+===========================+==============+=======",
    "{'date': '20250501',       | m7_etl_pipeline | manual_20250501_20261201T | None         | queued",
    "'trigger': 'cli'}          |                 | 171552Z                   |              |       ",
    " " * 96, ""))


def test_the_trigger_tables_wrapped_cells_are_joined():
    assert table_cell(TRIGGER_TABLE, "dag_run_id") == "manual_20250501_20261201T171552Z"
    assert table_cell(TRIGGER_TABLE, "state") == "queued"
    assert table_cell("Variable x created\n", "state") is None


def test_an_unknown_command_is_refused(standin):
    out = cli_call(standin.client(), ENV, "db reset -y", standin.http, check=False)
    assert out.problems == ["airflow command error: ['db'] is not a command MWAA's CLI runs"]


# -- the real Airflow behind the CLI route ------------------------------------------------
@pytest.mark.slow
def test_the_cli_route_runs_the_real_airflow(tmp_path, airflow_template, aws_env):
    template, dags = airflow_template
    home = clone_airflow_home(template, tmp_path / "airflow")
    standin = MwaaStandin(env_name=ENV, airflow_home=home, dags_folder=dags).start()
    client, http = standin.client(), standin.http
    try:
        assert cli_call(client, ENV, "variables set max_days_back 7", http).ok
        assert cli_call(client, ENV, "variables get max_days_back", http).stdout.strip() == "7"
        read = run_airflow(["variables", "get", "max_days_back"], home, dags)
        assert (read.returncode, read.stdout.strip()) == (0, "7")  # in Airflow's own DB
        with pytest.raises(AirflowError, match="failed on m7-etl-mwaa-test: Variable nope does "
                                               "not exist"):
            cli_call(client, ENV, "variables get nope", http)
        conf = {"date": "20250501", "trigger": "cli"}
        first = trigger_cli(client, ENV, DAG, conf, "manual_20250501_20250502T030405Z", None, http)
        assert (first.status, first.state) == (TRIGGERED, "queued")
        again = trigger_cli(client, ENV, DAG, conf, "manual_20250501_20250502T030405Z", None, http)
        assert again.status == ALREADY_EXISTS
        state = run_airflow(["dags", "state", DAG, "manual_20250501_20250502T030405Z"], home, dags)
        assert state.stdout.splitlines()[-1] == 'queued, {"date": "20250501", "trigger": "cli"}'
    finally:
        standin.stop()


@needs_airflow
def test_the_entry_point_serves_a_prepared_home(tmp_path, airflow_template, aws_env):
    template, dags = airflow_template
    home = clone_airflow_home(template, tmp_path / "airflow")
    proc = subprocess.Popen([sys.executable, "-m", "m7etl.local.standins.mwaa", "--port", "0",
                             "--airflow-home", str(home), "--dags", str(dags)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"MWAA stand-in ({ENV}, Airflow in {home}) on http://127.0.0.1:")
        endpoint = line.rsplit(" ", 1)[-1].strip()
        mwaa = Clients(region="eu-west-1", endpoint_url=endpoint)(
            "mwaa", Config(inject_host_prefix=False, retries={"max_attempts": 1}))
        token = mwaa.create_cli_token(Name=ENV)
        assert token["WebServerHostname"] == endpoint.removeprefix("http://")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
