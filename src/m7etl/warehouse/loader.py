"""Load gold files into Snowflake: one transaction per dataset and day, re-runnable.

For each dataset and day: the gold object ``gold/<Dataset>_YYYYMMDD.parquet`` is read for
its checksum and row count, then one transaction deletes the day's rows, loads the file,
checks that the rows now in the table for that day equal the rows in the file (else it
rolls back and fails with both counts), records a ``LOAD_AUDIT`` row and commits. A
reload therefore leaves the same rows, never duplicates.

Two load paths:

- ``copy`` (production): ``COPY INTO <table> FROM @<stage> FILES=(...)`` from an external
  stage over the data bucket's ``gold/`` folder; Snowflake reads S3 itself and no data
  passes through the job. Locally and in tests the same statement runs against fakesnow
  with a ``file://`` stage.
- ``write_pandas`` (fallback, no stage configured): the file goes through the connector
  into a temporary staging table first (write_pandas runs DDL, which would commit an open
  transaction), then one transaction swaps the day from the staging table.

A missing gold file is an error naming the key, unless the dataset had no silver input
that day (then it is skipped, and the result says so).

This module must stay valid on Python 3.9 (the Glue job imports it).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from m7etl.core import layout
from m7etl.core.contracts import Contract
from m7etl.exceptions import M7Error, UsageError
from m7etl.warehouse import sql

log = logging.getLogger("m7etl.warehouse")

LOADED = "loaded"
SKIPPED_NO_INPUT = "skipped_no_input"
FAILED = "failed"
PATH_COPY = "copy"
PATH_WRITE_PANDAS = "write_pandas"


class LoadError(M7Error):
    """A dataset's day could not be loaded (the transaction was rolled back)."""


@dataclass
class LoadResult:
    """What happened to one dataset and day (goes into the execution log as ``load``)."""

    dataset: str
    day: str
    status: str
    table: str
    rows_in_file: int | None = None
    rows_loaded: int | None = None
    source_key: str | None = None
    checksum: str | None = None
    path: str | None = None
    message: str = ""
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def select_contracts(contracts: Iterable[Contract],
                     datasets: Iterable[str] | None) -> list[Contract]:
    """The contracts to load, in registry order; unknown names are a clear error."""
    available = list(contracts)
    if not datasets:
        return available
    by_name = {c.dataset.lower(): c for c in available}
    wanted = [d.strip() for d in datasets if d and d.strip()]
    unknown = [d for d in wanted if d.lower() not in by_name]
    if unknown:
        raise UsageError(
            f"Unknown dataset(s): {', '.join(unknown)}.",
            hint=f"Use one of {', '.join(c.dataset for c in available)}.")
    keep = {d.lower() for d in wanted}
    return [c for c in available if c.dataset.lower() in keep]


def _scalar(cursor, statement: str):
    cursor.execute(statement)
    row = cursor.fetchone()
    return row[0] if row else None


