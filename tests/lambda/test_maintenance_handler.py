"""The maintenance handler against a moto S3 server.

moto stamps each object with the time of its PUT and S3 has no call to change
LastModified, so the real-run test ages the objects in moto's own backend (the server runs
in this process). Dry runs move the clock with ``now`` instead, the only place it is taken.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import maintenance
import pytest
from lambda_testkit import BUCKET, emf_records, keys, load_event, put

from m7etl.orchestration.payloads import EventError

OBJECTS = ["landing/stale.csv", "raw/20250501/Device_20250501.csv",
           "silver/20250501/Device/Device_20250501.parquet",
           "silver/20250501/_rejects/Device/Device_20250501.parquet",
           "quarantine/20250501/x.csv", "logs/pipeline_execution_20250501.json",
           "gold/Device_20250501.parquet", "exports/keep.csv"]


@pytest.fixture
def bucket(s3, monkeypatch):
    for key in OBJECTS:
        put(s3, key, b"0123456789")
    for name, days in {"LANDING": "7", "RAW": "90", "SILVER": "30", "REJECTS": "30",
                       "QUARANTINE": "30", "LOGS": "365", "GOLD": "0"}.items():
        monkeypatch.setenv(f"M7_RETENTION_DAYS_{name}", days)
    return s3


def later(days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def test_dry_run_lists_what_would_go(bucket, context):
    when = later(400)
    out = maintenance.handler({"dry_run": True, "now": when.date().isoformat()}, context)
    assert out["dry_run"] is True and out["deleted"] == 6 and out["bytes_freed"] == 60
    assert "gold/Device_20250501.parquet" not in out["keys"]
    assert set(keys(bucket)) == {*OBJECTS, out["report_key"]}
    assert out["report_key"] == f"logs/maintenance_{when:%Y%m%d}.dry_run.json"


def age(days: int) -> None:
    """Move every object of the data bucket ``days`` into the past, in moto's backend."""
    from moto.s3.models import s3_backends

    partition, account = s3_backends.bucket_accounts[BUCKET]
    for key in s3_backends[account][partition].buckets[BUCKET].keys.values():
        key.last_modified -= timedelta(days=days)


def test_real_run_deletes_per_policy_and_reports(bucket, context, capsys):
    age(200)
    out = maintenance.handler({}, context)
    # 200 days old: every configured prefix except logs (365 days) and gold (0 = keep)
    assert out["deleted"] == 5 and out["bytes_freed"] == 50
    today = datetime.now(UTC)
    assert keys(bucket) == sorted(["logs/pipeline_execution_20250501.json",
                                   "gold/Device_20250501.parquet", "exports/keep.csv",
                                   f"logs/maintenance_{today:%Y%m%d}.json"])
    assert out["per_category"]["raw"] == {"scanned": 1, "scanned_bytes": 10, "deleted": 1,
                                          "deleted_bytes": 10}
    (emf,) = emf_records(capsys.readouterr().out)
    assert (emf["ObjectsDeleted"], emf["BytesFreed"]) == (5.0, 50.0)


def test_scheduled_event_runs_for_real_now(bucket, context):
    out = maintenance.handler(load_event("maintenance_scheduled.json"), context)
    assert out["dry_run"] is False and out["deleted"] == 0  # everything is fresh
    age(100)
    out = maintenance.handler(load_event("maintenance_scheduled.json"), context)
    assert out["deleted"] == 5  # the schedule deletes by the real clock


@pytest.mark.parametrize("event", [{"now": "2030-01-01"},
                                   {"now": "2030-01-01", "dry_run": False}])
def test_now_without_dry_run_is_refused_and_deletes_nothing(bucket, context, event):
    # The old handler took it: any invoker could delete raw/ and silver/ years early.
    with pytest.raises(EventError) as info:
        maintenance.handler(event, context)
    assert info.value.field == "now"
    assert 'accepted only with "dry_run": true' in info.value.message
    assert keys(bucket) == sorted(OBJECTS)


def test_recorded_payload(bucket, context):
    assert maintenance.handler(load_event("maintenance.json"), context)["dry_run"] is True


@pytest.mark.parametrize(("event", "field"), [
    ({"dry_run": "yes"}, "dry_run"), ({"now": "next tuesday"}, "now"),
    ({"dryrun": True}, "dryrun"),
])
def test_malformed_payload_names_the_field(lambda_env, context, event, field):
    with pytest.raises(EventError) as info:
        maintenance.handler(event, context)
    assert info.value.field == field
