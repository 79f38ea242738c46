"""The Glue job: arguments, configuration, and whole runs (moto S3 + Secrets Manager, fakesnow).

Not checked by the stand-ins: fakesnow ignores the login (account, user, role, password
are never verified), has no roles or grants, ignores Parquet logical types and never
reads an ``s3://`` stage or a storage integration; moto does not enforce the job role's IAM
policy or the secret's KMS key.
"""

from __future__ import annotations

import logging
import runpy
import sys
import types
from pathlib import Path

import boto3
import pytest

from m7etl.exceptions import ConfigurationError, UsageError
from m7etl.warehouse import sql
from m7etl.warehouse.job import (
    ARGUMENTS,
    config_from_args,
    main,
    parse_args,
    run_job,
)
from m7etl.warehouse.loader import FAILED, LOADED, SKIPPED_NO_INPUT, LoadError
from warehouse.support import DAY1, DAY2, PASSWORD, SECRET_ID, STAGE, scalar

SCRIPT = Path(__file__).resolve().parents[2] / "glue_src" / "gold_to_snowflake.py"
BUCKET = "m7-etl-data-solocco-test"


def job_argv(**overrides: str) -> list[str]:
    values = {
        "environment": "test", "data_bucket": BUCKET, "snowflake_account": "org-acct",
        "snowflake_user": "M7_ETL_LOADER", "snowflake_role": "M7_ETL_LOADER",
        "snowflake_warehouse": "M7_ETL_WH", "snowflake_database": "M7_ETL",
        "snowflake_schema": "GOLD", "snowflake_stage": "", "snowflake_secret_id": SECRET_ID,
    }
    values.update(overrides)
    argv = ["gold_to_snowflake.py"]
    for name, value in values.items():
        argv += [f"--{name}", value]
    return argv


def test_argparse_ignores_glue_own_arguments():
    argv = [*job_argv(days="20250501,20250502"), "--job-bookmark-option",
            "job-bookmark-disable", "--scriptLocation", "s3://x/y.py"]
    args = parse_args(argv)
    assert args["days"] == "20250501,20250502"
    assert args["snowflake_user"] == "M7_ETL_LOADER"
    assert "snowflake_stage" not in args  # empty = absent


def test_get_resolved_options_is_used_on_glue(monkeypatch):
    asked = {}

    def get_resolved_options(argv, names):
        asked["names"] = list(names)
        return {n: "v" for n in names}

    utils = types.ModuleType("awsglue.utils")
    utils.getResolvedOptions = get_resolved_options
    monkeypatch.setitem(sys.modules, "awsglue", types.ModuleType("awsglue"))
    monkeypatch.setitem(sys.modules, "awsglue.utils", utils)
    args = parse_args([*job_argv(), "--JOB_RUN_ID", "jr_1"])
    # Only the names present are asked for (getResolvedOptions fails on an absent one).
    assert asked["names"] == [*ARGUMENTS, "JOB_RUN_ID"]
    assert args["JOB_RUN_ID"] == "v"


def test_config_defaults_to_today_and_fallback_path():
    config = config_from_args(parse_args(job_argv()), today="20250601")
    assert config.days == ("20250601",)
    assert config.datasets is None
    assert config.settings.stage == ""
    assert config.secret_id == SECRET_ID
    assert "password" not in repr(config).lower()


def test_config_reads_days_datasets_stage_and_run_id():
    argv = [*job_argv(days="20250501, 20250502,20250501", datasets="Device,EPG",
                      snowflake_stage="M7_ETL.GOLD.M7_GOLD_STAGE"), "--JOB_RUN_ID", "jr_42"]
    config = config_from_args(parse_args(argv))
    assert config.days == ("20250501", "20250502")
    assert config.datasets == ("Device", "EPG")
    assert config.settings.stage == "M7_ETL.GOLD.M7_GOLD_STAGE"
    assert config.run_id == "jr_42"


@pytest.mark.parametrize("value", ["none", "NONE", "-", " "])
def test_stage_placeholders_mean_no_stage(value):
    assert config_from_args(parse_args(job_argv(snowflake_stage=value))).settings.stage == ""


def test_missing_arguments_are_named():
    with pytest.raises(ConfigurationError, match="Missing job argument\\(s\\): --data_bucket, "
                                                 "--snowflake_secret_id"):
        config_from_args(parse_args(job_argv(data_bucket="", snowflake_secret_id="")))


