"""Gold folded chunk by chunk equals gold computed over the whole day at once.

The oracles are the in-memory computations the builders replaced (one sort, one group-by
over every silver row), kept here. Inputs are generated with nulls in keys and values, ties,
and chunks from one row to more than the whole input.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m7etl.core.contracts import parse_contract
from m7etl.core.gold import BUSINESS_DATE, KeyCheck, dedupe, gold_builder, gold_schema, key_hashes
from m7etl.core.gold.partition import partition_of
from m7etl.core.gold.spill import Spill

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
DAY = "20250501"

AGG = parse_contract({
    "dataset": "Probe",
    "columns": [
        {"name": "region", "type": "string"},
        {"name": "hour", "type": "integer"},
        {"name": "device", "type": "string"},
        {"name": "seconds", "type": "integer"},
        {"name": "ratio", "type": "float"},
    ],
    "gold": {"kind": "aggregate", "group_by": ["region", "hour"], "metrics": [
        {"name": "n", "agg": "count"},
        {"name": "devices", "agg": "count_distinct", "column": "device"},
        {"name": "total", "agg": "sum", "column": "seconds"},
        {"name": "avg", "agg": "mean", "column": "seconds"},
        {"name": "avg_ratio", "agg": "mean", "column": "ratio"},
        {"name": "low", "agg": "min", "column": "ratio"},
        {"name": "high", "agg": "max", "column": "seconds"},
        {"name": "sum_ratio", "agg": "sum", "column": "ratio"},
    ]},
}, "<probe-aggregate>")

KEYED = parse_contract({  # an aggregate whose rows have a key: each key counts once, its latest record
    "dataset": "Probe",
    "columns": [
        {"name": "id", "type": "string", "required": True},
        {"name": "seen", "type": "timestamp"},
        {"name": "region", "type": "string"},
        {"name": "device", "type": "string"},
        {"name": "seconds", "type": "integer"},
    ],
    "primary_key": ["id"],
    "gold": {"kind": "aggregate", "group_by": ["region"], "order_by": ["seen"], "metrics": [
        {"name": "n", "agg": "count"},
        {"name": "devices", "agg": "count_distinct", "column": "device"},
        {"name": "total", "agg": "sum", "column": "seconds"},
        {"name": "low", "agg": "min", "column": "seconds"},
    ]},
}, "<probe-keyed>")

SNAP = parse_contract({
    "dataset": "Probe",
    "columns": [
        {"name": "id", "type": "string", "required": True},
        {"name": "seen", "type": "timestamp"},
        {"name": "status", "type": "string"},
    ],
    "primary_key": ["id"],
    "gold": {"kind": "snapshot", "order_by": ["seen"]},
}, "<probe-snapshot>")


# --------------------------------------------------------------------------- oracles


def aggregate_oracle(contract, silver: pa.Table) -> pa.Table:
    """The whole-table group-by that gold used before folding."""
    spec = contract.gold
    aggs, produced = [], []
    for m in spec.metrics:
        if m.agg == "count":
            aggs.append(([], "count_all"))
            produced.append("count_all")
        else:
            aggs.append((m.column, m.agg))
            produced.append(f"{m.column}_{m.agg}")
    aggs = list({name: agg for name, agg in zip(produced, aggs, strict=True)}.values())
    grouped = silver.group_by(list(spec.group_by), use_threads=False).aggregate(aggs)
    columns = [grouped.column(k) for k in spec.group_by] + [grouped.column(p) for p in produced]
    table = pa.Table.from_arrays(columns, names=list(spec.group_by) + [m.name for m in spec.metrics])
    return table.sort_by([(k, "ascending") for k in spec.group_by])


def snapshot_oracle(contract, silver: pa.Table) -> pa.Table:
    """One sort of every row, the first row of each key kept."""
    key = list(contract.primary_key)
    order = [(k, "ascending") for k in key] + [(c, "descending") for c in contract.gold.order_by]
    ranked = silver.sort_by(order + [("_source_key", "descending"), ("_line_number", "descending")])
    ids = ranked.column(key[0]).to_pylist()
    keep = [i == 0 or ids[i] != ids[i - 1] for i in range(len(ids))]
    return ranked.filter(pa.array(keep, pa.bool_()))


def same(got: list, want: list) -> bool:
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=True):
        if isinstance(a, float) and isinstance(b, float):
            if not (math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))):
                return False
        elif a != b:
            return False
    return True


def fold(contract, silver: pa.Table, chunk_rows: int, batch_rows: int, *, spill_dir=None,
         parts: int = 1, repeats=None) -> pa.Table:
    builder = gold_builder(contract, chunk_rows, spill_dir=spill_dir, parts=parts, repeats=repeats)
    for batch in silver.to_batches(max_chunksize=batch_rows):
        builder.add(batch)
    gold = builder.result(DAY)
    assert builder.rows_in == silver.num_rows
    assert gold.schema == gold_schema(contract)
    assert set(gold.column(BUSINESS_DATE).to_pylist()) <= {datetime(2025, 5, 1).date()}
    return gold.drop_columns([BUSINESS_DATE])


# --------------------------------------------------------------------------- inputs

maybe = lambda strategy: st.one_of(st.none(), strategy)  # noqa: E731


@st.composite
def aggregate_rows(draw) -> pa.Table:
    n = draw(st.integers(0, 60))
    row = st.fixed_dictionaries({
        "region": maybe(st.sampled_from(["north", "south", "été"])),
        "hour": maybe(st.integers(0, 3)),
        "device": maybe(st.sampled_from([f"STB{i}" for i in range(6)])),
        "seconds": maybe(st.integers(-5, 10**6)),
        "ratio": maybe(st.floats(-1e6, 1e6, allow_nan=False)),
    })
    rows = [draw(row) for _ in range(n)]
    schema = pa.schema([("region", pa.string()), ("hour", pa.int64()), ("device", pa.string()),
                        ("seconds", pa.int64()), ("ratio", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


@st.composite
def snapshot_rows(draw) -> pa.Table:
    n = draw(st.integers(0, 60))
    rows = [{"id": draw(st.sampled_from(["a", "b", "c", "d"])),
             "seen": draw(maybe(st.sampled_from([datetime(2025, 5, 1, h) for h in range(3)]))),
             "status": draw(st.sampled_from(["on", "off"])),
             "_source_key": draw(st.sampled_from(["raw/20250501/x.csv", "raw/20250501/y.csv"])),
             "_line_number": i + 2} for i in range(n)]
    schema = pa.schema([("id", pa.string()), ("seen", pa.timestamp("us")), ("status", pa.string()),
                        ("_source_key", pa.string()), ("_line_number", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema)


@st.composite
def keyed_rows(draw) -> pa.Table:
    n = draw(st.integers(0, 60))
    rows = [{"id": draw(st.sampled_from(["a", "b", "c", "dd", "eee", "f" * 9, "g" * 16])),
             "seen": draw(maybe(st.sampled_from([datetime(2025, 5, 1, h) for h in range(3)]))),
             "region": draw(maybe(st.sampled_from(["north", "south"]))),
             "device": draw(maybe(st.sampled_from(["STB1", "STB2", "STB3"]))),
             "seconds": draw(maybe(st.integers(-5, 100))),
             "_source_key": draw(st.sampled_from(["raw/20250501/x.csv", "raw/20250501/x.csv.gz"])),
             "_line_number": i + 2} for i in range(n)]
    schema = pa.schema([("id", pa.string()), ("seen", pa.timestamp("us")), ("region", pa.string()),
                        ("device", pa.string()), ("seconds", pa.int64()),
                        ("_source_key", pa.string()), ("_line_number", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema)


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(silver=aggregate_rows(), chunk_rows=st.integers(1, 80), batch_rows=st.integers(1, 30),
       parts=st.integers(1, 5))
def test_folded_aggregates_equal_one_group_by_over_the_day(tmp_path_factory, silver, chunk_rows,
                                                           batch_rows, parts):
    """parts > 1: the distinct counts spill to that many files and are counted file by file."""
    want = aggregate_oracle(AGG, silver) if silver.num_rows else None
    spill = tmp_path_factory.mktemp("spill")
    got = fold(AGG, silver, chunk_rows, batch_rows, spill_dir=spill, parts=parts)
    assert not list(spill.iterdir())  # the spill files are gone once counted
    if want is None:
        assert got.num_rows == 0
        return
    assert got.column_names == want.column_names
    for name in got.column_names:
        assert same(got.column(name).to_pylist(), want.column(name).to_pylist()), name


@SETTINGS
@given(silver=snapshot_rows(), chunk_rows=st.integers(1, 80), batch_rows=st.integers(1, 30),
       parts=st.integers(1, 5))
def test_folded_snapshot_equals_one_sort_over_the_day(tmp_path_factory, silver, chunk_rows, batch_rows,
                                                      parts):
    """parts > 1: rows spill by key to that many files, each reduced alone (sorted within it)."""
    spill = tmp_path_factory.mktemp("spill")
    got = fold(SNAP, silver, chunk_rows, batch_rows, spill_dir=spill, parts=parts)
    assert not list(spill.iterdir())
    want = snapshot_oracle(SNAP, silver).select(got.column_names).to_pylist() if silver.num_rows else []
    rows = got.to_pylist()
    if parts > 1:  # one file after another: compare as sets of rows, each key once
        rows = sorted(rows, key=lambda r: r["id"])
    assert rows == want


@settings(SETTINGS, max_examples=50)  # each example spills up to three ways: a few seconds in all
@given(silver=keyed_rows(), chunk_rows=st.integers(1, 80), batch_rows=st.integers(1, 30),
       parts=st.integers(1, 4), checked=st.booleans(), check_parts=st.integers(1, 3))
def test_an_aggregate_counts_each_key_once_its_latest_record(tmp_path_factory, silver, chunk_rows,
                                                            batch_rows, parts, checked, check_parts):
    """The oracle keeps each key's latest record by one sort (the snapshot's), then groups.
    ``checked``: the day's keys were hashed first (in ``check_parts`` spill files), and
    only rows whose key repeats wait aside; else every row does. parts > 1: they spill."""
    spill = tmp_path_factory.mktemp("spill")
    repeats = None
    if checked:
        check = KeyCheck(spill, check_parts)
        for batch in silver.to_batches(max_chunksize=batch_rows):
            check.add(key_hashes(batch, ["id"]))
        repeats = dataclasses.replace(check.repeats(), parts=parts)
    builder = gold_builder(KEYED, chunk_rows, spill_dir=spill, parts=parts, repeats=repeats)
    for batch in silver.select(builder.columns).to_batches(max_chunksize=batch_rows):
        builder.add(batch)
    got = builder.result(DAY).drop_columns([BUSINESS_DATE])
    assert not list(spill.iterdir())
    latest = snapshot_oracle(KEYED, silver) if silver.num_rows else silver
    assert builder.rows_superseded == silver.num_rows - latest.num_rows
    want = aggregate_oracle(KEYED, latest) if latest.num_rows else None
    if want is None:
        assert got.num_rows == 0
        return
    for name in want.column_names:
        assert same(got.column(name).to_pylist(), want.column(name).to_pylist()), name


def test_a_day_without_a_repeated_key_folds_without_reading_the_key():
    """Nothing repeats: the builder asks for the aggregate's columns only, as with no key."""
    check = KeyCheck()
    check.add(key_hashes(pa.table({"id": ["a", "bb", "c"]}), ["id"]))
    repeats = check.repeats()
    assert repeats.rows == 0 and not np.unpackbits(repeats.held).any()
    builder = gold_builder(KEYED, repeats=repeats)
    assert builder.columns == ["region", "device", "seconds"]
    assert gold_builder(KEYED).columns == ["region", "device", "seconds", "id", "seen", "_source_key",
                                           "_line_number"]


