from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import csv_bytes

from m7etl.core import layout
from m7etl.core.raw_to_silver import Thresholds, _prefetch, process_raw_file

HEADER = ["channel_id", "channel_name", "genre", "language", "is_hd", "package", "launched_on",
          "updated_at"]
ROW = ["1", "TF1", "general", "fr", "true", "basic", "1990-01-01", "2025-05-01 00:00:00"]
KEY = "raw/20250501/Channel_20250501.csv"


def rows(n: int, start: int = 1) -> list[list[str]]:
    return [[str(i)] + ROW[1:] for i in range(start, start + n)]


def parquet(storage, key: str) -> pa.Table:
    return pq.read_table(pa.BufferReader(storage.read_bytes(key)))


def put(storage, data: bytes, key: str = KEY) -> str:
    storage.write_bytes(key, data)
    return key


@pytest.mark.parametrize("dialect", [
    {"delimiter": ","},
    {"delimiter": ";"},
    {"encoding": "utf-8-sig"},
    {"encoding": "cp1252", "delimiter": ";"},
    {"line_ending": "\r\n"},
    {"line_ending": "\r"},  # classic Mac files
    {"gzip": True},
])
def test_every_dialect_seen_in_practice_gives_the_same_silver(storage, registry, dialect):
    extra = ["4", "Télé Bretagne", "regional", "fr", "non", "", "", "2025-05-01 00:00:00"]
    data = [HEADER, *rows(3), extra]
    key = KEY + (".gz" if dialect.get("gzip") else "")
    put(storage, csv_bytes(data, **dialect), key)
    result = process_raw_file(storage, key, registry)
    assert (result.status, result.rows_read, result.rows_valid) == ("ok", 4, 4)
    silver = parquet(storage, result.outputs["silver"])
    assert silver.column("channel_name").to_pylist()[-1] == "Télé Bretagne"
    assert silver.column("is_hd").to_pylist() == [True, True, True, False]
    stem = "Channel_20250501.gz" if dialect.get("gzip") else "Channel_20250501"
    assert result.outputs["silver"] == f"silver/20250501/Channel/{stem}.parquet"


def test_silver_reads_back_with_the_contract_schema_the_coded_columns_as_strings(storage, registry):
    """Silver is written from dictionaries for the allowed-values columns and the source
    key (codes into a fixed dictionary), without the Arrow schema in the footer: a reader
    gets the contract's types, strings for those columns, and the values as written."""
    from m7etl.core.validate import coded_columns, silver_schema

    contract = registry["Channel"]
    assert {"genre", "package", "_source_key"} <= set(coded_columns(contract))
    extra = ["4", "Télé Bretagne", "regional", "fr", "non", "", "", "2025-05-01 00:00:00"]
    put(storage, csv_bytes([HEADER, *rows(3), extra, ["5", "X", "not-a-genre", *ROW[3:]]]))
    result = process_raw_file(storage, KEY, registry, Thresholds(error_pct=100.0))
    assert (result.rows_valid, result.rows_rejected) == (4, 1)
    silver = parquet(storage, result.outputs["silver"])
    assert silver.schema == silver_schema(contract)
    assert silver.column("genre").to_pylist() == ["general", "general", "general", "regional"]
    assert silver.column("package").to_pylist() == ["basic", "basic", "basic", None]
    assert set(silver.column("_source_key").to_pylist()) == {KEY}
    assert parquet(storage, result.outputs["rejects"]).column("rule").to_pylist() == ["allowed"]
    footer = pq.ParquetFile(pa.BufferReader(storage.read_bytes(result.outputs["silver"]))).metadata
    chunks = {footer.schema.column(k).name: footer.row_group(0).column(k) for k in range(footer.num_columns)}
    assert all(chunks[name].has_dictionary_page for name in ("genre", "package", "_source_key"))


