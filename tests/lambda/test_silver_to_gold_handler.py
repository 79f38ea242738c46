"""The silver_to_gold handler against a moto S3."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import raw_to_silver
import silver_to_gold
from lambda_testkit import BUCKET, device_csv, emf_records, load_event, put

from m7etl.orchestration.payloads import EventError


def test_gold_is_rebuilt_from_the_days_silver(s3, context, capsys):
    put(s3, "raw/20250501/Device_20250501.csv", device_csv(rows=6))
    raw_to_silver.handler({"key": "raw/20250501/Device_20250501.csv"}, context)
    capsys.readouterr()
    out = silver_to_gold.handler(load_event("silver_to_gold.json"), context)
    assert out == {**out, "dataset": "Device", "date": "20250501", "status": "ok",
                   "gold_key": "gold/Device_20250501.parquet", "rows_in": 6, "rows_out": 6,
                   "silver_files": 1, "bucket": BUCKET}
    assert "silver_keys" not in out
    body = s3.get_object(Bucket=BUCKET, Key="gold/Device_20250501.parquet")["Body"].read()
    assert pq.read_table(pa.BufferReader(body)).num_rows == 6
    (emf,) = emf_records(capsys.readouterr().out)
    assert (emf["dataset"], emf["GoldRowsOut"]) == ("Device", 6.0)


def test_a_day_without_silver_reports_no_input(s3, context):
    out = silver_to_gold.handler({"dataset": "EPG", "date": "20250502"}, context)
    assert (out["status"], out["gold_key"], out["silver_files"]) == ("no_input", None, 0)


@pytest.mark.parametrize(("event", "field", "problem"), [
    ({"date": "20250501"}, "dataset", "is missing"),
    ({"dataset": "Devices", "date": "20250501"}, "dataset", "names no known dataset"),
    ({"dataset": "Device"}, "date", "is missing"),
    ({"dataset": "Device", "date": "2025-05-01"}, "date", "must be a YYYYMMDD date"),
    ({"dataset": "Device", "date": "20250231"}, "date", "not a real calendar date"),
    ({"dataset": "Device", "date": "20250501", "day": "x"}, "day", "is not a known field"),
])
def test_malformed_payload_names_the_field(lambda_env, context, event, field, problem):
    with pytest.raises(EventError) as info:
        silver_to_gold.handler(event, context)
    assert info.value.field == field and problem in str(info.value)


VIEWING = (b"session_id,device_id,channel_id,session_start,session_end,duration_s,view_hour,playback_mode\n"
           b"aaaaaaaaaaaaaaaa,STB000000001,5,2025-05-01 08:00:00,2025-05-01 08:10:00,600,8,live\n"
           b"bbbbbbbbbbbbbbbb,STB000000002,5,2025-05-01 08:00:00,2025-05-01 08:20:00,1200,8,live\n")


def test_a_day_sent_as_csv_and_csv_gz_counts_each_session_once(s3, context, capsys):
    for key in ("raw/20250501/Viewing_20250501.csv", "raw/20250501/Viewing_20250501.csv.gz"):
        put(s3, key, VIEWING, gz=key.endswith(".gz"))
        raw_to_silver.handler({"key": key}, context)
    capsys.readouterr()
    out = silver_to_gold.handler({"dataset": "Viewing", "date": "20250501"}, context)
    assert (out["rows_in"], out["rows_out"], out["rows_superseded"], out["silver_files"]) == (4, 1, 2, 2)
    body = s3.get_object(Bucket=BUCKET, Key="gold/Viewing_20250501.parquet")["Body"].read()
    (row,) = pq.read_table(pa.BufferReader(body)).to_pylist()
    assert (row["sessions"], row["viewers"], row["total_duration_s"]) == (2, 2, 1800)  # not 4 and 3600
    (emf,) = emf_records(capsys.readouterr().out)
    assert (emf["GoldRowsIn"], emf["GoldRowsSuperseded"]) == (4.0, 2.0)
