"""Fixtures for the Lambda handler tests: a moto S3 server, the MWAA stand-in, the env
the template sets, a Lambda context. Helpers (``load_event``, sample files, listings) are
in ``lambda_testkit``."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "lambda_src", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from lambda_testkit import BUCKET, ENV_NAME, ensure_empty_bucket, load_event  # noqa: E402

from m7etl.local.standins.mwaa import MwaaStandin  # noqa: E402


@dataclass
class LambdaContext:
    function_name: str = "m7-etl-test-fn"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:m7-etl-test-fn"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/m7-etl-test-fn"
    log_stream_name: str = "2025/05/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


__all__ = ["LambdaContext", "load_event"]


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext(aws_request_id=str(uuid.uuid4()))


@pytest.fixture
def aws_credentials(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                       "AWS_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def lambda_moto(moto_endpoint):
    """The session's moto S3 server (``tests/conftest.py``)."""
    return moto_endpoint


@pytest.fixture
def standin():
    server = MwaaStandin(env_name=ENV_NAME).start()
    yield server
    server.stop()


@pytest.fixture
def lambda_env(monkeypatch, aws_credentials, lambda_moto, standin):
    """The environment the CloudFormation template gives the functions, aimed at moto and
    the MWAA stand-in."""
    settings = {
        "M7_ENVIRONMENT": "test", "M7_DATA_BUCKET": BUCKET,
        "POWERTOOLS_METRICS_NAMESPACE": "M7Etl", "POWERTOOLS_LOG_LEVEL": "INFO",
        "M7_ERROR_THRESHOLD": "5.0", "M7_WARNING_THRESHOLD": "10.0",
        "M7_MWAA_ENV_NAME": ENV_NAME, "M7_DAG_ID": "m7_etl_pipeline",
        "AWS_ENDPOINT_URL_S3": lambda_moto, "AWS_ENDPOINT_URL_MWAA": standin.endpoint,
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
    from m7etl.orchestration import clients

    clients.reset()
    yield settings
    clients.reset()


@pytest.fixture
def s3(lambda_env, lambda_moto):
    """The moto S3 with an empty data bucket."""
    client = boto3.client("s3", region_name="eu-west-1", endpoint_url=lambda_moto)
    ensure_empty_bucket(client, BUCKET)
    return client