def _rows_in_parquet(data: bytes, key: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise LoadError(f"Gold file {key} is not a readable Parquet file ({exc}).",
                        hint="Run silver_to_gold for that day again, then load again.") from None


def _utc_now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")  # noqa: UP017 - Python 3.9


def ensure_tables(conn, contracts: Iterable[Contract]) -> None:
    """Create the gold tables and LOAD_AUDIT when missing (DDL: outside any transaction)."""
    cur = conn.cursor()
    cur.execute(sql.create_audit_table_sql())
    for contract in contracts:
        cur.execute(sql.create_gold_table_sql(contract))


def missing_columns(conn, contract: Contract) -> list[sql.GoldColumn]:
    """Contract columns the existing table lacks (a contract that gained a column)."""
    cur = conn.cursor()
    cur.execute(sql.table_columns_sql(sql.table_name(contract.dataset)))
    present = {str(row[0]).lower() for row in cur.fetchall()}
    if not present:  # information_schema not available: nothing to compare
        return []
    return [c for c in sql.gold_columns(contract) if c.name.lower() not in present]


def _write_pandas_staging(conn, contract: Contract, data: bytes) -> str:
    """Fill a temporary staging table with the gold file through the connector."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import snowflake.connector.pandas_tools as pandas_tools  # via the module: fakesnow patches it

    staging = sql.staging_table_name(contract.dataset)
    conn.cursor().execute(sql.create_staging_table_sql(contract))
    table = pq.read_table(pa.BufferReader(data))
    nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    frame = table.to_pandas(types_mapper=nullable.get)
    success, _chunks, _rows, output = pandas_tools.write_pandas(
        conn, frame, staging, quote_identifiers=False, auto_create_table=False,
        use_logical_type=True)
    if not success:
        raise LoadError(f"write_pandas could not stage {contract.dataset}: {output}.")
    return staging


def _run_copy(cursor, table: str, stage: str, file_name: str) -> None:
    cursor.execute(sql.copy_sql(table, stage, file_name))
    rows = cursor.fetchall() or []
    for row in rows:
        status = str(row[1]).upper() if len(row) > 1 else ""
        if status and status not in ("LOADED", "PARTIALLY_LOADED"):
            detail = row[6] if len(row) > 6 and row[6] else status
            raise LoadError(f"COPY of {file_name} from @{stage} reported {status}: {detail}.")


def load_dataset(conn, contract: Contract, day: str, *, source, stage: str | None = None,
                 run_id: str) -> LoadResult:
    """Replace one dataset's day in its table with the gold file, in one transaction."""
    started = time.perf_counter()
    table = sql.table_name(contract.dataset)
    key = layout.gold_key(contract.dataset, day)
    result = LoadResult(contract.dataset, day, FAILED, table, source_key=key,
                        path=PATH_COPY if stage else PATH_WRITE_PANDAS)

    def done(status: str, message: str) -> LoadResult:
        result.status = status
        result.message = message
        result.duration_s = round(time.perf_counter() - started, 3)
        (log.warning if status == FAILED else log.info)(
            "%s %s %s: %s", contract.dataset, day, status, message)
        return result

    try:
        if not source.exists(key):
            silver = [o.key for o in source.list(layout.silver_prefix(day, contract.dataset))
                      if o.key.endswith(".parquet")]
            result.path = None
            if silver:
                return done(FAILED, (
                    f"Gold file {source.describe(key)} is missing although {len(silver)} silver "
                    f"file(s) exist for {contract.dataset} on {day}; run silver_to_gold for that "
                    "day, then load again."))
            kept = _scalar(conn.cursor(), sql.count_day_sql(table, day)) or 0
            note = f"; {table} keeps {kept} row(s) of that day from an earlier load" if kept else ""
            return done(SKIPPED_NO_INPUT, (
                f"No input for {contract.dataset} on {day} (no silver file, no gold file "
                f"{key}); nothing loaded{note}."))
        data = source.read_bytes(key)
        result.checksum = hashlib.sha256(data).hexdigest()
        result.rows_in_file = _rows_in_parquet(data, key)
        lacking = missing_columns(conn, contract)
        if lacking:
            fix = "; ".join(sql.add_column_sql(table, c) for c in lacking)
            return done(FAILED, (
                f"Table {table} lacks column(s) {', '.join(c.name for c in lacking)} that the "
                f"contract declares; nothing loaded. Add them first: {fix}"))
        staging = None
        if not stage:
            staging = _write_pandas_staging(conn, contract, data)
        cur = conn.cursor()
        cur.execute("BEGIN")
        try:
            cur.execute(sql.delete_day_sql(table, day))
            if stage:
                _run_copy(cur, table, stage, sql.gold_file_name(contract.dataset, day))
            else:
                cur.execute(sql.insert_from_staging_sql(table, staging,
                                                        sql.gold_columns(contract)))
            loaded = int(_scalar(cur, sql.count_day_sql(table, day)) or 0)
            result.rows_loaded = loaded
            if loaded != result.rows_in_file:
                raise LoadError(
                    f"{table} holds {loaded} row(s) for {day} after the load but the gold file "
                    f"{key} holds {result.rows_in_file}; rolled back (the table keeps its "
                    "previous rows for that day).",
                    hint="Check that the file's business_date is that day, then load again.")
            cur.execute(sql.audit_insert_sql(
                dataset=contract.dataset, day=day, source_object=source.describe(key),
                checksum=result.checksum, rows_in_file=result.rows_in_file,
                rows_loaded=loaded, load_path=result.path, run_id=run_id,
                loaded_at=_utc_now_text()))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            if staging:
                conn.cursor().execute(sql.drop_table_sql(staging))
        return done(LOADED, f"Replaced {table} rows of {day} with {loaded} row(s) from {key} "
                            f"({result.path}).")
    except M7Error as exc:
        return done(FAILED, str(exc))
    except Exception as exc:  # the connector's errors (snowflake.connector.errors.Error)
        if not type(exc).__module__.startswith("snowflake"):
            raise
        message = getattr(exc, "msg", None) or str(exc)
        return done(FAILED, f"Snowflake refused the load of {key} into {table}: {message}")


def load_day(conn, contracts: Iterable[Contract], day: str, *, source, stage: str | None = None,
             run_id: str, datasets: Iterable[str] | None = None) -> list[LoadResult]:
    """Load every selected dataset's gold file of ``day`` (one transaction each).

    ``source`` is the data bucket (a :class:`m7etl.storage.Storage`); ``stage`` the external
    stage over its ``gold/`` folder (None or empty: the write_pandas fallback). A failed
    dataset does not stop the others; the caller decides what a failure means.
    """
    try:
        layout.parse_day(day)
    except ValueError as exc:
        raise UsageError(f"Day to load: {exc}.", hint="Use YYYYMMDD, e.g. 20250501.") from None
    if stage:
        sql.check_object_name(stage, "Stage")
    selected = select_contracts(contracts, datasets)
    ensure_tables(conn, selected)
    return [load_dataset(conn, c, day, source=source, stage=stage or None, run_id=run_id)
            for c in selected]


def table_counts(conn, contracts: Iterable[Contract]) -> dict[str, int]:
    """Rows in each gold table now (for the summary)."""
    cur = conn.cursor()
    return {sql.table_name(c.dataset): int(_scalar(cur, sql.count_sql(sql.table_name(c.dataset))))
            for c in contracts}
