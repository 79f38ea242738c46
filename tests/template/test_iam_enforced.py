"""Each function's storage work, run as an IAM user holding exactly its role's policies.

The policies are read from the template (``cfn_resolve``: cfn-lint's YAML loader, the
intrinsics resolved for this account, bucket and environment) and put on one IAM user per
role in a moto server with IAM enforced (``/moto-api/reset-auth``, the server's
``INITIAL_NO_AUTH_ACTION_COUNT``). The real handlers and the real Glue job then run with
that user's keys, so an S3 or Secrets Manager action the template does not grant is
AccessDenied here as it would be in AWS.

The stand-in's limits, and what ``moto_iam`` adds so that moto authorizes like AWS
(DeleteObjects per key, CopyObject's source and tags, ``s3:prefix`` conditions, 403 for a
missing key without ``s3:ListBucket``, the secret's ARN), are listed in ``moto_iam``'s
docstring. Not checked here: logs, SQS, KMS and airflow grants (moto enforces no KMS
decryption of the secret or of objects; the MWAA stand-in checks no IAM).

``M7_IAM_TEMPLATE=<path>`` runs the same tests against another version of the template.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from cfn_resolve import ACCOUNT, ROOT, TEMPLATE_PATH, DeployedResolver, load_template, role_policies
from moto_iam import aws_like_authorization

from m7etl.exceptions import M7Error, ObjectNotFoundError, StorageError
from m7etl.storage import S3Storage

for extra in (ROOT / "lambda_src", ROOT / "tests" / "lambda"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from lambda_testkit import device_csv, load_event  # noqa: E402

ENV = "iamcheck"
BUCKET = f"m7-etl-data-solocco-{ENV}"
REGION = "eu-west-1"
DAY = "20250501"
ROLES = ("RawToSilverRole", "SilverToGoldRole", "S3EventRole", "MaintenanceRole", "GlueJobRole",
         "MwaaExecutionRole")
GOLD_RETENTION = "MaintenanceRole+gold"  # the maintenance role of a stack with RetentionDaysGold=30
TAGS = "source=partner-feed&contains=pii"


@dataclass
class Keys:
    access_key: str
    secret_key: str

    def client(self, service: str, endpoint: str):
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, aws_session_token=None)


@dataclass
class Stack:
    endpoint: str
    keys: dict[str, Keys]
    resolvers: dict[str, DeployedResolver]
    admin: object  # an S3 client allowed everything, to set up and inspect the bucket

    def storage(self, role: str) -> S3Storage:
        return S3Storage(BUCKET, client=self.keys[role].client("s3", self.endpoint))


def _set_auth_count(endpoint: str, count: str) -> str:
    """The server's INITIAL_NO_AUTH_ACTION_COUNT (requests left unauthenticated); the old one."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count.encode(),
                                     method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]


def _user(iam, name: str, policies: dict[str, dict]) -> Keys:
    iam.create_user(UserName=name)
    for policy_name, document in policies.items():
        iam.put_user_policy(UserName=name, PolicyName=policy_name,
                            PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def stack(moto_endpoint):
    """The bucket, the stack's secret and one user per role; then IAM enforced for the module."""
    path = Path(os.environ.get("M7_IAM_TEMPLATE") or TEMPLATE_PATH)
    template = load_template(path)
    with aws_like_authorization():
        root = {"region_name": REGION, "endpoint_url": moto_endpoint}
        boto3.client("s3", **root).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        secret_arn = boto3.client("secretsmanager", **root).create_secret(
            Name=f"m7-etl/snowflake-{ENV}", SecretString=json.dumps({"password": "pw-for-iam"}))["ARN"]
        physical = {"SnowflakeSecret": secret_arn}
        resolvers = {"default": DeployedResolver(template, physical, Environment=ENV),
                     "gold": DeployedResolver(template, physical, Environment=ENV,
                                              RetentionDaysGold="30")}
        iam = boto3.client("iam", **root)
        run = uuid.uuid4().hex[:6]
        keys = {role: _user(iam, f"{role}-{run}", role_policies(resolvers["default"], role))
                for role in ROLES}
        keys[GOLD_RETENTION] = _user(iam, f"maintenance-gold-{run}",
                                     role_policies(resolvers["gold"], "MaintenanceRole"))
        admin = _user(iam, f"admin-{run}", {"all": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}})
        previous = _set_auth_count(moto_endpoint, "0")  # from now on, every request is checked
        try:
            yield Stack(moto_endpoint, keys, resolvers, admin.client("s3", moto_endpoint))
        finally:
            _set_auth_count(moto_endpoint, previous)  # the server is the session's: as it was


