"""The local stack's MWAA stand-in (m7etl.local.standins.mwaa_runs): an environment the
stack creates, its DAG folder synced from moto's S3, triggered runs that really run.

A real Airflow 3.0.6 (a home migrated once per session) and the session's moto server; the
DAG is a small one uploaded to the code bucket, whose task writes to moto's S3 through the
connection ``aws_default`` what it sees: the environment's configuration options and where
its ``m7etl`` package comes from (the DAG folder, not this checkout).
"""

from __future__ import annotations

import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from m7etl.local.standins.mwaa import airflow_command, prepare_airflow_home
from m7etl.local.standins.mwaa_runs import LocalMwaa, option_variables

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(airflow_command() is None,
                                 reason="no airflow command: the stand-in runs a real Airflow "
                                        "3.0.6 (make install)")]
ENV = "m7-etl-mwaa-local"
DAG = '''"""What the stand-in's runs see, written to S3 through aws_default."""
import pendulum
from airflow.sdk import DAG, task


@task
def report():
    import m7etl
    from airflow.configuration import conf
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    seen = f"{{conf.get('m7etl', 'environment')}} {{m7etl.__file__}}"
    S3Hook().load_string(seen, "seen.txt", bucket_name="{bucket}", replace=True)


with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
         is_paused_upon_creation={paused}):
    report()
'''


@pytest.fixture(scope="module")
def standin(tmp_path_factory, moto_endpoint):
    """One stand-in for the module (its Airflow home migrated once); each test creates its
    environment and the fixture below deletes it."""
    base = tmp_path_factory.mktemp("mwaa-runs")
    prepare_airflow_home(base / "home", base / "dags")
    mwaa = LocalMwaa(airflow_home=base / "home", dags_folder=base / "dags",
                     moto_endpoint=moto_endpoint, work=base / "work", sync_interval=0.5).start()
    mwaa.ensure_connection()
    yield mwaa
    mwaa.stop()


@pytest.fixture
def bucket(moto_endpoint, standin):
    name = f"m7-code-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    yield name
    if standin.environment is not None:
        standin.unregister(standin.env_name)


def client(standin, signed: bool = True):
    from botocore import UNSIGNED

    extra = {} if signed else {"signature_version": UNSIGNED}
    return boto3.client("mwaa", endpoint_url=standin.endpoint, region_name="eu-west-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(inject_host_prefix=False, retries={"max_attempts": 1},
                                      **extra))


def create(mwaa, bucket: str, **extra) -> str:
    return mwaa.create_environment(
        Name=ENV, ExecutionRoleArn="arn:aws:iam::123456789012:role/m7-etl-mwaa-local",
        SourceBucketArn=f"arn:aws:s3:::{bucket}", DagS3Path="dags",
        NetworkConfiguration={"SubnetIds": ["subnet-0a", "subnet-0b"]},
        AirflowConfigurationOptions={"m7etl.environment": "local"}, **extra)["Arn"]


def upload_dag(moto_endpoint: str, bucket: str, *, paused: bool = False, dag_id: str = "probe"):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    s3.put_object(Bucket=bucket, Key=f"dags/{dag_id}.py",
                  Body=DAG.format(bucket=bucket, dag_id=dag_id, paused=paused).encode())
    s3.put_object(Bucket=bucket, Key="dags/m7etl/__init__.py", Body=b'"""shipped"""\n')


