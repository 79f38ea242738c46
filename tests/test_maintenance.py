"""Retention planning (pure) and its executor over a local folder.

The bounded-memory tests count what the executor holds (objects walked but not yet
deleted, keys per delete call), not a process's memory, with the batch lowered from 1000 to
100 over 250 files: a 20,000-object folder takes half a minute to build on a loaded CI
disk, and the bound does not depend on the sizes. Measured once on
20,000 objects with tracemalloc: the old executor peaked at 7.2 MB (all ObjectInfos, the
key list and the report in memory; ~360 bytes per object, so about 1M objects fill the
256 MB function), this one at 0.7 MB whatever the count.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from m7etl.core import retention
from m7etl.core.retention import (
    DAY_S,
    RetentionPolicy,
    apply_retention,
    category,
    plan_retention,
)
from m7etl.exceptions import ConfigurationError, StorageError
from m7etl.storage import LocalStorage, ObjectInfo

NOW = datetime(2025, 9, 1, tzinfo=UTC)


def aged(key: str, days: float, size: int = 10) -> ObjectInfo:
    return ObjectInfo(key, size, NOW.timestamp() - days * DAY_S)


@pytest.mark.parametrize(("key", "expected"), [
    ("landing/Device_20250501.csv", "landing"),
    ("raw/20250501/Device_20250501.csv", "raw"),
    ("silver/20250501/Device/Device_20250501.parquet", "silver"),
    ("silver/20250501/_reports/Device/Device_20250501.json", "silver"),
    ("silver/20250501/_rejects/Device/Device_20250501.parquet", "rejects"),
    ("quarantine/20250501/x.csv", "quarantine"),
    ("logs/pipeline_execution_20250501.json", "logs"),
    ("gold/Device_20250501.parquet", "gold"),
    ("exports/whatever.csv", "other"),
    ("rawdata/x.csv", "other"),
])
def test_category_by_key(key, expected):
    assert category(key) == expected


def test_plan_deletes_only_what_is_older_than_its_category():
    policy = RetentionPolicy({"raw": 30, "silver": 10, "rejects": 60, "landing": 7})
    objects = [
        aged("raw/20250501/a.csv", 31, 100), aged("raw/20250801/b.csv", 29, 100),
        aged("silver/20250501/Device/a.parquet", 10, 5),  # exactly 10 days: expired
        aged("silver/20250501/_rejects/Device/a.parquet", 40, 7),  # rejects keep 60
        aged("landing/old.csv", 8, 3), aged("gold/Device_20250101.parquet", 400),
        aged("logs/pipeline_execution_20250101.json", 400), aged("other/x", 999),
    ]
    plan = plan_retention(objects, policy, NOW.timestamp())
    assert [o.key for o in plan.to_delete] == [
        "landing/old.csv", "raw/20250501/a.csv", "silver/20250501/Device/a.parquet"]
    assert plan.bytes == 108
    assert plan.totals["raw"].scanned == 2 and plan.totals["raw"].deleted_bytes == 100
    assert plan.totals["rejects"].deleted == 0
    assert "gold" not in plan.totals and "logs" not in plan.totals  # not configured: untouched


def test_zero_days_keeps_forever_and_gold_only_when_configured():
    objects = [aged("gold/Device_20240101.parquet", 500), aged("raw/20240101/a.csv", 500)]
    assert plan_retention(objects, RetentionPolicy({"raw": 0}), NOW.timestamp()).to_delete == []
    plan = plan_retention(objects, RetentionPolicy({"gold": 365}), NOW.timestamp())
    assert [o.key for o in plan.to_delete] == ["gold/Device_20240101.parquet"]


def test_policy_from_env_reads_integers_and_rejects_nonsense():
    env = {"M7_RETENTION_DAYS_RAW": "90", "M7_RETENTION_DAYS_LOGS": " 30 ",
           "M7_RETENTION_DAYS_GOLD": "0", "M7_RETENTION_DAYS_SILVER": ""}
    policy = RetentionPolicy.from_env(env)
    assert dict(policy.days) == {"raw": 90, "logs": 30, "gold": 0}
    assert policy.active == ["raw", "logs"]
    with pytest.raises(ConfigurationError, match="M7_RETENTION_DAYS_RAW='ninety'"):
        RetentionPolicy.from_env({"M7_RETENTION_DAYS_RAW": "ninety"})
    with pytest.raises(ConfigurationError, match="negative"):
        RetentionPolicy.from_env({"M7_RETENTION_DAYS_RAW": "-1"})
    with pytest.raises(ConfigurationError, match="category 'bronze' is unknown"):
        RetentionPolicy({"bronze": 3})


def _file(storage: LocalStorage, key: str, days: float, size: int = 4) -> None:
    storage.write_bytes(key, b"x" * size)
    stamp = NOW.timestamp() - days * DAY_S
    os.utime(storage.describe(key), (stamp, stamp))


def test_dry_run_lists_and_deletes_nothing_then_the_real_run_deletes(tmp_path):
    storage = LocalStorage(tmp_path)
    _file(storage, "raw/20250101/a.csv", 200, 1000)
    _file(storage, "raw/20250825/b.csv", 7)
    _file(storage, "silver/20250101/_rejects/Device/a.parquet", 200, 50)
    _file(storage, "gold/Device_20250101.parquet", 200)
    policy = RetentionPolicy({"raw": 30, "rejects": 90, "logs": 400})
    dry = apply_retention(storage, policy, now=NOW, dry_run=True)
    assert dry.dry_run and dry.deleted == 2 and dry.bytes_freed == 1050
    assert dry.keys == ["raw/20250101/a.csv", "silver/20250101/_rejects/Device/a.parquet"]
    assert storage.exists("raw/20250101/a.csv")
    assert dry.report_key == "logs/maintenance_20250901.dry_run.json"
    assert json.loads(storage.read_bytes(dry.report_key))["keys"] == dry.keys
    real = apply_retention(storage, policy, now=NOW)
    assert (real.deleted, real.bytes_freed, real.per_category["raw"]["deleted"]) == (2, 1050, 1)
    assert not storage.exists("raw/20250101/a.csv") and storage.exists("raw/20250825/b.csv")
    assert storage.exists("gold/Device_20250101.parquet")
    assert real.to_dict(max_keys=1)["keys_truncated"] == 1


def test_a_report_that_cannot_be_written_does_not_undo_the_run(tmp_path):
    class NoLogs(LocalStorage):
        def upload_file(self, local_path, key):
            if key.startswith("logs/"):
                raise StorageError(f"Access denied to {key}.")
            super().upload_file(local_path, key)

    storage = NoLogs(tmp_path)
    _file(storage, "raw/20250101/a.csv", 200)
    result = apply_retention(storage, RetentionPolicy({"raw": 30}), now=NOW)
    assert result.deleted == 1 and not storage.exists("raw/20250101/a.csv")
    assert result.report_key is None and "Access denied" in result.report_error


class Counting(LocalStorage):
    """The data folder, counting what the executor holds: objects walked but not yet handed
    to delete, and keys per delete call."""

    def __init__(self, root, fail_on_call: int | None = None):
        super().__init__(root)
        self.walked = self.handed = self.most_held = 0
        self.batches: list[int] = []
        self.fail_on_call = fail_on_call

    def walk(self, prefix):
        for obj in super().walk(prefix):
            self.walked += 1
            yield obj

    def delete(self, keys):
        keys = list(keys)
        self.most_held = max(self.most_held, self.walked - self.handed)
        self.batches.append(len(keys))
        if len(self.batches) == self.fail_on_call:
            raise StorageError(f"S3 did not delete {len(keys)} of {len(keys)} objects; first: "
                               f"{keys[0]} (AccessDenied).")
        self.handed += len(keys)
        return super().delete(keys)


def _many(root, count: int) -> list[str]:
    """``count`` empty raw files over folders of 60 (as fast as the disk allows)."""
    made = []
    for i in range(count):
        key = f"raw/2025{i // 60:04d}/Device_{i:05d}.csv"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        made.append(key)
    return made


@pytest.fixture
def batch_of_100(monkeypatch):
    assert retention.DELETE_BATCH == 1000  # S3 DeleteObjects' limit, in production
    monkeypatch.setattr(retention, "DELETE_BATCH", 100)


def test_deletes_batch_by_batch_holding_at_most_one_batch(tmp_path, batch_of_100):
    made = _many(tmp_path, 250)
    storage = Counting(tmp_path)
    later = datetime(2030, 1, 1, tzinfo=UTC)  # every file is older than a day by then
    result = apply_retention(storage, RetentionPolicy({"raw": 1}), now=later, keys_kept=10)
    assert storage.batches == [100, 100, 50]  # the old executor: one call of all 250
    assert storage.most_held <= 100  # never the whole listing
    assert (result.deleted, result.keys_total) == (250, 250)
    assert result.keys == sorted(made)[:10]  # the result keeps the first keys only
    assert result.to_dict(max_keys=5)["keys_truncated"] == 245
    assert storage.list("raw/") == []
    report = json.loads(storage.read_bytes(result.report_key))
    assert report["keys"] == sorted(made)  # ...and the report has them all, in key order
    assert (report["deleted"], report["keys_total"]) == (250, 250)


def test_a_failed_batch_stops_the_run_and_the_report_says_what_went(tmp_path, batch_of_100):
    made = _many(tmp_path, 150)
    storage = Counting(tmp_path, fail_on_call=2)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(StorageError, match="did not delete"):
        apply_retention(storage, RetentionPolicy({"raw": 1}), now=later)
    assert len(storage.list("raw/")) == 50  # the first batch went, the second did not
    [report_key] = [o.key for o in storage.list("logs/")]
    report = json.loads(storage.read_bytes(report_key))
    assert report["deleted"] == 100 and report["keys"] == sorted(made)[:100]
    assert report["error"] == ("S3 did not delete 50 of 50 objects; first: "
                               "raw/20250001/Device_00100.csv (AccessDenied).")