def test_coded_columns_hold_each_allowed_value_once_and_an_empty_value_as_null():
    """The allowed values are the codes' dictionary: listed twice they are still one code
    (a dictionary with repeats is written plain), and an empty value is null even where ""
    is allowed (the codes are the cleaned values', not the raw text's)."""
    import numpy as np

    from m7etl.core.contracts import parse_contract
    from m7etl.core.validate import validate_batch

    contract = parse_contract({
        "dataset": "Box", "primary_key": ["k"], "gold": {"kind": "snapshot"},
        "columns": [{"name": "k", "type": "string", "required": True},
                    {"name": "c", "type": "string", "allowed": ["a", "b", "a", ""]}]}, "<box>")
    batch = pa.table({"k": ["1", "2", "3", "4"], "c": ["a", "", "b", "z"]})
    out = validate_batch(contract, batch, np.arange(2, 6), "raw/x.csv")
    coded = out.valid.column("c").combine_chunks()
    assert coded.dictionary.to_pylist() == ["a", "b", ""]
    assert coded.to_pylist() == ["a", None, "b"]
    assert out.rejects.column("line_number").to_pylist() == [5]


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"\n\n", "empty"),
    (csv_bytes([HEADER]), "header_only"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10, "binary"),
    (csv_bytes([["foo", "bar"], ["1", "2"]]), "bad_header"),
    (csv_bytes([HEADER[1:]] + [r[1:] for r in rows(2)]), "missing_columns"),
    (b"\x1f\x8b\x08\x00garbage-not-gzip", "gzip"),
])
def test_unreadable_files_are_quarantined_with_their_reason(storage, registry, data, reason):
    put(storage, data)
    result = process_raw_file(storage, KEY, registry)
    assert result.status == "quarantined" and result.reason.startswith(reason)
    target = layout.quarantine_key("20250501", KEY)
    assert not storage.exists(KEY) and storage.read_bytes(target) == data
    note = json.loads(storage.read_bytes(target + ".reason.json"))
    assert note["reason"] == reason and note["source_key"] == KEY


def test_a_file_of_an_unknown_dataset_is_quarantined(storage, registry):
    key = put(storage, b"a,b\n1,2\n", "raw/20250501/Billing_20250501.csv")
    result = process_raw_file(storage, key, registry)
    assert result.status == "quarantined" and result.reason.startswith("unknown_dataset")
    assert storage.exists("quarantine/20250501/Billing_20250501.csv")


def test_utf8_file_turning_cp1252_deep_inside_is_read_as_cp1252(local_storage, registry):
    # The first 256 KiB are plain ASCII, so the sniffer picks UTF-8; the accent comes later.
    body = [HEADER] + rows(5000) + [["9999", "Télé", "general", "fr", "1", "", "", "2025-05-01 00:00:00"]]
    put(local_storage, csv_bytes(body, encoding="cp1252"))
    result = process_raw_file(local_storage, KEY, registry)
    assert result.status == "ok" and result.rows_valid == 5001
    assert result.dialect["encoding"] == "cp1252"
    assert parquet(local_storage, result.outputs["silver"]).column("channel_name")[-1].as_py() == "Télé"


def test_a_broken_cp1252_row_deep_in_a_utf8_looking_file_is_one_reject(local_storage, registry):
    # Arrow cannot decode that row for the invalid-row callback: the file switches to cp1252
    # instead of being quarantined as a parse error.
    body = [HEADER] + rows(5000) + [["9998", "Télé", "general"]] + rows(1, start=9999)
    put(local_storage, csv_bytes(body, encoding="cp1252"))
    result = process_raw_file(local_storage, KEY, registry)
    assert (result.status, result.rows_read, result.rows_valid, result.rows_rejected) == ("ok", 5002, 5001, 1)
    assert result.dialect["encoding"] == "cp1252"
    rejects = parquet(local_storage, result.outputs["rejects"]).to_pylist()
    assert [(r["line_number"], r["rule"], r["raw_value"]) for r in rejects] == [
        (5002, "column_count", "9998,Télé,general")]


