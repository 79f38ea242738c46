"""The write_pandas fallback in bounded batches, against fakesnow.

What is observed is what the loader hands to ``pandas_tools.write_pandas`` (rows per call),
not a timing or a process's memory. fakesnow's write_pandas inserts the frame straight into
DuckDB: it does not create the temporary stage, PUT the Parquet chunks or run the COPY that
the real connector does (so neither the connector's own disk use nor its file format
options are exercised here), and it never checks roles or grants.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from m7etl.storage import LocalStorage
from m7etl.warehouse import loader
from m7etl.warehouse.loader import FAILED, LOADED, load_day
from warehouse.support import DAY1, query, scalar

DEVICE_KEY = f"gold/Device_{DAY1}.parquet"


class NoWholeReads(LocalStorage):
    """The data folder, with whole-object reads refused: the loader must stream the file."""

    def read_bytes(self, key):
        raise AssertionError(f"read_bytes({key}) called")


@pytest.fixture
def handed(conn):
    """The frames handed to write_pandas (rows per call); set inside fakesnow's patch (after
    ``conn``) and undone before it, so the connector's own function is restored last."""
    import snowflake.connector.pandas_tools as pandas_tools

    fake = pandas_tools.write_pandas
    calls: list[int] = []
    failures: dict[int, Exception] = {}

    def spy(connection, frame, table_name, **kwargs):
        calls.append(len(frame))
        if len(calls) in failures:
            raise failures[len(calls)]
        return fake(connection, frame, table_name, **kwargs)

    pandas_tools.write_pandas = spy
    spy.calls, spy.failures = calls, failures
    try:
        yield spy
    finally:
        pandas_tools.write_pandas = fake


def per_row_bytes(path) -> int:
    """The file's uncompressed data per row, from its footer (what BATCH_BYTES bounds)."""
    meta = pq.read_metadata(path)
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return size // meta.num_rows


def test_rows_per_write_pandas_call_stay_under_the_row_bound(conn, registry, data_dir, handed,
                                                              monkeypatch):
    monkeypatch.setattr(loader, "BATCH_ROWS", 50)
    source = NoWholeReads(data_dir)
    [r] = load_day(conn, registry, DAY1, source=source, run_id="r", datasets=["Device"])
    assert (r.status, r.rows_in_file, r.rows_loaded) == (LOADED, 120, 120), r.message
    assert handed.calls == [50, 50, 20]  # the old loader handed all 120 rows at once
    gold = pq.read_table(source.describe(DEVICE_KEY)).to_pylist()
    assert sorted(query(conn, "SELECT * FROM DEVICE"), key=repr) == sorted(
        (tuple(row.values()) for row in gold), key=repr)


def test_rows_per_call_stay_under_the_byte_bound(conn, registry, source, handed, monkeypatch):
    row = per_row_bytes(source.describe(DEVICE_KEY))
    monkeypatch.setattr(loader, "BATCH_BYTES", 40 * row)
    [r] = load_day(conn, registry, DAY1, source=source, run_id="r", datasets=["Device"])
    assert r.status == LOADED and r.rows_loaded == 120, r.message
    assert handed.calls == [40, 40, 40]  # 40 rows of the file's data per call, not 120


def test_a_failed_batch_leaves_the_table_and_audit_as_they_were(conn, registry, source, handed,
                                                                monkeypatch):
    from snowflake.connector.errors import ProgrammingError

    [first] = load_day(conn, registry, DAY1, source=source, run_id="r1", datasets=["Device"])
    before = sorted(query(conn, "SELECT * FROM DEVICE"), key=repr)
    monkeypatch.setattr(loader, "BATCH_ROWS", 50)
    handed.calls.clear()
    handed.failures[2] = ProgrammingError(msg="warehouse suspended")
    [r] = load_day(conn, registry, DAY1, source=source, run_id="r2", datasets=["Device"])
    assert r.status == FAILED
    assert r.message == ("Snowflake refused the load of gold/Device_20250501.parquet into "
                         "DEVICE: warehouse suspended")
    assert handed.calls == [50, 50]  # the second batch failed: no third one was sent
    assert sorted(query(conn, "SELECT * FROM DEVICE"), key=repr) == before
    assert scalar(conn, "SELECT COUNT(*) FROM LOAD_AUDIT") == 1 and first.status == LOADED
    with pytest.raises(ProgrammingError, match="M7_LOAD_DEVICE"):  # the staging table is gone
        scalar(conn, "SELECT COUNT(*) FROM M7_LOAD_DEVICE")


def test_batch_rows_from_the_footer(source):
    meta = pq.read_metadata(source.describe(DEVICE_KEY))
    row = per_row_bytes(source.describe(DEVICE_KEY))
    assert loader.batch_rows(meta, max_rows=1000, max_bytes=10 * row) == 10
    assert loader.batch_rows(meta, max_rows=7, max_bytes=10 ** 9) == 7
    assert loader.batch_rows(meta, max_rows=1000, max_bytes=1) == 1  # never zero