@pytest.mark.parametrize("parts", [1, 3])
@pytest.mark.parametrize("few", [dedupe._FEW, 0])
def test_the_key_check_finds_exactly_the_repeated_keys(tmp_path, monkeypatch, parts, few):
    """few 0: as on a day where many keys repeat, every hash is compared whole."""
    monkeypatch.setattr(dedupe, "_FEW", few)
    check = KeyCheck(tmp_path, parts)
    check.add(key_hashes(pa.table({"id": ["a", "b", "a", "cc"]}), ["id"]))
    check.add(key_hashes(pa.table({"id": ["cc", "d", "a"]}), ["id"]))
    repeats = check.repeats()
    flags = np.unpackbits(repeats.held)[:7].tolist()  # rows a, b, a, cc | cc, d, a
    assert flags == [1, 0, 1, 1, 1, 0, 1] and repeats.rows == 5
    assert not list(tmp_path.iterdir())


def test_hashes_sharing_their_low_half_are_not_taken_for_repeats():
    """The check sorts the low 32 bits first: equal there, different above, is no repeat."""
    check = KeyCheck()
    check.add(np.array([1 | 5 << 32, 1 | 7 << 32, 9, 2 | 3 << 40, 2 | 3 << 40], np.uint64))
    repeats = check.repeats()
    assert np.unpackbits(repeats.held)[:5].tolist() == [0, 0, 0, 1, 1] and repeats.rows == 2