def test_the_handled_undecodable_row_leaves_no_traceback_on_stderr(tmp_path):
    """Arrow prints "Exception ignored ... UnicodeDecodeError" for that row unless filtered."""
    (tmp_path / KEY).parent.mkdir(parents=True)
    body = [HEADER] + rows(5000) + [["9998", "Télé", "general"]]
    (tmp_path / KEY).write_bytes(csv_bytes(body, encoding="cp1252"))
    code = ("import sys; from m7etl.storage import LocalStorage;"
            "from m7etl.core.contracts import load_registry;"
            "from m7etl.core.raw_to_silver import process_raw_file;"
            f"r = process_raw_file(LocalStorage(sys.argv[1]), {KEY!r}, load_registry());"
            "print(r.status, r.rows_rejected)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          check=False)
    assert (done.returncode, done.stdout.split(), done.stderr) == (0, ["ok", "1"], "")


@pytest.mark.parametrize("bom", [False, True])
def test_a_broken_row_of_a_utf8_file_holding_other_bytes_is_one_reject(local_storage, registry, bom):
    """Arrow cannot hand such a row over (it must decode it first): the file is read again
    with those bytes marked, so the row is a column_count reject showing them as \\xNN, a
    well-formed row with such bytes an encoding reject, and every accent elsewhere intact."""
    accented = [["1", "Télé", "general", "fr", "1", "", "", "2025-05-01 00:00:00"]]
    body = csv_bytes([HEADER] + accented + rows(5000, start=2))
    tail = "9998,Ciné,general\n9999,Ciné,general,fr,1,,,2025-05-01 00:00:00\n".encode("cp1252")
    data = ("\ufeff".encode() if bom else b"") + body + tail
    put(local_storage, data)
    result = process_raw_file(local_storage, KEY, registry)
    counts = (result.status, result.rows_read, result.rows_valid, result.rows_rejected)
    assert counts == ("ok", 5003, 5001, 2) and result.dialect["encoding"].startswith("utf-8")
    rejects = parquet(local_storage, result.outputs["rejects"]).to_pylist()
    assert sorted((r["line_number"], r["rule"], r["raw_value"]) for r in rejects) == [
        (5003, "column_count", "9998,Cin\\xe9,general"), (5004, "encoding", "Cin\\xe9")]
    names = parquet(local_storage, result.outputs["silver"]).column("channel_name").to_pylist()
    assert names[0] == "Télé" and not any("\uf7e9" in n for n in names)


@pytest.mark.parametrize("deep", [False, True], ids=["in the sniffed head", "past the head"])
def test_rows_of_a_utf8_file_holding_other_bytes_are_encoding_rejects(local_storage, registry, deep):
    """A UTF-8 file (accents in its head) with a few stray bytes, e.g. a value cut inside a
    multi-byte character by a fixed-width export: those rows are rejected, the rest kept intact."""
    accented = [["1", "Télé Bretagne", "regional", "fr", "1", "", "", "2025-05-01 00:00:00"]]
    filler = rows(5000, start=100) if deep else []
    cut = b"7,T\xc3,general,fr,1,,,2025-05-01 00:00:00\n"  # "Té" cut after the first byte of "é"
    cp1252 = "8,Ciné,general,fr,1,,,2025-05-01 00:00:00\n".encode("cp1252")
    last = b"9,Neuf,general,fr,1,,,2025-05-01 00:00:00\n"
    data = csv_bytes([HEADER] + accented + filler) + cut + cp1252 + last
    put(local_storage, data)
    result = process_raw_file(local_storage, KEY, registry, Thresholds(error_pct=100))
    assert result.dialect["encoding"] == "utf-8"
    n = len(filler)
    counts = (result.status, result.rows_read, result.rows_valid, result.rows_rejected)
    assert counts == ("ok", n + 4, n + 2, 2)
    rejects = parquet(local_storage, result.outputs["rejects"]).to_pylist()
    assert [(r["line_number"], r["column"], r["rule"], r["raw_value"]) for r in rejects] == [
        (n + 3, "channel_name", "encoding", "T\\xc3"), (n + 4, "channel_name", "encoding", "Cin\\xe9")]
    assert json.loads(rejects[1]["record"])["channel_id"] == "8"
    names = parquet(local_storage, result.outputs["silver"]).column("channel_name").to_pylist()
    assert names[0] == "Télé Bretagne" and names[-1] == "Neuf"


def test_a_bom_file_keeps_its_non_utf8_rows_as_encoding_rejects(local_storage, registry):
    cp1252_row = "3,Télé,general,fr,1,,,2025-05-01 00:00:00\n".encode("cp1252")
    data = "\ufeff".encode() + csv_bytes([HEADER, *rows(2)]) + cp1252_row
    put(local_storage, data)
    result = process_raw_file(local_storage, KEY, registry, Thresholds(error_pct=100))
    assert (result.status, result.rows_valid, result.rows_rejected) == ("ok", 2, 1)
    assert [r["rule"] for r in parquet(local_storage, result.outputs["rejects"]).to_pylist()] == ["encoding"]


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_line_numbers_count_quoted_newlines_and_broken_rows(storage, registry, eol):
    """LF, CRLF and a bare CR each end a line, inside quoted values too (as editors count)."""
    data = [HEADER,
            ["1", f'"Multi{eol}line{eol}name"', "general", "fr", "1", "", "", "2025-05-01 00:00:00"],  # 2-4
            ["2", "Two", "general", "fr", "1"],  # line 5: too few fields
            ["x", "Bad id", "general", "fr", "1", "", "", "2025-05-01 00:00:00"],  # line 6
            ["4", "Four", "general", "fr", "1", "", "", "2025-05-01 00:00:00", "extra"],  # line 7
            ["5", "Five", "general", "fr", "1", "", "", "2025-05-01 00:00:00"],  # line 8
            ["6", f'"Six{eol}lines"', "general"],  # lines 9-10: too few fields
            ["7", "Seven", "general", "fr", "1", "", "", "2025-05-01 00:00:00"]]  # line 11
    put(storage, csv_bytes(data, line_ending=eol))
    result = process_raw_file(storage, KEY, registry, Thresholds(error_pct=100))
    assert (result.rows_read, result.rows_valid, result.rows_rejected) == (7, 3, 4)
    rejects = parquet(storage, result.outputs["rejects"]).to_pylist()
    assert sorted((r["line_number"], r["rule"]) for r in rejects) == [
        (5, "column_count"), (6, "type"), (7, "column_count"), (9, "column_count")]
    silver = parquet(storage, result.outputs["silver"])
    assert silver.column("_line_number").to_pylist() == [2, 8, 11]
    assert silver.column("channel_name")[0].as_py() == f"Multi{eol}line{eol}name"


def test_above_the_error_threshold_silver_is_not_promoted_and_rejects_are_kept(storage, registry):
    data = [HEADER] + rows(18) + [["bad"] + ROW[1:], ["", *ROW[1:]]]  # 2 of 20 rejected = 10 %
    put(storage, csv_bytes(data))
    failed = process_raw_file(storage, KEY, registry, Thresholds(error_pct=5.0))
    assert failed.status == "failed_threshold" and "10.00%" in failed.reason
    assert "silver" not in failed.outputs
    assert not storage.exists("silver/20250501/Channel/Channel_20250501.parquet")
    assert parquet(storage, failed.outputs["rejects"]).num_rows == 2
    assert storage.exists(KEY)  # raw stays, ready for a replay
    passed = process_raw_file(storage, KEY, registry, Thresholds(error_pct=10.0))
    assert passed.status == "ok" and storage.exists(passed.outputs["silver"])
    again = process_raw_file(storage, KEY, registry, Thresholds(error_pct=5.0))
    assert again.status == "failed_threshold"
    assert not storage.exists(passed.outputs["silver"])  # a stale promotion is withdrawn


def test_warning_threshold_flags_files_with_many_soft_warnings(local_storage, registry):
    header = ["device_id", "subscriber_id", "model", "firmware_version", "region",
              "activation_date", "last_seen_at", "status", "signal_quality_pct"]
    good = ["STB000000001", "SUB00000001", "M7-HD100", "1.2.3", "Bretagne", "2020-01-01",
            "2025-05-01 10:00:00", "active"]
    data = [header] + [[f"STB{i:09d}"] + good[1:] + ["10" if i < 3 else "80"] for i in range(10)]
    put(local_storage, csv_bytes(data), "raw/20250501/Device_20250501.csv")
    result = process_raw_file(local_storage, "raw/20250501/Device_20250501.csv", registry,
                              Thresholds(warning_pct=25.0))
    assert (result.rows_warned, result.warned_pct, result.warning) == (3, 30.0, True)
    assert result.status == "ok"


def test_reprocessing_writes_the_same_objects(storage, registry):
    put(storage, csv_bytes([HEADER] + rows(50) + [["bad"] + ROW[1:]]))
    first = process_raw_file(storage, KEY, registry)
    snapshot = {k: storage.read_bytes(k) for k in (first.outputs["silver"], first.outputs["rejects"])}
    second = process_raw_file(storage, KEY, registry)
    assert second.outputs == first.outputs
    assert {k: storage.read_bytes(k) for k in snapshot} == snapshot


def test_streaming_in_small_blocks_gives_the_same_result(local_storage, registry, monkeypatch):
    import m7etl.core.csvread as csvread

    data = [HEADER] + rows(3000) + [["2", '"a\nb"', "general", "fr", "1", "", "", "2025-05-01 00:00:00"],
                                    ["x", "bad"]] + rows(3000, start=5000)
    put(local_storage, csv_bytes(data))
    whole = process_raw_file(local_storage, KEY, registry, Thresholds(error_pct=100))
    big = parquet(local_storage, whole.outputs["silver"])
    monkeypatch.setattr(csvread, "BLOCK_SIZE", 4096)
    original = csvread.read_batches
    monkeypatch.setattr("m7etl.core.raw_to_silver.read_batches",
                        lambda stream, dialect, **kw: original(stream, dialect, block_size=4096,
                                                               **kw))
    small = process_raw_file(local_storage, KEY, registry, Thresholds(error_pct=100))
    assert (small.rows_read, small.rows_valid, small.rows_rejected) == (6002, 6001, 1)
    assert parquet(local_storage, small.outputs["silver"]).equals(big)
    rejects = parquet(local_storage, small.outputs["rejects"]).to_pylist()
    assert [(r["line_number"], r["rule"]) for r in rejects] == [(3004, "column_count")]


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "m7-csv-reader" and t.is_alive()]