@pytest.fixture
def bucket(stack):
    """The data bucket, emptied."""
    listed = stack.admin.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    if listed:
        stack.admin.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": o["Key"]}
                                                                       for o in listed]})
    return stack.admin


@dataclass
class Context:
    function_name: str = "m7-etl-iam-check"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:m7-etl-iam-check"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/m7-etl-iam-check"
    log_stream_name: str = "2025/05/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def run_as(stack, monkeypatch):
    """Call a handler the way Lambda would, with a role's keys and its function's environment."""
    from m7etl.orchestration import clients

    def call(role: str, function: str, handler, event: dict, *, resolver: str = "default",
             **environment: str):
        variables = stack.resolvers[resolver].resource(function)["Environment"]["Variables"]
        keys = stack.keys[GOLD_RETENTION if resolver == "gold" else role]
        for name, value in {**variables, **environment, "AWS_ACCESS_KEY_ID": keys.access_key,
                            "AWS_SECRET_ACCESS_KEY": keys.secret_key,
                            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                            "AWS_ENDPOINT_URL_S3": stack.endpoint}.items():
            monkeypatch.setenv(name, str(value))
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        clients.reset()
        try:
            return handler(event, Context(aws_request_id=str(uuid.uuid4())))
        finally:
            clients.reset()

    return call


def put(s3, key: str, body: bytes, tags: str | None = None) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, **({"Tagging": tags} if tags else {}))


def keys(s3, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
                  .get("Contents", []))


def tags_of(s3, key: str) -> str:
    tag_set = s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    return "&".join(f"{t['Key']}={t['Value']}" for t in tag_set)


def admin_storage(stack) -> S3Storage:
    return S3Storage(BUCKET, client=stack.admin)


def silver_of_day(stack, registry, *, rows: int = 20, bad: int = 0) -> None:
    """The day's Device silver (and rejects), made with the admin's rights."""
    from m7etl.core.raw_to_silver import Thresholds, process_raw_file

    put(stack.admin, f"raw/{DAY}/Device_{DAY}.csv", device_csv(rows=rows, bad=bad))
    process_raw_file(admin_storage(stack), f"raw/{DAY}/Device_{DAY}.csv", registry,
                     Thresholds(error_pct=50.0))


SILVER = f"silver/{DAY}/Device/Device_{DAY}.parquet"
REJECTS = f"silver/{DAY}/_rejects/Device/Device_{DAY}.parquet"
REPORT = f"silver/{DAY}/_reports/Device/Device_{DAY}.json"


# =============================================================================================
# raw_to_silver
# =============================================================================================
def test_enforcement_is_on(stack, bucket):
    """The baseline the other tests rely on: a grant the role lacks is refused."""
    put(bucket, "gold/Device_20250501.parquet", b"x")
    with pytest.raises(StorageError, match="Access denied"):
        stack.storage("S3EventRole").read_bytes("gold/Device_20250501.parquet")


def test_raw_to_silver_valid_file(run_as, bucket):
    import raw_to_silver

    put(bucket, f"raw/{DAY}/Device_{DAY}.csv", device_csv(rows=20))
    out = run_as("RawToSilverRole", "RawToSilverFunction", raw_to_silver.handler,
                 {"key": f"raw/{DAY}/Device_{DAY}.csv"})
    assert (out["status"], out["rows_valid"]) == ("ok", 20)
    assert keys(bucket, "silver/") == sorted([SILVER, REPORT])


def test_raw_to_silver_quarantines_a_tagged_file_with_its_tags(run_as, bucket):
    """The move copies the object's tags (CopyObject's default directive): that needs
    s3:GetObjectTagging on raw/ and s3:PutObjectTagging on quarantine/."""
    import raw_to_silver

    put(bucket, f"raw/{DAY}/Mystery_{DAY}.csv", b"a,b\n1,2\n", tags=TAGS)
    out = run_as("RawToSilverRole", "RawToSilverFunction", raw_to_silver.handler,
                 {"key": f"raw/{DAY}/Mystery_{DAY}.csv"})
    assert out["status"] == "quarantined"
    assert keys(bucket, "raw/") == []
    assert keys(bucket, "quarantine/") == [f"quarantine/{DAY}/Mystery_{DAY}.csv",
                                           f"quarantine/{DAY}/Mystery_{DAY}.csv.reason.json"]
    assert tags_of(bucket, f"quarantine/{DAY}/Mystery_{DAY}.csv") == TAGS


