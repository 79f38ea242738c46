"""A day delivered in parts, ``<Dataset>_YYYYMMDD_<part>.csv[.gz]``: each part is filed,
validated into its own silver file and counted in the day's gold."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from helpers import csv_bytes

from m7etl.core.ingest import ingest
from m7etl.core.raw_to_silver import process_raw_file
from m7etl.core.silver_to_gold import process_gold

HEADER = ["session_id", "device_id", "channel_id", "session_start", "session_end", "duration_s",
          "view_hour", "playback_mode"]


def session(sid: str, device: int, channel: int, minutes: int, mode: str) -> list[str]:
    return [sid * 16, f"STB{device:09d}", str(channel), "2025-05-01 08:00:00",
            f"2025-05-01 08:{minutes:02d}:00", str(minutes * 60), "8", mode]


def test_two_parts_of_a_day_are_filed_each_into_its_silver_and_both_into_gold(local_storage, registry):
    storage = local_storage
    parts = {
        "Viewing_20250501_01.csv": csv_bytes([HEADER, session("a", 1, 5, 10, "live"),
                                              session("b", 2, 5, 20, "live")]),
        "Viewing_20250501_02.csv.gz": csv_bytes([HEADER, session("c", 2, 5, 30, "live"),
                                                 session("d", 3, 7, 40, "vod")], gzip=True),
    }
    silver = []
    for name, data in parts.items():
        storage.write_bytes(f"landing/{name}", data)
        filed = ingest(storage, f"landing/{name}", registry, arrival_day="20250502")
        assert (filed.status, filed.dataset, filed.date, filed.target_key) == (
            "raw", "Viewing", "20250501", f"raw/20250501/{name}")
        result = process_raw_file(storage, filed.target_key, registry)
        assert (result.status, result.rows_valid) == ("ok", 2)
        silver.append(result.outputs["silver"])
    assert silver == ["silver/20250501/Viewing/Viewing_20250501_01.parquet",
                      "silver/20250501/Viewing/Viewing_20250501_02.gz.parquet"]
    assert not storage.list("quarantine/")

    gold = process_gold(storage, registry["Viewing"], "20250501")
    assert (gold.rows_in, gold.rows_out, gold.rows_superseded, sorted(gold.silver_keys)) == (
        4, 2, 0, silver)
    rows = pq.read_table(pa.BufferReader(storage.read_bytes(gold.gold_key))).to_pylist()
    # by hand: channel 5 live holds a, b (part 01) and c (part 02): 600 + 1200 + 1800 s, boxes 1 and 2
    assert [(r["channel_id"], r["playback_mode"], r["sessions"], r["viewers"], r["total_duration_s"])
            for r in rows] == [(5, "live", 3, 2, 3600), (7, "vod", 1, 1, 2400)]
