"""Warehouse fixtures: gold files from the real pipeline, fakesnow, moto Secrets Manager."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest

from m7etl.devtools.sample import SampleOptions, write_sample
from m7etl.local.runner import run_pipeline
from m7etl.storage import LocalStorage
from m7etl.warehouse import sql
from warehouse.support import DAY1, DAY2, PASSWORD, SECRET_ID, STAGE


@pytest.fixture(scope="session")
def gold_template(tmp_path_factory, registry) -> Path:
    """A data folder with gold files made by the real pipeline (built once per session).

    DAY1: every dataset (Device 120 rows, EPG 80, Channel 40, Viewing 300 sessions).
    DAY2: Device and Viewing only (Channel and EPG had no input that day).
    """
    root = tmp_path_factory.mktemp("gold-template") / "data"
    sizes = {"Device": 120, "EPG": 80, "Channel": 40, "Viewing": 300}
    for day, datasets in ((DAY1, sizes), (DAY2, ("Device", "Viewing"))):
        for i, name in enumerate(datasets):
            write_sample(name, day, root / "landing", SampleOptions(rows=sizes[name], seed=i + 3))
        run_pipeline(LocalStorage(root), registry, day=day)
    return root


@pytest.fixture
def data_dir(gold_template, tmp_path) -> Path:
    """A private copy of the template's data folder (tests may change it)."""
    target = tmp_path / "data"
    shutil.copytree(gold_template, target)
    return target


@pytest.fixture
def source(data_dir) -> LocalStorage:
    return LocalStorage(data_dir)


@pytest.fixture
def fake_snowflake(tmp_path):
    """fakesnow patching the connector (connect and pandas_tools.write_pandas), on disk."""
    import fakesnow

    db = tmp_path / "fakesnow"
    db.mkdir()
    with fakesnow.patch(db_path=str(db)):
        yield db


@pytest.fixture
def conn(fake_snowflake, data_dir):
    """A fakesnow connection in M7_ETL.GOLD with the stage over the data folder's gold/."""
    import snowflake.connector

    from m7etl.local.warehouse import stage_url

    connection = snowflake.connector.connect(database="M7_ETL", schema="GOLD")
    connection.cursor().execute(sql.create_stage_sql(STAGE, stage_url(data_dir)))
    yield connection
    connection.close()


@pytest.fixture
def secrets_client(aws_env):
    """Secrets Manager (moto, in process) holding the stack's secret as the template writes it."""
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        client.create_secret(Name=SECRET_ID, SecretString=json.dumps({"password": PASSWORD}))
        yield client



def pytest_configure(config):
    # fakesnow's cursor warns on every fetch that Arrow output makes a copy: noise here.
    config.addinivalue_line("filterwarnings",
                            "ignore:Arrow output on a DB-API result:UserWarning")