def test_raw_to_silver_finds_a_gone_file_in_quarantine_or_nowhere(run_as, bucket):
    """A retried invocation whose first attempt moved the file (its note not written), then a
    key that is nowhere: raw/ and quarantine/ are asked for keys that are gone, which answer
    404 (not 403) only with ListBucket on those prefixes."""
    import raw_to_silver

    put(bucket, f"quarantine/{DAY}/Mystery_{DAY}.csv", b"a,b\n1,2\n")
    out = run_as("RawToSilverRole", "RawToSilverFunction", raw_to_silver.handler,
                 {"key": f"raw/{DAY}/Mystery_{DAY}.csv"})
    assert out["status"] == "quarantined" and "already quarantined" in out["reason"]
    with pytest.raises(ObjectNotFoundError, match="does not exist, nor is it in quarantine"):
        run_as("RawToSilverRole", "RawToSilverFunction", raw_to_silver.handler,
               {"key": f"raw/{DAY}/Device_{DAY}.csv"})


def test_raw_to_silver_replay_quarantined_withdraws_stale_silver_and_rejects(
        stack, run_as, bucket, registry):
    import raw_to_silver

    silver_of_day(stack, registry, rows=18, bad=2)
    assert {SILVER, REJECTS} <= set(keys(bucket, "silver/"))
    put(bucket, f"raw/{DAY}/Device_{DAY}.csv", device_csv(rows=0))  # the replay: header only
    out = run_as("RawToSilverRole", "RawToSilverFunction", raw_to_silver.handler,
                 {"key": f"raw/{DAY}/Device_{DAY}.csv"})
    assert out["status"] == "quarantined" and out["reason"].startswith("header_only")
    assert not {SILVER, REJECTS} & set(keys(bucket, "silver/"))
    assert keys(bucket, "quarantine/") == [f"quarantine/{DAY}/Device_{DAY}.csv",
                                           f"quarantine/{DAY}/Device_{DAY}.csv.reason.json"]


def test_raw_to_silver_replay_failing_the_gate_withdraws_stale_silver(
        stack, run_as, bucket, registry):
    import raw_to_silver

    silver_of_day(stack, registry)
    put(bucket, f"raw/{DAY}/Device_{DAY}.csv", device_csv(rows=5, bad=5))
    out = run_as("RawToSilverRole", "RawToSilverFunction", raw_to_silver.handler,
                 {"key": f"raw/{DAY}/Device_{DAY}.csv"})
    assert out["status"] == "failed_threshold"
    assert keys(bucket, "silver/") == sorted([REJECTS, REPORT])
    assert keys(bucket, "raw/") == [f"raw/{DAY}/Device_{DAY}.csv"]  # kept for the next replay


def test_raw_to_silver_clean_replay_withdraws_stale_rejects(stack, run_as, bucket, registry):
    import raw_to_silver

    silver_of_day(stack, registry, rows=18, bad=2)
    put(bucket, f"raw/{DAY}/Device_{DAY}.csv", device_csv(rows=20))
    out = run_as("RawToSilverRole", "RawToSilverFunction", raw_to_silver.handler,
                 {"key": f"raw/{DAY}/Device_{DAY}.csv"})
    assert (out["status"], out["rows_rejected"]) == ("ok", 0)
    assert keys(bucket, "silver/") == sorted([SILVER, REPORT])


# =============================================================================================
# silver_to_gold
# =============================================================================================
def test_silver_to_gold_builds_gold_then_removes_it_when_silver_is_gone(
        stack, run_as, bucket, registry):
    import silver_to_gold

    silver_of_day(stack, registry)
    event = {"dataset": "Device", "date": DAY}
    out = run_as("SilverToGoldRole", "SilverToGoldFunction", silver_to_gold.handler, event)
    assert (out["status"], out["gold_key"], out["rows_out"]) == ("ok", f"gold/Device_{DAY}.parquet",
                                                                 20)
    assert keys(bucket, "gold/") == [f"gold/Device_{DAY}.parquet"]
    bucket.delete_object(Bucket=BUCKET, Key=SILVER)  # the day's only file was withdrawn
    out = run_as("SilverToGoldRole", "SilverToGoldFunction", silver_to_gold.handler, event)
    assert out["status"] == "no_input"
    assert keys(bucket, "gold/") == []  # the stale gold file is gone
    # Again: now the gold file is missing too (its HEAD answers 404 only with ListBucket on gold/).
    out = run_as("SilverToGoldRole", "SilverToGoldFunction", silver_to_gold.handler, event)
    assert out["status"] == "no_input" and keys(bucket, "gold/") == []