def test_unconfigured_account_is_named():
    with pytest.raises(ConfigurationError, match="--snowflake_account is empty"):
        config_from_args(parse_args(job_argv(snowflake_account="")))


def test_bad_day_is_named():
    with pytest.raises(UsageError, match="--days: '2025-05-01' is not a date in YYYYMMDD"):
        config_from_args(parse_args(job_argv(days="2025-05-01")))


@pytest.fixture
def aws(secrets_client, data_dir):
    """moto (in process): the stack's secret, and the data bucket holding the gold files."""
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for path in sorted(data_dir.rglob("*.parquet")):
        s3.upload_file(str(path), BUCKET, path.relative_to(data_dir).as_posix())
    return s3


def test_glue_script_loads_from_s3_with_the_fallback(aws, fake_snowflake, monkeypatch, caplog,
                                                     capsys):
    """The real entry point: arguments -> secret (moto) -> fakesnow -> gold files from S3."""
    import snowflake.connector

    monkeypatch.setattr(sys, "argv", job_argv(days=f"{DAY1},{DAY2}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_info.value.code == 0
    conn = snowflake.connector.connect(database="M7_ETL", schema="GOLD")
    assert scalar(conn, "SELECT COUNT(*) FROM LOAD_AUDIT") == 6  # 4 on DAY1, 2 on DAY2
    assert scalar(conn, "SELECT COUNT(DISTINCT load_path) FROM LOAD_AUDIT") == 1
    assert scalar(conn, "SELECT MIN(source_object) FROM LOAD_AUDIT").startswith(
        f"s3://{BUCKET}/gold/")
    assert scalar(conn, "SELECT COUNT(*) FROM DEVICE") == 240
    conn.close()
    assert "gold_to_snowflake done: 6 load(s), 2 skipped (no input)" in caplog.text
    out = capsys.readouterr()
    for text in (caplog.text, out.out, out.err):
        assert PASSWORD not in text


def test_run_job_copy_path(secrets_client, fake_snowflake, source, data_dir, registry):
    import snowflake.connector

    from m7etl.local.warehouse import stage_url

    def connect(settings, password):
        assert password == PASSWORD
        conn = snowflake.connector.connect(database=settings.database, schema=settings.schema)
        conn.cursor().execute(sql.create_stage_sql(settings.stage, stage_url(data_dir)))
        return conn

    config = config_from_args(parse_args(job_argv(days=DAY1, snowflake_stage=STAGE)))
    first = run_job(config, connect=connect, storage=source, registry=registry)
    again = run_job(config, connect=connect, storage=source, registry=registry)
    assert [r.status for r in first] == [LOADED] * 4
    assert [(r.path, r.rows_loaded) for r in first] == [(r.path, r.rows_loaded) for r in again]
    assert {r.path for r in first} == {"copy"}


def test_failed_load_fails_the_job(secrets_client, fake_snowflake, source, data_dir, registry):
    (data_dir / "gold" / f"EPG_{DAY1}.parquet").unlink()
    config = config_from_args(parse_args(job_argv(days=DAY1)))
    with pytest.raises(LoadError, match="1 of 4 load\\(s\\) failed; first: EPG 20250501: Gold "
                                        "file .*EPG_20250501.parquet is missing"):
        run_job(config, storage=source, registry=registry)


def test_no_input_day_is_not_a_failure(secrets_client, fake_snowflake, source, registry):
    config = config_from_args(parse_args(job_argv(days=DAY2, datasets="EPG,Channel")))
    results = run_job(config, storage=source, registry=registry)
    assert [(r.dataset, r.status) for r in results] == [("Channel", SKIPPED_NO_INPUT),
                                                         ("EPG", SKIPPED_NO_INPUT)]
    assert FAILED not in {r.status for r in results}


def test_missing_secret_exits_non_zero_with_a_clear_message(secrets_client, caplog):
    with caplog.at_level(logging.INFO):
        code = main(job_argv(snowflake_secret_id="m7-etl/snowflake-nope"))
    assert code == 1
    assert ("gold_to_snowflake failed: Secret m7-etl/snowflake-nope does not exist (or has no "
            "current value).") in caplog.text
