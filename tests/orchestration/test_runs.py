"""The DAG runs asked for by filed files: run id, conf, grouping per day."""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from m7etl.core.ingest import ALREADY, IGNORED, INGESTED, QUARANTINED, IngestResult
from m7etl.orchestration.runs import dag_run_id, files_per_day, run_conf, run_requests

BUCKET = "m7-etl-data-solocco-test"


class Up(NamedTuple):
    key: str
    sequencer: str


A = Up("landing/Device_20250501.csv", "0062E9A8B2C1D3E401")
B = Up("landing/EPG_20250501.csv.gz", "0062E9A8B2C1D3E402")


def test_run_id_is_the_documented_digest():
    text = (f"{BUCKET}/landing/Device_20250501.csv@0062E9A8B2C1D3E401\n"
            f"{BUCKET}/landing/EPG_20250501.csv.gz@0062E9A8B2C1D3E402")
    expected = "s3_20250501_" + hashlib.sha256(text.encode()).hexdigest()[:16]
    assert dag_run_id("20250501", BUCKET, [A, B]) == expected
    assert re.fullmatch(r"s3_20250501_[0-9a-f]{16}", expected)


def test_run_id_is_stable_for_the_same_records_in_any_order():
    assert dag_run_id("20250501", BUCKET, [A, B]) == dag_run_id("20250501", BUCKET, (B, A))


def test_run_id_changes_with_a_new_sequencer_bucket_or_day():
    first = dag_run_id("20250501", BUCKET, [A])
    assert dag_run_id("20250501", BUCKET, [A._replace(sequencer="0062E9A8B2C1D3E4FF")]) != first
    assert dag_run_id("20250501", "other-bucket", [A]) != first
    assert dag_run_id("20250502", BUCKET, [A]).startswith("s3_20250502_")
    assert dag_run_id("20250501", BUCKET, [A, B]) != first


def test_conf_shape():
    conf = run_conf("20250501", ["raw/20250501/b.csv", "raw/20250501/a.csv"])
    assert conf == {"date": "20250501", "raw_keys": ["raw/20250501/a.csv", "raw/20250501/b.csv"],
                    "trigger": "s3_event"}
    assert list(conf) == ["date", "raw_keys", "trigger"]
    assert run_conf("20250501", [], trigger="manual")["trigger"] == "manual"


def _filed():
    c = Up("landing/Device_20250502.csv", "03")
    odd = Up("landing/Mystery_20250502.csv", "04")
    ours = Up("raw/20250501/Device_20250501.csv", "05")
    return [
        (A, IngestResult(A.key, INGESTED, "raw/20250501/Device_20250501.csv", "Device", "20250501")),
        (c, IngestResult(c.key, INGESTED, "raw/20250502/Device_20250502.csv", "Device", "20250502")),
        (B, IngestResult(B.key, ALREADY, "raw/20250501/EPG_20250501.csv.gz", "EPG", "20250501")),
        (odd, IngestResult(odd.key, QUARANTINED, "quarantine/20250502/Mystery_20250502.csv",
                           None, "20250502", "unknown_dataset: ...")),
        (ours, IngestResult(ours.key, IGNORED, reason="not directly under landing/")),
    ]


def test_files_are_grouped_per_day_and_only_when_under_raw():
    groups = files_per_day(_filed())
    assert sorted(groups) == ["20250501", "20250502"]
    assert [u.key for u, _ in groups["20250501"]] == [A.key, B.key]  # moved now or earlier
    assert [u.key for u, _ in groups["20250502"]] == ["landing/Device_20250502.csv"]
    assert files_per_day([]) == {}


def test_one_run_per_day_in_day_order_with_its_own_files():
    runs = run_requests(BUCKET, reversed(_filed()))
    assert [r.day for r in runs] == ["20250501", "20250502"]
    assert runs[0].conf == {"date": "20250501", "trigger": "s3_event",
                            "raw_keys": ["raw/20250501/Device_20250501.csv",
                                         "raw/20250501/EPG_20250501.csv.gz"]}
    assert runs[1].conf["raw_keys"] == ["raw/20250502/Device_20250502.csv"]
    # a day's run id depends on that day's uploads only
    alone = run_requests(BUCKET, [f for f in _filed() if f[1].date == "20250501"])
    assert [r.dag_run_id for r in alone] == [runs[0].dag_run_id]
    assert runs[0].dag_run_id != runs[1].dag_run_id


def test_nothing_filed_asks_for_nothing():
    assert run_requests(BUCKET, [_filed()[-1], _filed()[-2]]) == []