@pytest.mark.parametrize("values", [
    pa.array(["0123456789abcdef", "", None, "é", "a" * 40, "0123456789abcdef", "b" * 7, "b" * 8, "b" * 9]),
    pa.array(["x", "y", "x"], pa.large_string()),
    pa.array([3, -1, None, 3], pa.int64()),
])
def test_equal_keys_hash_alike_whatever_batch_they_come_in(values):
    """A batch of one length is hashed as one block, a mixed one length by length: alike."""
    whole = key_hashes(pa.table({"k": values}), ["k"])
    single = [key_hashes(pa.table({"k": values.slice(i, 1)}), ["k"])[0] for i in range(len(values))]
    assert single == whole.tolist()
    chunked = pa.table({"k": pa.chunked_array([values.slice(0, 2), values.slice(2)])})
    assert key_hashes(chunked, ["k"]).tolist() == whole.tolist()
    by_value = {}
    for value, h in zip(values.to_pylist(), whole.tolist(), strict=True):
        assert by_value.setdefault(value, h) == h
    assert len(set(by_value.values())) == len(by_value)  # these few distinct values: distinct hashes
    pair = pa.table({"a": ["x", "y"], "b": ["y", "x"]})
    assert len(set(key_hashes(pair, ["a", "b"]).tolist())) == 2  # (x, y) is not (y, x)


