"""Property: whatever the rows, every one is either in silver or in the rejects file."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import csv_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m7etl.core import layout
from m7etl.core.raw_to_silver import Thresholds, process_raw_file
from m7etl.exceptions import ConservationError
from m7etl.storage import LocalStorage

GOOD = ["1", "TF1", "general", "fr", "true", "basic", "1990-01-01", "2025-05-01 00:00:00"]
HEADER = ["channel_id", "channel_name", "genre", "language", "is_hd", "package", "launched_on",
          "updated_at"]
KEY = "raw/20250501/Channel_20250501.csv"

field_value = st.one_of(
    st.sampled_from(["", "0", "-1", "12", "99999", "abc", "true", "maybe", "2025-02-30",
                     "2025-05-01 00:00:00", "fr", "xx", "sports", "premium", "Canal+",
                     # once made a cast raise and the whole file quarantined:
                     "\u0663", "+7", "2025-05-0\u0663", "2025-05-01 00:00:60"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
            max_size=12),
)


def quote(value: str) -> str:
    if any(ch in value for ch in ',"\n') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


row = st.one_of(
    st.just(GOOD),
    st.lists(field_value, min_size=8, max_size=8),
    st.lists(field_value, min_size=1, max_size=11),  # wrong field counts too
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, min_size=1, max_size=40))
def test_rows_read_equals_valid_plus_rejected(tmp_path_factory, registry, rows):
    storage = LocalStorage(tmp_path_factory.mktemp("bucket"))
    lines = [HEADER] + [[quote(v) for v in r] for r in rows]
    # A line whose every field is empty (an empty line, or the header's number of empty
    # fields) holds no value: it is a blank line, not a row.
    data_rows = [r for r in lines[1:] if any(r) or len(r) not in (1, len(HEADER))]
    data = csv_bytes(lines)
    storage.write_bytes(KEY, data)
    result = process_raw_file(storage, KEY, registry, Thresholds(error_pct=100))
    if not data_rows:
        assert result.status == "quarantined"
        return
    assert result.rows_read == len(data_rows)
    assert result.lines_blank == len(rows) - len(data_rows)
    assert result.lines_read == data.count(b"\n")  # every line ends with LF, no CR in values
    assert result.rows_read == result.rows_valid + result.rows_rejected
    silver = pq.read_table(pa.BufferReader(storage.read_bytes(result.outputs["silver"])))
    assert silver.num_rows == result.rows_valid
    rejected_lines = set()
    if result.rows_rejected:
        rejects = pq.read_table(pa.BufferReader(storage.read_bytes(result.outputs["rejects"])))
        rejected_lines = set(rejects.column("line_number").to_pylist())
    assert len(rejected_lines) == result.rows_rejected
    assert rejected_lines.isdisjoint(silver.column("_line_number").to_pylist())


def _mutated(draw_data: st.DataObject, clean: bytes) -> bytes:
    """``clean`` with a few bytes flipped, inserted or cut, maybe truncated or gzipped."""
    data = bytearray(clean)
    for _ in range(draw_data.draw(st.integers(0, 4))):
        at = draw_data.draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw_data.draw(st.sampled_from(["flip", "insert", "cut"]))
        byte = draw_data.draw(st.sampled_from([0x00, 0x22, 0x2C, 0x0A, 0x0D, 0xFF, 0xC3, 0x3B, 0x20]))
        if action == "flip" and data:
            data[at] = byte
        elif action == "insert":
            data.insert(at, byte)
        elif data:
            del data[at]
    if draw_data.draw(st.booleans()):
        data = data[:draw_data.draw(st.integers(0, len(data)))]
    if draw_data.draw(st.integers(0, 4)) == 0:
        data = bytearray(gzip.compress(bytes(data), mtime=0))
    return bytes(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), rows=st.lists(row, min_size=0, max_size=12))
def test_any_bytes_end_quarantined_with_a_reason_or_conserved(tmp_path_factory, registry, data, rows):
    """Damaged files (bytes flipped, cut, NULs, bad UTF-8, gzip of garbage) never raise:
    either the file is quarantined with its reason, or every row read is valid or rejected."""
    storage = LocalStorage(tmp_path_factory.mktemp("bucket"))
    clean = csv_bytes([HEADER] + [[quote(v) for v in r] for r in rows])
    raw = _mutated(data, data.draw(st.one_of(st.binary(max_size=200), st.just(clean))))
    storage.write_bytes(KEY, raw)
    result = process_raw_file(storage, KEY, registry, Thresholds(error_pct=100))
    if result.status == "quarantined":
        assert result.reason and storage.exists(result.outputs["quarantine"])
        assert json.loads(storage.read_bytes(result.outputs["quarantine"] + ".reason.json"))["reason"]
        return
    assert result.rows_read == result.rows_valid + result.rows_rejected
    silver = pq.read_table(pa.BufferReader(storage.read_bytes(result.outputs["silver"])))
    assert silver.num_rows == result.rows_valid


def _channel_file(storage) -> None:
    bad = ["x", *GOOD[1:]]  # a type reject
    rows = [[str(i), *GOOD[1:]] for i in range(1, 6)]
    storage.write_bytes(KEY, csv_bytes([HEADER, *rows[:2], bad, *rows[2:]]))


@pytest.mark.parametrize("drop", ["silver", "rejects"])
def test_a_writer_losing_a_row_fails_the_file_and_publishes_nothing(local_storage, registry,
                                                                    monkeypatch, drop):
    """The counters are sums kept as batches pass: a writer that loses a row leaves them
    consistent with each other. Only reading back the written files can catch it."""
    import m7etl.core.raw_to_silver as r2s

    real = r2s._write_batch

    def lossy(silver, rejects, valid, rejected):
        if drop == "silver":
            valid = valid.slice(1)
        else:
            rejected = []
        real(silver, rejects, valid, rejected)

    monkeypatch.setattr(r2s, "_write_batch", lossy)
    _channel_file(local_storage)
    with pytest.raises(ConservationError) as caught:
        process_raw_file(local_storage, KEY, registry, Thresholds(error_pct=100))
    error = caught.value
    assert KEY in error.message and not error.retryable
    expected = ("the silver file holds 4 rows, 5 were counted valid" if drop == "silver" else
                "the rejects file covers 0 rows, 1 were counted rejected")
    assert expected in error.message
    assert local_storage.exists(KEY)  # the raw file stays for a replay
    assert not local_storage.exists(layout.silver_key("20250501", "Channel", KEY))
    assert not local_storage.exists(layout.rejects_key("20250501", "Channel", KEY))
