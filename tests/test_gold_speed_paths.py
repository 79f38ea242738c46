"""The fast paths of snapshot gold give the same gold as the plain ones, and choose as said.

- keys sorted as packed integer codes (:mod:`m7etl.core.gold.order`) order and equate rows
  exactly as the values do (the oracle: Python's sort of the values' bytes);
- the latest record per key by those codes equals Arrow's sort of the values themselves;
- a snapshot folds in memory while its keys are few and spills when they are many
  (observable: files in the spill folder), with the same gold either way;
- the spill keeps one file open, whatever the number of partitions;
- the day is sized by its rows as read (footer row counts times the Arrow width), not by
  its compressed bytes.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m7etl.core import silver_to_gold
from m7etl.core.contracts import parse_contract
from m7etl.core.gold import gold_builder, snapshot, spill
from m7etl.core.gold.order import changes, sort_codes, stable_order
from m7etl.core.gold.partition import partition_of
from m7etl.core.validate import silver_schema

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
DAY = "20250501"

SNAP = parse_contract({
    "dataset": "Probe",
    "columns": [
        {"name": "id", "type": "string", "required": True},
        {"name": "seen", "type": "timestamp"},
        {"name": "status", "type": "string", "allowed": ["on", "off"]},
    ],
    "primary_key": ["id"],
    "gold": {"kind": "snapshot", "order_by": ["seen"]},
}, "<probe-snapshot>")

PAIR = parse_contract({  # a composite key: a string and an integer
    "dataset": "Pair",
    "columns": [
        {"name": "box", "type": "string", "required": True},
        {"name": "slot", "type": "integer", "required": True},
        {"name": "seen", "type": "timestamp"},
        {"name": "status", "type": "string"},
    ],
    "primary_key": ["box", "slot"],
    "gold": {"kind": "snapshot", "order_by": ["seen"]},
}, "<probe-pair>")


# --------------------------------------------------------------------------- sort codes

texts = st.text(alphabet=st.sampled_from(["a", "b", "z", "0", "9", "\x00", "é", "€"]), max_size=6)


@SETTINGS
@given(values=st.lists(st.one_of(texts.map(lambda s: ("text", s)),
                                 st.integers(-2**63, 2**63 - 1).map(lambda i: ("int", i))),
                       min_size=1, max_size=40), same_length=st.booleans())
def test_codes_order_and_equate_rows_as_their_values_do(values, same_length):
    """Strings (prefixes, NUL bytes, multi-byte characters, one length or many) and integers
    over the whole int64 range: the codes' stable order is Python's stable sort of the values
    (strings by their UTF-8 bytes, as Arrow compares them), and they change where values do."""
    strings = [v for kind, v in values if kind == "text"] or ["x"]
    if same_length:
        width = max(len(s.encode()) for s in strings)
        strings = [s.encode().ljust(width, b"q").decode("latin-1") for s in strings]
    integers = [v for kind, v in values if kind == "int"] or [0]
    n = max(len(strings), len(integers))
    strings, integers = (strings * n)[:n], (integers * n)[:n]
    for columns, python in (([pa.array(strings)], [(s.encode(),) for s in strings]),
                            ([pa.array(integers, pa.int64())], [(i,) for i in integers]),
                            ([pa.array(strings), pa.array(integers, pa.int64())],
                             list(zip([s.encode() for s in strings], integers, strict=True)))):
        words = sort_codes(columns)
        order = stable_order(words)
        assert order.tolist() == sorted(range(n), key=lambda i: python[i])
        ranked = [python[i] for i in order]
        assert changes([w[order] for w in words]).tolist() == [
            i == 0 or ranked[i] != ranked[i - 1] for i in range(n)]


def test_columns_that_cannot_be_packed_are_left_to_arrow():
    assert sort_codes([pa.array([1.5, 0.5])]) is None  # floats: NaN and -0.0
    assert sort_codes([pa.array(["a", None])]) is None  # nulls (a key column has none)
    assert sort_codes([pa.array(["x" * 65, "y"])]) is None  # over MAX_STRING_BYTES
    dates = sort_codes([pa.array([date(2025, 5, 2), date(1970, 1, 1), date(2025, 5, 2)])])
    assert stable_order(dates).tolist() == [1, 0, 2]


# --------------------------------------------------------------------------- latest record


@st.composite
def silver_rows(draw, contract, ids) -> pa.Table:
    """Rows with many ties: few keys, times, sources; nulls in the ordering column; and
    sometimes the same (key, time, source, line) twice (then the first in input order wins)."""
    n = draw(st.integers(0, 50))
    rows = []
    for i in range(n):
        row = {name: draw(strategy) for name, strategy in ids.items()}
        hours = st.sampled_from([datetime(2025, 5, 1, h) for h in range(3)])
        row.update({"seen": draw(st.one_of(st.none(), hours)),
                    "status": draw(st.sampled_from(["on", "off"])),
                    "_source_key": draw(st.sampled_from(["raw/x.csv", "raw/y.csv", "raw/y.csv.gz"])),
                    "_line_number": draw(st.sampled_from([i + 2, 2]))})
        rows.append(row)
    fields = [pa.field(c.name, pa.int64() if c.type == "integer" else
                       pa.timestamp("us") if c.type == "timestamp" else pa.string())
              for c in contract.columns]
    schema = pa.schema([*fields, pa.field("_source_key", pa.string()), pa.field("_line_number", pa.int64())])
    table = pa.Table.from_pylist(rows, schema=schema)
    if draw(st.booleans()):  # the source read as a dictionary, as the builder reads it
        table = table.set_column(table.schema.get_field_index("_source_key"), "_source_key",
                                 table.column("_source_key").dictionary_encode())
    return table


@SETTINGS
@given(silver=silver_rows(SNAP, {"id": st.sampled_from(["a", "b", "ab", "", "b\x00", "€"])}))
def test_the_latest_record_by_codes_is_the_latest_by_values(silver):
    """The oracle is the sort of the values themselves (the code before the codes)."""
    assert snapshot._latest(SNAP, silver).equals(snapshot._latest_by_values(SNAP, silver))


@SETTINGS
@given(silver=silver_rows(PAIR, {"box": st.sampled_from(["STB1", "STB2"]),
                                 "slot": st.integers(-3, 3)}))
def test_the_latest_record_of_a_composite_key_by_codes_is_the_latest_by_values(silver):
    assert snapshot._latest(PAIR, silver).equals(snapshot._latest_by_values(PAIR, silver))


def test_keys_too_long_to_pack_still_keep_their_latest_record():
    long = "x" * 80  # sorted by Arrow, not packed
    silver = pa.table({"id": [long + "b", long + "a", long + "b"],
                       "seen": pa.array([datetime(2025, 5, 1, 1), None, datetime(2025, 5, 1, 2)]),
                       "status": ["on", "off", "off"], "_source_key": ["s", "s", "s"],
                       "_line_number": [2, 3, 4]})
    kept = snapshot._latest(SNAP, silver)
    assert kept.column("id").to_pylist() == [long + "a", long + "b"]
    assert kept.column("_line_number").to_pylist() == [3, 4]


def test_a_spill_file_keeps_its_latest_records_in_input_order():
    silver = pa.table({"id": ["c", "a", "c", "b"], "seen": pa.array([None] * 4, pa.timestamp("us")),
                       "status": ["on"] * 4, "_source_key": ["s"] * 4, "_line_number": [2, 3, 4, 5]})
    assert snapshot._latest(SNAP, silver).column("id").to_pylist() == ["a", "b", "c"]
    assert snapshot._latest(SNAP, silver, by_key=False).column("id").to_pylist() == ["a", "c", "b"]


# --------------------------------------------------------------------------- in memory or spilled


def device_rows(keys: int, rows: int, start: int = 0) -> pa.Table:
    """``rows`` updates of ``keys`` devices, each update later than the one before."""
    t0 = datetime(2025, 5, 1)
    ids = [f"STB{(start + i) % keys:09d}" for i in range(rows)]
    return pa.table({"id": ids, "seen": pa.array([t0 + timedelta(seconds=start + i) for i in range(rows)]),
                     "status": pa.array(["on" if i % 3 else "off" for i in range(rows)]).dictionary_encode(),
                     "_source_key": pa.array(["raw/x.csv"] * rows).dictionary_encode(),
                     "_line_number": pa.array(range(start + 2, start + rows + 2), pa.int64())})


def fold(rows: pa.Table, tmp_path, *, hold_bytes: int, parts: int = 4, day_rows: int = 0):
    """The builder fed ``rows`` in batches of 1,000 (chunks of 4,000), and the spill folder's
    files once every row is in (before the result reads them back)."""
    builder = gold_builder(SNAP, 4_000, spill_dir=tmp_path, parts=parts, hold_bytes=hold_bytes,
                           day_rows=day_rows)
    for batch in rows.to_batches(max_chunksize=1_000):
        builder.add(batch)
    builder._flush()  # what result_tables does first: the pending rows folded or spilled
    files = sorted(p.name for p in tmp_path.iterdir())
    gold = builder.result(DAY)
    assert not list(tmp_path.iterdir())  # the spill files are gone once read back
    return builder, files, gold


def as_rows(gold: pa.Table) -> list[tuple]:
    return sorted(zip(*(gold.column(n).to_pylist() for n in ("id", "seen", "status")), strict=True))


def test_a_day_of_few_keys_folds_in_memory_and_never_touches_the_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "PROBE_ROWS", 2_000)
    monkeypatch.setattr(spill, "BUFFER_BYTES", 1)  # a spill would write at once
    updates = device_rows(keys=50, rows=30_000)  # a status feed: 600 updates a box
    builder, files, gold = fold(updates, tmp_path, hold_bytes=64 * 1024, day_rows=30_000)
    assert not builder.spilled and files == []
    assert gold.num_rows == 50
    assert gold.column("id").to_pylist() == sorted(gold.column("id").to_pylist())  # by key
    latest = {f"STB{k:09d}": max(i for i in range(30_000) if i % 50 == k) for k in range(50)}
    assert {r[0]: r[1] for r in as_rows(gold)} == {
        k: datetime(2025, 5, 1) + timedelta(seconds=i) for k, i in latest.items()}


def test_a_day_of_many_keys_spills_once_its_kept_rows_outgrow_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "PROBE_ROWS", 2_000)
    monkeypatch.setattr(spill, "BUFFER_BYTES", 1)  # each write a run file, to be seen
    day = pa.concat_tables([device_rows(keys=6_000, rows=6_000),
                            device_rows(keys=6_000, rows=6_000, start=6_001)])  # each key again, later
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    in_memory = fold(day, tmp_path / "a", hold_bytes=1 << 40)
    spilled = fold(day, tmp_path / "b", hold_bytes=64 * 1024)
    assert not in_memory[0].spilled and in_memory[1] == []
    assert spilled[0].spilled and spilled[1] and all(f.startswith("snapshot-run-") for f in spilled[1])
    assert as_rows(spilled[2]) == as_rows(in_memory[2])
    assert in_memory[2].num_rows == 6_000 and spilled[0].rows_in == in_memory[0].rows_in == 12_000


def test_a_list_of_distinct_keys_spills_at_its_first_fold(tmp_path, monkeypatch):
    """The first fold keeps every row it saw: at that share, the day's rows would not fit,
    so it spills then, though what it keeps so far would still fit."""
    monkeypatch.setattr(snapshot, "PROBE_ROWS", 2_000)
    first = device_rows(keys=50_000, rows=2_000)
    builder = gold_builder(SNAP, 4_000, spill_dir=tmp_path, parts=4, hold_bytes=first.nbytes * 3,
                           day_rows=50_000)
    for batch in first.to_batches(max_chunksize=1_000):
        builder.add(batch)
    assert builder.spilled  # kept 2,000 rows: a third of the budget; the day: 25 times that
    few = gold_builder(SNAP, 4_000, spill_dir=tmp_path / "few", parts=4, hold_bytes=first.nbytes * 3,
                       day_rows=50_000)
    for batch in device_rows(keys=10, rows=2_000).to_batches(max_chunksize=1_000):
        few.add(batch)
    assert not few.spilled


def test_a_snapshot_without_a_memory_budget_spills_from_its_first_row(tmp_path):
    """hold_bytes 0 with parts > 1 (what a caller forcing the spill asks): as before."""
    builder = gold_builder(SNAP, 4_000, spill_dir=tmp_path, parts=3)
    assert builder.spilled


class RecordingSpill(spill.Spill):
    made: ClassVar[list[RecordingSpill]] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingSpill.made.append(self)


def write_day(storage, contract, rows: list[dict], name: str = "Device_20250501") -> None:
    table = pa.Table.from_pylist(rows, schema=silver_schema(contract))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    storage.write_bytes(f"silver/{DAY}/{contract.dataset}/{name}.parquet", sink.getvalue().to_pybytes())


def device(i: int, seen: datetime, line: int) -> dict:
    return {"device_id": f"STB{i:09d}", "subscriber_id": f"SUB{i % 10**8:08d}", "model": "M7-HD100",
            "firmware_version": "1.0.0", "region": "Bretagne", "activation_date": date(2020, 1, 1),
            "last_seen_at": seen, "status": "active" if line % 2 else "faulty", "signal_quality_pct": None,
            "_source_key": "raw/20250501/Device_20250501.csv", "_line_number": line, "_warnings": None}


@pytest.mark.parametrize("boxes", [20, 3_000])
def test_process_gold_spills_a_device_list_and_not_a_status_feed(local_storage, registry, monkeypatch,
                                                                  boxes):
    """3,000 updates a day: of 20 boxes (a status feed) the day folds in memory; of 3,000
    (a device list) it goes through spill files; the gold is the latest row per box. The
    budget is below the silver file's compressed size (what decided before: both spilled),
    above what 20 boxes keep, below what 3,000 do."""
    contract = registry["Device"]
    t0 = datetime(2025, 5, 1)
    write_day(local_storage, contract, [device(i % boxes, t0 + timedelta(seconds=i), i + 2)
                                        for i in range(3_000)])
    budget = 4_000
    assert local_storage.size(f"silver/{DAY}/Device/Device_20250501.parquet") > 2 * budget
    monkeypatch.setattr(silver_to_gold, "SPILL_FROM_BYTES", {"aggregate": 0, "snapshot": budget})
    monkeypatch.setattr(silver_to_gold, "SPILL_PART_BYTES", {"aggregate": 1, "snapshot": 5_000})
    monkeypatch.setattr(silver_to_gold, "BATCH_ROWS", 500)
    monkeypatch.setattr(snapshot, "PROBE_ROWS", 1_000)
    monkeypatch.setattr(snapshot, "Spill", RecordingSpill)
    RecordingSpill.made = []
    result = silver_to_gold.process_gold(local_storage, contract, DAY)
    assert (result.rows_in, result.rows_out, result.rows_superseded) == (3_000, boxes, 3_000 - boxes)
    assert len(RecordingSpill.made) == (0 if boxes == 20 else 1)
    if RecordingSpill.made:
        assert RecordingSpill.made[0].parts >= 2
    gold = pq.read_table(pa.BufferReader(local_storage.read_bytes(result.gold_key)))
    seen = dict(zip(gold.column("device_id").to_pylist(), gold.column("last_seen_at").to_pylist(),
                    strict=True))
    assert seen == {f"STB{b:09d}": t0 + timedelta(seconds=max(range(b, 3_000, boxes))) for b in range(boxes)}


# --------------------------------------------------------------------------- spill files


def test_a_spill_keeps_one_file_a_run_whatever_its_partitions(tmp_path, monkeypatch):
    """50 partitions, three runs: three files (one open at a time), not fifty; each
    partition back whole, in the order written, dictionaries of different runs merged."""
    monkeypatch.setattr(spill, "BUFFER_BYTES", 1)  # every write is a run
    out = spill.Spill(tmp_path, "probe", 50)
    written = []
    for run in range(3):
        values = [f"{run}-{i}" for i in range(40)]
        rows = pa.table({"v": values, "tag": pa.array([f"t{run}"] * 40).dictionary_encode()})
        out.write(rows, np.arange(40) % 50)
        written.append(values)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"probe-run-{i}.arrow" for i in range(3)]
    back = list(out.read_back())
    assert len(back) == 50 and not list(tmp_path.iterdir())
    for p in range(50):
        assert back[p].column("v").to_pylist() == [w[p] for w in written if p < 40]
        assert back[p].column("tag").to_pylist() == ([f"t{r}" for r in range(3)] if p < 40 else [])


def test_a_same_length_batch_and_a_mixed_one_put_a_value_in_the_same_partition():
    """Ids of one length are hashed from their bytes as one block (the fast path): the same
    value in a batch of mixed lengths must land in the same partition."""
    same = pa.array([f"STB{i:09d}" for i in range(500)])
    mixed = pa.array([f"STB{i:09d}" for i in range(500)] + ["short"])
    assert (partition_of(same, 7) == partition_of(mixed, 7)[:500]).all()
    assert len(set(partition_of(same, 7).tolist())) == 7


# --------------------------------------------------------------------------- sizing the day


def test_the_day_is_sized_as_read_not_as_compressed(tmp_path, registry):
    """50,000 rows of one repeated 100-character value: a few KB of Parquet, 5 MB read;
    the dictionary columns a snapshot reads weigh 4 bytes a row, not their text."""
    path = tmp_path / "silver.parquet"
    pq.write_table(pa.table({"id": ["x" * 100] * 50_000, "status": ["returned-to-vendor"] * 50_000}),
                   path, compression="zstd")
    assert path.stat().st_size < 20_000
    rows, size = silver_to_gold.day_size([path, path], ["id", "status"])
    assert rows == 100_000 and size >= 100_000 * 104
    _rows, read_as_dictionary = silver_to_gold.day_size([path], ["id", "status"], ["status"])
    assert 50_000 * 104 <= read_as_dictionary < 50_000 * 110
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "status": pa.array([], pa.string())}), empty)
    assert silver_to_gold.day_size([empty, path], ["id"])[0] == 50_000


def test_the_spill_plan_of_an_aggregate_counts_what_its_distinct_counts_hold(tmp_path, registry):
    contract = registry["Viewing"]
    path = tmp_path / "viewing.parquet"
    n = 20_000
    t0 = datetime(2025, 5, 1)
    pq.write_table(pa.Table.from_pylist([
        {"session_id": f"{i:016x}", "device_id": f"STB{i:09d}", "channel_id": i % 9 + 1,
         "session_start": t0, "session_end": t0, "duration_s": 60, "view_hour": i % 24,
         "playback_mode": "live", "_source_key": "raw/v.csv", "_line_number": i + 2, "_warnings": None}
        for i in range(n)], schema=silver_schema(contract)), path)
    held = silver_to_gold.day_size([path], ["channel_id", "view_hour", "playback_mode", "device_id"])[1]
    rows, _bytes, parts = silver_to_gold.spill_plan(contract, [path])
    assert rows == n
    assert parts == silver_to_gold.spill_parts("aggregate", held)
    without = dataclasses.replace(contract, gold=dataclasses.replace(
        contract.gold, metrics=tuple(m for m in contract.gold.metrics if m.agg != "count_distinct")))
    assert silver_to_gold.spill_plan(without, [path])[2] == 1  # nothing held but partials


def test_spill_parts_follow_the_bytes_held(monkeypatch):
    monkeypatch.setattr(silver_to_gold, "SPILL_FROM_BYTES", {"aggregate": 100, "snapshot": 100})
    monkeypatch.setattr(silver_to_gold, "SPILL_PART_BYTES", {"aggregate": 30, "snapshot": 1000})
    assert silver_to_gold.spill_parts("snapshot", 100) == 1
    assert silver_to_gold.spill_parts("snapshot", 101) == 2  # spilling means two files at least
    assert silver_to_gold.spill_parts("aggregate", 301) == 11