def test_a_group_whose_values_are_all_null_has_null_sums_and_means():
    silver = pa.table({"region": ["x", "x"], "hour": [1, 1], "device": pa.array([None, None], pa.string()),
                       "seconds": pa.array([None, None], pa.int64()),
                       "ratio": pa.array([None, None], pa.float64())})
    row = fold(AGG, silver, chunk_rows=1, batch_rows=1).to_pylist()[0]
    assert (row["n"], row["devices"], row["total"], row["avg"], row["low"]) == (2, 0, None, None, None)


@pytest.mark.parametrize("chunk_rows", [1, 3, 1000])
def test_the_chunk_size_changes_nothing_but_memory(chunk_rows):
    silver = pa.table({"region": ["a", "b", "a", None, "a"], "hour": [0, 0, 0, 1, 0],
                       "device": ["d1", "d1", "d2", "d1", "d1"], "seconds": [10, 20, 30, 40, 50],
                       "ratio": [0.5, 0.25, None, 1.0, 0.75]})
    got = fold(AGG, silver, chunk_rows, batch_rows=2).to_pylist()
    assert [(r["region"], r["hour"], r["n"], r["devices"], r["total"]) for r in got] == [
        ("a", 0, 3, 2, 90), ("b", 0, 1, 1, 20), (None, 1, 1, 1, 40)]
    assert pc.all(pc.equal(pa.array([r["avg"] for r in got]), pa.array([30.0, 20.0, 40.0]))).as_py()


# --------------------------------------------------------------------------- partitions


@pytest.mark.parametrize("values", [
    pa.array(["STB000000001", "", None, "é", "a" * 40, "STB000000001", "b" * 7, "b" * 8, "b" * 9]),
    pa.array([3, -1, None, 0, 2**62, 3], pa.int64()),
    pa.array([0.0, -0.0, 1.5, None, 1.5]),
    pa.array([True, False, None, True]),
    pa.array([datetime(2025, 5, 1), None, datetime(2025, 5, 1)], pa.timestamp("us")),
    pa.array(["x", "y", "x"], pa.large_string()),
])
def test_equal_values_share_a_partition_whatever_batch_they_come_in(values):
    whole = partition_of(values, 7)
    assert ((whole >= 0) & (whole < 7)).all()
    pieces = np.concatenate([partition_of(values.slice(i, 1), 7) for i in range(len(values))])
    assert pieces.tolist() == whole.tolist()  # offsets and slices change nothing
    chunked = pa.chunked_array([values.slice(0, 2), values.slice(2)])
    assert partition_of(chunked, 7).tolist() == whole.tolist()
    by_value = {}
    for value, part in zip(values.to_pylist(), whole.tolist(), strict=True):
        key = 0.0 if value == 0.0 and isinstance(value, float) else value  # -0.0 == 0.0
        assert by_value.setdefault(key, part) == part
    assert partition_of(values, 1).tolist() == [0] * len(values)


def test_ids_spread_over_the_partitions():
    ids = pa.array([f"STB{i:09d}" for i in range(20_000)])
    counts = np.bincount(partition_of(ids, 8), minlength=8)
    assert counts.min() > 20_000 / 8 * 0.8  # within 20 % of an even split


def test_spill_gives_back_each_partition_whole_and_in_order(tmp_path):
    spill = Spill(tmp_path, "probe", 3)
    assert list(spill.read_back()) == []  # nothing written, nothing read, no file left
    spill = Spill(tmp_path, "probe", 3)
    spill.write(pa.table({"v": [10, 11, 12, 13]}), np.array([2, 0, 2, 0]))
    spill.write(pa.table({"v": [14, 15]}), np.array([1, 2]))
    assert [t.column("v").to_pylist() for t in spill.read_back()] == [[11, 13], [14], [10, 12, 15]]
    assert not list(tmp_path.iterdir())