def wait_state(mwaa, dag_id: str, run_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = mwaa.invoke_rest_api(Name=ENV, Method="GET",
                                   Path=f"/dags/{dag_id}/dagRuns/{run_id}")["RestApiResponse"]
        if run["state"] in ("success", "failed") or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def test_options_become_airflow_variables_as_mwaa_writes_them():
    assert option_variables({"m7etl.alert_topic_arn": "arn:x", "core.parallelism": 4,
                             "nodot": "x"}) == {"AIRFLOW__M7ETL__ALERT_TOPIC_ARN": "arn:x",
                                                "AIRFLOW__CORE__PARALLELISM": "4"}


def test_the_environment_exists_only_between_create_and_delete(standin, bucket):
    mwaa = client(standin)
    with pytest.raises(ClientError) as before:
        mwaa.get_environment(Name=ENV)
    assert before.value.response["Error"]["Code"] == "ResourceNotFoundException"
    arn = create(mwaa, bucket)
    assert arn == f"arn:aws:airflow:eu-west-1:123456789012:environment/{ENV}"
    env = mwaa.get_environment(Name=ENV)["Environment"]
    assert (env["Status"], env["WebserverUrl"], env["SourceBucketArn"], env["DagS3Path"]) == (
        "AVAILABLE", standin.host, f"arn:aws:s3:::{bucket}", "dags")
    mwaa.update_environment(Name=ENV, AirflowConfigurationOptions={"m7etl.environment": "other"})
    assert mwaa.get_environment(Name=ENV)["Environment"]["AirflowConfigurationOptions"] == {
        "m7etl.environment": "other"}
    mwaa.delete_environment(Name=ENV)
    with pytest.raises(ClientError) as after:
        mwaa.invoke_rest_api(Name=ENV, Method="GET", Path="/dags/probe/dagRuns")
    assert after.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_an_airflow_version_other_than_3_0_6_and_unsigned_calls_are_refused(standin, bucket):
    with pytest.raises(ClientError) as version:
        create(client(standin), bucket, AirflowVersion="2.10.3")
    assert version.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "AirflowVersion 2.10.3: the local stand-in runs Airflow 3.0.6 only"}
    with pytest.raises(ClientError) as unsigned:
        client(standin, signed=False).get_environment(Name=ENV)
    assert unsigned.value.response["Error"]["Code"] == "AccessDeniedException"


def test_a_rest_triggered_run_runs_the_deployed_dag_and_both_routes_see_it(
        standin, bucket, moto_endpoint):
    mwaa = client(standin)
    create(mwaa, bucket)
    upload_dag(moto_endpoint, bucket)
    answer = mwaa.invoke_rest_api(Name=ENV, Method="POST", Path="/dags/probe/dagRuns",
                                  Body={"dag_run_id": "r1", "logical_date": None,
                                        "conf": {"date": "20250501"}})
    assert answer["RestApiStatusCode"] == 200
    assert (answer["RestApiResponse"]["state"], answer["RestApiResponse"]["conf"]) == (
        "queued", {"date": "20250501"})
    run = wait_state(mwaa, "probe", "r1")
    assert run["state"] == "success" and run["start_date"] and run["end_date"]
    tasks = mwaa.invoke_rest_api(Name=ENV, Method="GET",
                                 Path="/dags/probe/dagRuns/r1/taskInstances")["RestApiResponse"]
    assert [(t["task_id"], t["state"]) for t in tasks["task_instances"]] == [("report", "success")]
    # What the task saw: the environment's option, and the m7etl the upload shipped.
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    seen = s3.get_object(Bucket=bucket, Key="seen.txt")["Body"].read().decode()
    assert seen == f"local {standin.dags_folder / 'm7etl' / '__init__.py'}"
    # The CLI route reads the same database.
    stdout, _ = standin.run_cli("dags list-runs probe -o json")
    assert '"run_id": "r1", "state": "success"' in stdout
    with pytest.raises(ClientError) as again:
        mwaa.invoke_rest_api(Name=ENV, Method="POST", Path="/dags/probe/dagRuns",
                             Body={"dag_run_id": "r1", "logical_date": None})
    assert again.value.response["RestApiStatusCode"] == 409


def test_a_run_of_a_paused_dag_waits_queued_and_an_unknown_dag_is_404(
        standin, bucket, moto_endpoint):
    mwaa = client(standin)
    create(mwaa, bucket)
    upload_dag(moto_endpoint, bucket, paused=True, dag_id="paused")
    mwaa.invoke_rest_api(Name=ENV, Method="POST", Path="/dags/paused/dagRuns",
                         Body={"dag_run_id": "p1", "logical_date": None})
    time.sleep(3)  # several scheduler ticks
    assert wait_state(mwaa, "paused", "p1", timeout=0)["state"] == "queued"
    with pytest.raises(ClientError) as unknown:
        mwaa.invoke_rest_api(Name=ENV, Method="POST", Path="/dags/nothere/dagRuns",
                             Body={"dag_run_id": "x", "logical_date": None})
    assert (unknown.value.response["RestApiStatusCode"],
            unknown.value.response["RestApiResponse"]) == (
        404, {"detail": "DAG with dag_id: 'nothere' not found"})


def test_aws_default_is_in_the_database_without_its_secrets(standin, bucket):
    mwaa = client(standin)
    create(mwaa, bucket)
    found = mwaa.invoke_rest_api(Name=ENV, Method="GET", Path="/connections/aws_default")
    assert found["RestApiResponse"] == {
        "connection_id": "aws_default", "conn_type": "aws", "description": None, "host": None,
        "login": None, "schema": None, "port": None, "password": None, "extra": None}
