from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m7etl.core import silver_to_gold
from m7etl.core.gold import folding as gold_folding
from m7etl.core.gold import gold_schema
from m7etl.core.silver_to_gold import process_gold
from m7etl.core.validate import silver_schema


@pytest.fixture(params=["one chunk", "many chunks", "spilled"])
def folding(request, monkeypatch):
    """Gold from one fold of the whole day, from folds of 7 rows read 5 at a time, and
    through spill files of about a kilobyte of silver each."""
    if request.param != "one chunk":
        monkeypatch.setattr(gold_folding, "CHUNK_ROWS", 7)
        monkeypatch.setattr(silver_to_gold, "BATCH_ROWS", 5)
    if request.param == "spilled":
        monkeypatch.setattr(silver_to_gold, "SPILL_FROM_BYTES", {"aggregate": 0, "snapshot": 0})
        monkeypatch.setattr(silver_to_gold, "SPILL_PART_BYTES", {"aggregate": 1000, "snapshot": 1000})
        monkeypatch.setattr(silver_to_gold, "KEY_HASH_SPILL_FROM_ROWS", 0)
        monkeypatch.setattr(silver_to_gold, "KEY_HASH_PART_ROWS", 3)
    return request.param


def write_silver(storage, contract, day: str, name: str, rows: list[dict]) -> None:
    schema = silver_schema(contract)
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    storage.write_bytes(f"silver/{day}/{contract.dataset}/{name}.parquet", sink.getvalue().to_pybytes())


def device(i: int, seen: datetime, status: str, source: str, line: int) -> dict:
    return {"device_id": f"STB{i:09d}", "subscriber_id": "SUB00000001", "model": "M7-HD100",
            "firmware_version": "1.0.0", "region": None, "activation_date": date(2020, 1, 1),
            "last_seen_at": seen, "status": status, "signal_quality_pct": None,
            "_source_key": source, "_line_number": line, "_warnings": None}


def test_snapshot_keeps_the_latest_record_per_key_across_files(storage, registry, folding):
    contract = registry["Device"]
    t0 = datetime(2025, 5, 1, 8)
    write_silver(storage, contract, "20250501", "Device_20250501", [
        device(1, t0, "active", "raw/20250501/Device_20250501.csv", 2),
        device(2, t0 + timedelta(hours=2), "faulty", "raw/20250501/Device_20250501.csv", 3),
        device(2, t0, "active", "raw/20250501/Device_20250501.csv", 4),  # older: superseded
        device(3, t0, "active", "raw/20250501/Device_20250501.csv", 5),
        device(3, t0, "returned", "raw/20250501/Device_20250501.csv", 6),  # same time, later line wins
    ])
    write_silver(storage, contract, "20250501", "Device_20250501_b", [
        device(1, t0 + timedelta(hours=1), "inactive", "raw/20250501/Device_20250501_b.csv", 2),
    ])
    result = process_gold(storage, contract, "20250501")
    assert (result.status, result.rows_in, result.rows_out, result.rows_superseded) == ("ok", 6, 3, 3)
    gold = pq.read_table(pa.BufferReader(storage.read_bytes("gold/Device_20250501.parquet")))
    assert gold.schema == gold_schema(contract)
    rows = gold.to_pylist()
    if folding == "spilled":  # sorted by key within each spill file, files one after another
        rows.sort(key=lambda r: r["device_id"])
    assert [(r["device_id"], r["status"]) for r in rows] == [
        ("STB000000001", "inactive"), ("STB000000002", "faulty"), ("STB000000003", "returned")]
    assert set(gold.column("business_date").to_pylist()) == {date(2025, 5, 1)}


def viewing(session: str, device: int, channel: int, hour: int, mode: str, duration: int,
            source: str, line: int) -> dict:
    start = datetime(2025, 5, 1, hour, 10)
    return {"session_id": session * 16, "device_id": f"STB{device:09d}", "channel_id": channel,
            "session_start": start, "session_end": start + timedelta(seconds=duration),
            "duration_s": duration, "view_hour": hour, "playback_mode": mode,
            "_source_key": source, "_line_number": line, "_warnings": None}


def gold_rows(storage, result) -> dict:
    """(channel, hour, mode) -> (sessions, viewers, total_duration_s, avg_duration_s)."""
    gold = pq.read_table(pa.BufferReader(storage.read_bytes(result.gold_key))).to_pylist()
    return {(r["channel_id"], r["view_hour"], r["playback_mode"]):
            (r["sessions"], r["viewers"], r["total_duration_s"], r["avg_duration_s"]) for r in gold}