def test_the_reader_thread_ends_when_the_consumer_stops_early():
    """A consumer that fails mid-file must not leave the reader blocked on a full queue
    (a warm Lambda container would keep it, and its open stream, forever)."""
    produced = threading.Event()

    def items():
        yield 1
        yield 2
        produced.set()

    stream = _prefetch(items(), depth=1)
    assert next(stream) == 1
    assert produced.wait(5)  # item 2 fills the queue; the reader now offers the end mark
    stream.close()
    deadline = time.monotonic() + 5
    while _reader_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _reader_threads() == []


def test_a_reader_error_reaches_the_consumer():
    def items():
        yield 1
        raise OSError("connection reset")

    stream = _prefetch(items(), depth=1)
    assert next(stream) == 1
    with pytest.raises(OSError, match="connection reset"):
        next(stream)


def _with_blocks(monkeypatch, block_size: int, max_block_size: int) -> None:
    """Make raw_to_silver read with small blocks, so a row of a few KiB is "too long"
    (the same code path as a 16 MiB row with the real 8 MiB block)."""
    import m7etl.core.csvread as csvread

    original = csvread.read_batches
    monkeypatch.setattr("m7etl.core.raw_to_silver.read_batches", lambda stream, dialect, **kw: original(
        stream, dialect, block_size=block_size, max_block_size=max_block_size, **kw))


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_blank_lines_keep_physical_line_numbers_and_are_counted(storage, registry, eol):
    bad = ["x", *ROW[1:]]
    data = [HEADER, rows(1)[0], [], [], bad, [], rows(1, start=3)[0], []]  # lines 1-8, 8 blank
    put(storage, csv_bytes(data, line_ending=eol))
    result = process_raw_file(storage, KEY, registry, Thresholds(error_pct=100))
    assert parquet(storage, result.outputs["silver"]).column("_line_number").to_pylist() == [2, 7]
    rejects = parquet(storage, result.outputs["rejects"]).to_pylist()
    assert [(r["line_number"], r["rule"]) for r in rejects] == [(5, "type")]
    counts = (result.rows_read, result.rows_valid, result.rows_rejected, result.lines_blank)
    assert counts == (3, 2, 1, 4)
    assert result.lines_read == 8 == 1 + result.rows_valid + result.rows_rejected + result.lines_blank
    report = json.loads(storage.read_bytes(result.outputs["report"]))
    assert (report["lines_read"], report["lines_blank"]) == (8, 4)


