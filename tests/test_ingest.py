from __future__ import annotations

import json

from m7etl.core.ingest import ingest


def test_a_landed_file_moves_to_raw_under_the_day_in_its_name(storage, registry):
    storage.write_bytes("landing/Device_20250501.csv", b"data")
    result = ingest(storage, "landing/Device_20250501.csv", registry, arrival_day="20251125")
    assert (result.status, result.target_key, result.dataset, result.date) == (
        "raw", "raw/20250501/Device_20250501.csv", "Device", "20250501")
    assert storage.read_bytes("raw/20250501/Device_20250501.csv") == b"data"
    assert not storage.exists("landing/Device_20250501.csv")


def test_a_retried_event_is_idempotent(storage, registry):
    storage.write_bytes("landing/EPG_20250501.csv.gz", b"gz")
    first = ingest(storage, "landing/EPG_20250501.csv.gz", registry, "20251125")
    again = ingest(storage, "landing/EPG_20250501.csv.gz", registry, "20251125")
    assert first.status == "raw" and again.status == "already_ingested"
    assert again.target_key == first.target_key


def test_an_unknown_dataset_is_quarantined_with_a_reason(storage, registry):
    storage.write_bytes("landing/Billing 2025.csv", b"x")
    result = ingest(storage, "landing/Billing 2025.csv", registry, "20251125")
    assert result.status == "quarantined" and result.date == "20251125"
    assert storage.read_bytes("quarantine/20251125/Billing 2025.csv") == b"x"
    note = json.loads(storage.read_bytes("quarantine/20251125/Billing 2025.csv.reason.json"))
    assert note["reason"] == "unknown_dataset" and "Device" in note["message"]


def test_keys_outside_landing_and_other_files_are_ignored(storage, registry):
    storage.write_bytes("raw/20250501/Device_20250501.csv", b"x")
    storage.write_bytes("landing/readme.txt", b"x")
    assert ingest(storage, "raw/20250501/Device_20250501.csv", registry, "20251125").status == "ignored"
    assert ingest(storage, "landing/readme.txt", registry, "20251125").status == "ignored"
    assert ingest(storage, "landing/sub/Device_20250501.csv", registry, "20251125").status == "ignored"
    assert storage.exists("raw/20250501/Device_20250501.csv") and storage.exists("landing/readme.txt")


def test_plain_and_gzipped_files_of_one_day_write_distinct_outputs():
    from m7etl.core import layout

    plain = layout.silver_key("20250501", "Viewing", "raw/20250501/Viewing_20250501.csv")
    gzipped = layout.silver_key("20250501", "Viewing", "raw/20250501/Viewing_20250501.csv.gz")
    assert plain == "silver/20250501/Viewing/Viewing_20250501.parquet"
    assert gzipped == "silver/20250501/Viewing/Viewing_20250501.gz.parquet"