def test_sessions_sent_in_a_csv_and_its_gzip_count_once(storage, registry, folding):
    contract = registry["Viewing"]
    plain, gz = "raw/20250501/Viewing_20250501.csv", "raw/20250501/Viewing_20250501.csv.gz"
    write_silver(storage, contract, "20250501", "Viewing_20250501", [
        viewing("a", 1, 1, 8, "live", 100, plain, 2),
        viewing("b", 2, 1, 8, "live", 200, plain, 3),
        viewing("c", 1, 2, 9, "vod", 300, plain, 4),
    ])
    write_silver(storage, contract, "20250501", "Viewing_20250501.gz", [  # a and b again, d new
        viewing("a", 1, 1, 8, "live", 100, gz, 2),
        viewing("b", 2, 1, 8, "live", 200, gz, 3),
        viewing("d", 3, 2, 9, "vod", 50, gz, 4),
    ])
    result = process_gold(storage, contract, "20250501")
    # written by hand: (1, 8, live) holds a and b once each, (2, 9, vod) holds c and d
    assert gold_rows(storage, result) == {(1, 8, "live"): (2, 2, 300, 150.0),
                                          (2, 9, "vod"): (2, 2, 350, 175.0)}
    assert (result.rows_in, result.rows_out, result.rows_superseded) == (6, 2, 2)
    assert result.to_dict()["rows_superseded"] == 2


def test_a_later_delivery_of_the_day_wins_for_a_session_sent_twice(storage, registry, folding):
    """The snapshot's rule: the later file (part 02 after part 01), then the later line."""
    contract = registry["Viewing"]
    first, second = "raw/20250501/Viewing_20250501_01.csv", "raw/20250501/Viewing_20250501_02.csv"
    write_silver(storage, contract, "20250501", "Viewing_20250501_02", [
        viewing("a", 1, 1, 8, "live", 1500, second, 2),   # a went on: 1500 s, not 100
        viewing("b", 2, 4, 10, "replay", 600, second, 3),  # b corrected: channel 4, not 3
    ])
    write_silver(storage, contract, "20250501", "Viewing_20250501_01", [
        viewing("a", 1, 1, 8, "live", 100, first, 2),
        viewing("b", 2, 3, 10, "replay", 600, first, 3),
        viewing("c", 5, 1, 8, "live", 40, first, 4),
        viewing("c", 5, 1, 8, "live", 45, first, 9),  # the same file again: the later line wins
    ])
    result = process_gold(storage, contract, "20250501")
    assert gold_rows(storage, result) == {(1, 8, "live"): (2, 2, 1545, 772.5),
                                          (4, 10, "replay"): (1, 1, 600, 600.0)}
    assert (result.rows_in, result.rows_out, result.rows_superseded) == (6, 2, 3)


def test_a_day_without_repeated_sessions_supersedes_nothing(storage, registry):
    contract = registry["Viewing"]
    source = "raw/20250501/Viewing_20250501.csv"
    write_silver(storage, contract, "20250501", "Viewing_20250501", [
        viewing("a", 1, 1, 8, "live", 100, source, 2), viewing("b", 1, 1, 8, "live", 30, source, 3)])
    result = process_gold(storage, contract, "20250501")
    assert gold_rows(storage, result) == {(1, 8, "live"): (2, 1, 130, 65.0)}
    assert (result.rows_in, result.rows_out, result.rows_superseded) == (2, 1, 0)


def test_aggregate_matches_an_independent_computation(storage, registry, folding):
    contract = registry["Viewing"]
    rng = random.Random(3)
    rows = []
    for i in range(500):
        start = datetime(2025, 5, 1) + timedelta(seconds=rng.randrange(86000))
        duration = rng.randrange(0, 7200)
        rows.append({"session_id": f"{i:016x}", "device_id": f"STB{rng.randrange(40):09d}",
                     "channel_id": rng.randrange(1, 6), "session_start": start,
                     "session_end": start + timedelta(seconds=duration), "duration_s": duration,
                     "view_hour": start.hour, "playback_mode": rng.choice(["live", "vod"]),
                     "_source_key": "k", "_line_number": i + 2, "_warnings": None})
    write_silver(storage, contract, "20250501", "Viewing_20250501", rows[:300])
    write_silver(storage, contract, "20250501", "Viewing_20250501_late", rows[300:])
    result = process_gold(storage, contract, "20250501")
    gold = pq.read_table(pa.BufferReader(storage.read_bytes(result.gold_key))).to_pylist()

    expected = defaultdict(lambda: {"sessions": 0, "viewers": set(), "total": 0})
    for r in rows:
        g = expected[(r["channel_id"], r["view_hour"], r["playback_mode"])]
        g["sessions"] += 1
        g["viewers"].add(r["device_id"])
        g["total"] += r["duration_s"]
    assert len(gold) == len(expected) and result.rows_in == 500
    for row in gold:
        e = expected[(row["channel_id"], row["view_hour"], row["playback_mode"])]
        assert row["sessions"] == e["sessions"] and row["viewers"] == len(e["viewers"])
        assert row["total_duration_s"] == e["total"]
        assert abs(row["avg_duration_s"] - e["total"] / e["sessions"]) < 1e-9
    keys = [(r["channel_id"], r["view_hour"], r["playback_mode"]) for r in gold]
    assert keys == sorted(keys)