# =============================================================================================
# maintenance
# =============================================================================================
def _aged_bucket(s3) -> list[str]:
    """One object in each prefix, 400 days old. A real run deletes by the real clock (the
    handler takes ``now`` only for a dry run) and moto stamps objects with the time they are
    written: their date is moved back in moto's own store."""
    from moto.s3.models import s3_backends

    every = ["landing/Device_20250101.csv", f"raw/{DAY}/Device_{DAY}.csv", SILVER, REJECTS,
             REPORT, f"quarantine/{DAY}/Mystery_{DAY}.csv", "logs/pipeline_execution_20250501.json",
             f"gold/Device_{DAY}.parquet"]
    backend = s3_backends[ACCOUNT]["aws"]
    for key in every:
        put(s3, key, b"old")
        backend.get_object(BUCKET, key).last_modified -= timedelta(days=400)
    return every


def test_maintenance_deletes_every_expired_prefix_and_keeps_gold(run_as, bucket):
    import maintenance

    every = _aged_bucket(bucket)
    out = run_as("MaintenanceRole", "MaintenanceFunction", maintenance.handler, {})
    assert out["deleted"] == len(every) - 1 and not out.get("error") and not out["report_error"]
    assert keys(bucket) == [f"gold/Device_{DAY}.parquet", out["report_key"]]


def test_maintenance_deletes_gold_only_when_the_stack_sets_its_retention(run_as, bucket):
    import maintenance

    _aged_bucket(bucket)
    try:  # gold retention asked of a stack that keeps gold forever: refused
        out = run_as("MaintenanceRole", "MaintenanceFunction", maintenance.handler, {},
                     M7_RETENTION_DAYS_GOLD="30")
    except M7Error as exc:
        assert "denied" in str(exc).lower()
    else:
        assert "denied" in str(out.get("error")).lower()
    assert f"gold/Device_{DAY}.parquet" in keys(bucket, "gold/")
    out = run_as("MaintenanceRole", "MaintenanceFunction", maintenance.handler, {},
                 resolver="gold")
    assert keys(bucket, "gold/") == [] and not out.get("error") and not out["report_error"]


# =============================================================================================
# the S3-event function
# =============================================================================================
@pytest.fixture
def mwaa():
    from m7etl.local.standins.mwaa import MwaaStandin

    server = MwaaStandin(env_name=f"m7-etl-mwaa-{ENV}").start()
    yield server
    server.stop()


def _created(*names: str) -> dict:
    (record,) = load_event("s3_put_single.json")["Records"]
    records = []
    for i, name in enumerate(names):
        one = json.loads(json.dumps(record))
        one["s3"]["bucket"]["name"] = BUCKET
        one["s3"]["object"]["key"] = name.replace(" ", "+")
        one["s3"]["object"]["sequencer"] = f"00{i:016d}"
        records.append(one)
    return {"Records": records}


