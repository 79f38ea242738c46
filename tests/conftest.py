"""Shared fixtures: fake AWS credentials, a moto S3 server on 127.0.0.1, both storages."""

from __future__ import annotations

import logging
import os
import uuid

import boto3
import pytest

from m7etl.core.contracts import load_registry
from m7etl.storage import LocalStorage, S3Storage


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (``make test`` runs ``-n auto --dist loadgroup``), a module's tests
    stay on one worker, so its module fixtures (a DAG run, a deployed stack) are built once.
    A module may join a named group instead (``xdist_group``): the modules sharing the
    layer's wheel cache run on one worker, so two pip processes never fill it at once.

    First: xdist's own hook turns the marks into the ``@group`` of the node ids, and marks
    added after it are not seen (the local e2e stack was built on both workers, 2 min each)."""
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture(autouse=True)
def _no_airflow_console_handler():
    """Airflow, once imported in the test process (``importorskip("airflow...")``), puts on
    the root logger a handler writing to whatever ``sys.stdout`` is when a record comes: in a
    later test, click's CliRunner output got every werkzeug and cfn-lint INFO line (or a
    "Logging error" on its closed stream). It depended on which module ran first in a
    process, so on pytest-xdist's split: taken off before each test."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__name__ == "RedirectStdHandler"]:
        root.removeHandler(handler)


@pytest.fixture(scope="session")
def aws_env():
    """Fake credentials so no test can reach a real account."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_PROFILE")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "eu-west-1"})
    os.environ.pop("AWS_PROFILE", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def moto_endpoint(aws_env):
    """A real S3 HTTP endpoint (moto server mode) on 127.0.0.1, shared by the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_client(moto_endpoint):
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")


@pytest.fixture
def s3_storage(s3_client):
    bucket = f"m7-etl-data-solocco-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=bucket,
                            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return S3Storage(bucket, client=s3_client)


@pytest.fixture
def local_storage(tmp_path):
    return LocalStorage(tmp_path / "bucket")


@pytest.fixture(params=["local", "s3"])
def storage(request):
    """The same test against the local folder and against S3 through the moto server."""
    return request.getfixturevalue(f"{request.param}_storage")


@pytest.fixture(scope="session")
def registry():
    return load_registry()