def test_a_day_without_silver_has_no_gold_and_a_stale_gold_is_removed(storage, registry):
    contract = registry["EPG"]
    storage.write_bytes("gold/EPG_20250501.parquet", b"stale")
    result = process_gold(storage, contract, "20250501")
    assert (result.status, result.gold_key) == ("no_input", None)
    assert not storage.exists("gold/EPG_20250501.parquet")


def test_rebuilding_gold_rewrites_identical_bytes(local_storage, registry):
    contract = registry["Device"]
    t0 = datetime(2025, 5, 1, 8)
    write_silver(local_storage, contract, "20250501", "Device_20250501",
                 [device(i, t0, "active", "k", i + 2) for i in range(20)])
    process_gold(local_storage, contract, "20250501")
    first = local_storage.read_bytes("gold/Device_20250501.parquet")
    process_gold(local_storage, contract, "20250501")
    assert local_storage.read_bytes("gold/Device_20250501.parquet") == first


def test_gold_encodes_the_key_plain_and_keeps_min_max_of_typed_columns_only(storage, registry):
    """A snapshot's key has one value per row: no dictionary for it (it would be the column
    again); the other columns keep theirs. String min/max are not written, typed ones are
    (what an engine prunes on). The schema, what the warehouse loads, is unchanged."""
    contract = registry["Device"]
    t0 = datetime(2025, 5, 1, 8)
    write_silver(storage, contract, "20250501", "Device_20250501", [
        device(i, t0 + timedelta(minutes=i), "active", "raw/20250501/Device_20250501.csv", i + 2)
        for i in range(50)])
    process_gold(storage, contract, "20250501")
    gold = pq.ParquetFile(pa.BufferReader(storage.read_bytes("gold/Device_20250501.parquet")))
    assert gold.schema_arrow == gold_schema(contract)
    chunks = {gold.schema_arrow.names[k]: gold.metadata.row_group(0).column(k)
              for k in range(gold.metadata.num_columns)}
    assert not chunks["device_id"].has_dictionary_page
    assert chunks["status"].has_dictionary_page and chunks["model"].has_dictionary_page
    assert chunks["device_id"].statistics is None and chunks["status"].statistics is None
    seen = chunks["last_seen_at"].statistics
    assert (seen.min, seen.max) == (t0, t0 + timedelta(minutes=49))


CHANNEL_HEADER = "channel_id,channel_name,genre,language,is_hd,package,launched_on,updated_at"


def test_a_silver_file_of_no_row_feeds_gold_nothing_and_stops_nothing(storage, registry, folding):
    """A file whose every row is rejected, under a threshold of 100 %, publishes a silver file
    of no row group; gold reads it as no row (iter_batches refused it: an OSError stopped
    the whole day), from the files raw_to_silver really writes."""
    from m7etl.core.raw_to_silver import Thresholds, process_raw_file

    lines = {"raw/20250501/Channel_20250501_1.csv": ["x,TF1,general,fr,true,basic,1990-01-01,"],
             "raw/20250501/Channel_20250501_2.csv": ["1,TF1,general,fr,true,basic,1990-01-01,"
                                                     "2025-05-01 00:00:00"]}
    contract = registry["Channel"]
    valid = {}
    for key, rows in lines.items():
        storage.write_bytes(key, "\n".join([CHANNEL_HEADER, *rows, ""]).encode())
        result = process_raw_file(storage, key, registry, Thresholds(error_pct=100.0))
        valid[result.outputs["silver"]] = result.rows_valid
    assert valid == {"silver/20250501/Channel/Channel_20250501_1.parquet": 0,
                     "silver/20250501/Channel/Channel_20250501_2.parquet": 1}
    gold = process_gold(storage, contract, "20250501")
    assert (gold.status, gold.rows_in, gold.rows_out) == ("ok", 1, 1)
    table = pq.read_table(pa.BufferReader(storage.read_bytes(gold.gold_key)))
    assert table.column("channel_id").to_pylist() == [1]
    storage.delete(["silver/20250501/Channel/Channel_20250501_2.parquet"])
    only_empty = process_gold(storage, contract, "20250501")
    assert (only_empty.status, only_empty.rows_in, only_empty.rows_out) == ("ok", 0, 0)
    assert pq.read_table(pa.BufferReader(storage.read_bytes(only_empty.gold_key))).num_rows == 0