def test_s3_event_files_tagged_objects_and_a_retry_finds_them_filed(run_as, bucket, mwaa,
                                                                    monkeypatch):
    import s3_event

    monkeypatch.setenv("AWS_ENDPOINT_URL_MWAA", mwaa.endpoint)
    monkeypatch.setenv("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
    put(bucket, f"landing/Device_{DAY}.csv", device_csv(rows=3), tags=TAGS)
    put(bucket, f"landing/Mystery_{DAY}.csv", b"a,b\n1,2\n", tags=TAGS)
    event = _created(f"landing/Device_{DAY}.csv", f"landing/Mystery_{DAY}.csv")
    out = run_as("S3EventRole", "S3EventLambdaFunction", s3_event.handler, event)
    assert [r["status"] for r in out["records"]] == ["raw", "quarantined"]
    assert keys(bucket, "landing/") == []
    assert tags_of(bucket, f"raw/{DAY}/Device_{DAY}.csv") == TAGS
    assert tags_of(bucket, f"quarantine/{DAY}/Mystery_{DAY}.csv") == TAGS
    assert [t["status"] for t in out["triggers"]] == ["triggered"]
    again = run_as("S3EventRole", "S3EventLambdaFunction", s3_event.handler, event)
    assert [r["status"] for r in again["records"]] == ["already_ingested"] * 2


def test_s3_event_reports_a_gone_object_as_missing_not_denied(run_as, bucket, mwaa, monkeypatch):
    """Neither in landing/ nor filed: each key is looked up where it would have gone (raw/,
    quarantine/), and a missing key answers 404 only with ListBucket on that prefix."""
    import s3_event

    monkeypatch.setenv("AWS_ENDPOINT_URL_MWAA", mwaa.endpoint)
    event = _created(f"landing/Device_{DAY}.csv", f"landing/Mystery_{DAY}.csv")
    out = run_as("S3EventRole", "S3EventLambdaFunction", s3_event.handler, event)
    assert [r["status"] for r in out["records"]] == ["missing", "missing"]
    assert all("does not exist" in r["reason"] for r in out["records"])


# =============================================================================================
# the Glue job
# =============================================================================================
def test_glue_job_reads_gold_and_the_secret(stack, bucket, registry, tmp_path, monkeypatch):
    """The real job entry point, with the template's DefaultArguments and the job role's keys:
    Device has a gold file; Channel has neither gold nor silver (the job looks for both)."""
    import fakesnow
    import snowflake.connector

    from m7etl.core.silver_to_gold import process_gold
    from m7etl.warehouse.job import main

    silver_of_day(stack, registry)
    process_gold(admin_storage(stack), registry["Device"], DAY)
    args = stack.resolvers["default"].resource("GoldToSnowflakeJob")["DefaultArguments"]
    argv = ["gold_to_snowflake.py"] + [f"{k}={v}" for k, v in args.items() if k.startswith("--")
                                       and not k.startswith("--enable") and "-" not in k[2:]]
    # fakesnow cannot COPY from an s3:// stage: the job's write_pandas path reads the same file.
    argv += ["--snowflake_account=iam-check", "--snowflake_stage=none", f"--days={DAY}",
             "--datasets=Device,Channel"]
    keys_ = stack.keys["GlueJobRole"]
    for name, value in {"AWS_ACCESS_KEY_ID": keys_.access_key,
                        "AWS_SECRET_ACCESS_KEY": keys_.secret_key,
                        "AWS_ENDPOINT_URL": stack.endpoint, "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    (tmp_path / "snow").mkdir()
    with fakesnow.patch(db_path=str(tmp_path / "snow")):
        assert main(argv) == 0
        conn = snowflake.connector.connect(database=args["--snowflake_database"],
                                           schema=args["--snowflake_schema"])
        assert conn.cursor().execute("SELECT COUNT(*) FROM DEVICE").fetchone()[0] == 20
        conn.close()
    other = stack.keys["S3EventRole"].client("secretsmanager", stack.endpoint)
    with pytest.raises(other.exceptions.ClientError, match="AccessDenied"):
        other.get_secret_value(SecretId=args["--snowflake_secret_id"])


# =============================================================================================
# the DAG (MWAA's execution role)
# =============================================================================================
def test_dag_plans_from_raw_and_reports_and_writes_the_execution_log(stack, bucket, registry):
    """The DAG's own S3 work (dags/m7_etl_pipeline.py): ``plan`` lists raw/ and the reports;
    ``write_execution_log`` reads a report, looks for the day's log, writes it."""
    from m7etl.core import layout
    from m7etl.core.execution_log import read_execution_log, write_execution_log
    from m7etl.orchestration import plan as planning

    silver_of_day(stack, registry)  # Device: processed, its report written
    put(bucket, f"raw/{DAY}/EPG_{DAY}.csv", b"programme_id\n")  # not processed yet
    storage = stack.storage("MwaaExecutionRole")
    found = planning.plan_files(planning.parse_conf(None), DAY, 1, storage.list)  # a daily run
    assert found.keys == [f"raw/{DAY}/EPG_{DAY}.csv"]
    assert json.loads(storage.read_bytes(REPORT))["dataset"] == "Device"
    assert read_execution_log(storage, DAY) is None  # a missing log: 404, not AccessDenied
    key = write_execution_log(storage, {"day": DAY, "files": []})
    assert key == layout.log_key(DAY) and read_execution_log(storage, DAY)["day"] == DAY
