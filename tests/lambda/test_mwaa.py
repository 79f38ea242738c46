"""m7etl.orchestration.mwaa.trigger_dag against the MWAA stand-in: both protocols, every outcome."""

from __future__ import annotations

import base64
import json

import pytest

from m7etl.orchestration.mwaa import ALREADY_EXISTS, CLI, REST_API, TRIGGERED, TriggerError, trigger_dag

ENV, DAG = "m7-etl-mwaa-test", "m7_etl_pipeline"
CONF = {"date": "20250501", "raw_keys": ["raw/20250501/Device_20250501.csv"]}


@pytest.fixture
def call(standin, aws_credentials):
    client = standin.client()

    def run(run_id: str = "s3_20250501_abc", env: str = ENV, dag: str = DAG, **kw):
        return trigger_dag(env, dag, conf=CONF, dag_run_id=run_id, client=client,
                           http=standin.http, **kw)
    return run


def test_accepted_by_the_rest_api(call, standin):
    result = call()
    assert (result.status, result.method, result.state) == (TRIGGERED, REST_API, "queued")
    (req,) = standin.requests
    assert req.kind == "invoke_rest_api" and req.path == f"/restapi/{ENV}"
    assert req.headers["authorization"].startswith("AWS4-HMAC-SHA256")
    assert req.body == {"Name": ENV, "Method": "POST", "Path": f"/dags/{DAG}/dagRuns",
                        "Body": {"dag_run_id": "s3_20250501_abc", "logical_date": None,
                                 "conf": CONF}} or req.body["Body"]["conf"] == CONF


def test_existing_run_id_is_a_success(call, standin):
    call()
    again = call()
    assert (again.status, again.method) == (ALREADY_EXISTS, REST_API)
    assert len(standin.runs) == 1


def test_refused_by_airflow_raises_naming_env_and_cause(call, standin):
    standin.rest_mode = "refuse"
    with pytest.raises(TriggerError) as info:
        call()
    text = str(info.value)
    assert ENV in text and DAG in text and "HTTP 400" in text and "conf is not a valid" in text
    assert not info.value.retryable and standin.of_kind("cli") == []


def test_unknown_dag_says_to_upload_it(call):
    with pytest.raises(TriggerError, match="has no DAG other_dag.*Upload the DAG file"):
        call(dag="other_dag")


def test_unknown_environment(call):
    with pytest.raises(TriggerError, match="m7-etl-mwaa-prod does not exist"):
        call(env="m7-etl-mwaa-prod")


@pytest.mark.parametrize("mode", ["unsupported", "denied"])
def test_fallback_to_cli_token(call, standin, mode):
    standin.rest_mode = mode
    result = call(logical_date="2025-05-01T00:00:00+00:00")
    assert (result.status, result.method) == (TRIGGERED, CLI)
    assert ("not supported" if mode == "unsupported" else "denied") in result.fallback_reason
    assert [r.kind for r in standin.requests] == ["invoke_rest_api", "create_cli_token", "cli"]
    cli = standin.of_kind("cli")[0]
    assert cli.body == ("dags trigger m7_etl_pipeline --run-id s3_20250501_abc --conf "
                        "'" + json.dumps(CONF, sort_keys=True, separators=(",", ":")) + "' "
                        "--logical-date 2025-05-01T00:00:00+00:00")
    assert standin.cli_urls == [f"https://{standin.host}/aws_mwaa/cli"]
    assert standin.runs[(DAG, "s3_20250501_abc")]["conf"] == CONF


def test_cli_fallback_is_idempotent_too(call, standin):
    standin.rest_mode = "unsupported"
    call()
    again = call()
    assert (again.status, again.method) == (ALREADY_EXISTS, CLI)


def test_cli_refused_by_the_web_server(call, standin):
    standin.rest_mode, standin.cli_mode = "denied", "forbidden"
    with pytest.raises(TriggerError, match="HTTP 403.*CLI token was refused"):
        call()


def test_cli_command_failure_is_reported(call, standin):
    standin.rest_mode, standin.cli_mode = "unsupported", "fail"
    with pytest.raises(TriggerError, match="failed on m7-etl-mwaa-test: .*Dag is paused"):
        call()


def test_both_apis_denied(call, standin):
    standin.rest_mode, standin.token_mode = "denied", "denied"
    with pytest.raises(TriggerError, match="refused both InvokeRestApi and CreateCliToken"):
        call()


def test_sdk_without_invoke_rest_api_uses_the_cli(standin, aws_credentials):
    class OldClient:  # botocore before InvokeRestApi existed
        def __init__(self, real):
            self.create_cli_token = real.create_cli_token

    result = trigger_dag(ENV, DAG, conf=CONF, dag_run_id="r1", client=OldClient(standin.client()),
                         http=standin.http)
    assert result.method == CLI and "InvokeRestApi" in result.fallback_reason


def test_standin_answers_like_the_cli_endpoint(standin, aws_credentials):
    token = standin.client().create_cli_token(Name=ENV)
    assert token["WebServerHostname"] == standin.host
    status, body = standin.http(f"https://{token['WebServerHostname']}/aws_mwaa/cli",
                                headers={"Authorization": f"Bearer {token['CliToken']}"},
                                body=b"dags trigger m7_etl_pipeline --run-id x", timeout=5)
    payload = json.loads(body)
    assert status == 200 and "x" in base64.b64decode(payload["stdout"]).decode()