def test_lines_of_spaces_delimiters_or_quoted_blank_lines(storage, registry):
    """A line of spaces is a one-field row (as Arrow reads it): a column_count reject. A line of
    delimiters only holds no value: blank. An empty line inside a quoted value is the row's."""
    data = [HEADER,
            rows(1)[0],  # line 2
            ["   "],  # line 3: one field
            [""] * 8,  # line 4: ",,,,,,," (8 empty fields)
            ["4", '"Para one\n\nPara two"', *ROW[2:]],  # lines 5-7
            ["\t"],  # line 8
            rows(1, start=9)[0]]  # line 9
    put(storage, csv_bytes(data))
    result = process_raw_file(storage, KEY, registry, Thresholds(error_pct=100))
    assert (result.rows_read, result.rows_rejected, result.lines_blank, result.lines_read) == (5, 2, 1, 9)
    rejects = parquet(storage, result.outputs["rejects"]).to_pylist()
    assert [(r["line_number"], r["rule"]) for r in rejects] == [(3, "column_count"), (8, "column_count")]
    silver = parquet(storage, result.outputs["silver"])
    assert silver.column("_line_number").to_pylist() == [2, 5, 9]


def test_a_row_longer_than_the_block_is_read_with_a_larger_block(local_storage, registry):
    """A 17 MB value (over the 8 MiB block, beyond what Arrow can straddle): the file was
    quarantined as a parse error; now the row is read and judged like any other."""
    long_name = "x" * (17 * 1024 * 1024)
    data = [HEADER, rows(1)[0], ["2", long_name, *ROW[2:]], rows(1, start=3)[0]]
    put(local_storage, csv_bytes(data))
    result = process_raw_file(local_storage, KEY, registry, Thresholds(error_pct=100))
    assert (result.status, result.rows_read, result.rows_valid, result.rows_rejected) == ("ok", 3, 2, 1)
    rejects = parquet(local_storage, result.outputs["rejects"]).to_pylist()
    assert [(r["line_number"], r["rule"], len(r["raw_value"])) for r in rejects] == [
        (3, "max_length", len(long_name))]
    assert parquet(local_storage, result.outputs["silver"]).column("_line_number").to_pylist() == [2, 4]


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_a_row_over_the_block_limit_alone_is_rejected(local_storage, registry, monkeypatch, eol):
    """Blocks of 1 KiB growing to 4 KiB: a 3 KB row is read (the block grows), a 20 KB row
    with quoted line breaks is cut out as row_too_long, and every other row keeps its line."""
    _with_blocks(monkeypatch, 1024, 4096)
    grown = ["2", "x" * 3000, *ROW[2:]]
    too_long = ["3", '"' + f"a{eol}b" * 5000 + '"', *ROW[2:]]  # 5000 breaks: lines 4-5004
    data = [HEADER, rows(1)[0], grown, too_long, *rows(50, start=4)]
    put(local_storage, csv_bytes(data, line_ending=eol))
    result = process_raw_file(local_storage, KEY, registry, Thresholds(error_pct=100))
    assert (result.status, result.rows_read, result.rows_valid, result.rows_rejected) == ("ok", 53, 51, 2)
    assert result.lines_read == 1 + 2 + 5001 + 50
    rejects = sorted(parquet(local_storage, result.outputs["rejects"]).to_pylist(),
                     key=lambda r: r["line_number"])
    assert [(r["line_number"], r["rule"]) for r in rejects] == [(3, "max_length"), (4, "row_too_long")]
    assert rejects[1]["raw_value"].startswith(f'3,"a{eol}b')
    assert f"{len(csv_bytes([too_long], line_ending=eol)) - len(eol)} bytes" in rejects[1]["message"]
    lines = parquet(local_storage, result.outputs["silver"]).column("_line_number").to_pylist()
    assert lines == [2, *range(5005, 5055)]


def test_a_long_row_in_a_gzip_file_on_s3_is_read_again_from_a_new_stream(s3_storage, registry,
                                                                          monkeypatch):
    """Neither an S3 body nor a gzip stream can rewind: raw_to_silver hands the reader a way
    to open the object again. Without it the file was quarantined as row_too_long."""
    import gzip

    _with_blocks(monkeypatch, 1024, 4096)
    data = [HEADER, rows(1)[0], ["2", "x" * 3000, *ROW[2:]],
            ["3", "y" * 20000, *ROW[2:]], *rows(20, start=4)]
    key = put(s3_storage, gzip.compress(csv_bytes(data)), key=KEY + ".gz")
    result = process_raw_file(s3_storage, key, registry, Thresholds(error_pct=100))
    assert (result.status, result.rows_read, result.rows_valid, result.rows_rejected) == ("ok", 23, 21, 2)
    rejects = sorted(parquet(s3_storage, result.outputs["rejects"]).to_pylist(),
                     key=lambda r: r["line_number"])
    assert [(r["line_number"], r["rule"]) for r in rejects] == [(3, "max_length"), (4, "row_too_long")]
