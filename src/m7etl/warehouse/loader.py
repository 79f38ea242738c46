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
  transaction), in bounded batches (``BATCH_ROWS``, ``BATCH_BYTES``: one write_pandas per
  batch, so a 1 GB Glue Python shell never holds the whole file as Arrow and pandas), then
  one transaction swaps the day from the staging table. A failed batch leaves only the
  temporary table, dropped; the gold table is touched only by the swap.

The gold file is downloaded to a temporary folder and hashed in blocks (its checksum and
row count go into ``LOAD_AUDIT``), never read into memory whole.

Tables are created only when missing: one ``INFORMATION_SCHEMA.COLUMNS`` query per load
finds them, and an existing table that lacks a contract column or has one of another type
fails that dataset before anything is read, naming the columns and the ALTER TABLE to run.

A missing gold file is an error naming the key, unless the dataset had no silver input
that day (then it is skipped, and the result says so).

This module must stay valid on Python 3.9 (the Glue job imports it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
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
# One write_pandas call gets at most this many rows, and about this many bytes of decoded
# (uncompressed Parquet) data. pandas holds text as Python objects, several times that: a
# 100,000-row Device batch grows the process by about 250 MB (2M rows at once: 1.7 GB).
BATCH_ROWS = 100_000
BATCH_BYTES = 32 * 1024 * 1024
HASH_BLOCK = 1024 * 1024


class LoadError(M7Error):
    """A dataset's day could not be loaded (the transaction was rolled back)."""


class TableMismatchError(LoadError):
    """An existing table does not match its contract: names the columns and the fix."""


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


def _gold_file(source, key: str, folder: str) -> tuple[str, str, int]:
    """Download the gold object to ``folder``: (local path, sha256, rows in its footer)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = os.path.join(folder, layout.base_name(key))
    source.download_file(key, path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise LoadError(f"Gold file {key} is not a readable Parquet file ({exc}).",
                        hint="Run silver_to_gold for that day again, then load again.") from None
    return path, digest.hexdigest(), rows


def _utc_now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")  # noqa: UP017 - Python 3.9


def table_problem(table: str, expected: Sequence[sql.GoldColumn],
                  found: Sequence[tuple]) -> TableMismatchError | None:
    """Compare an existing table's columns (name, data type, scale) with the contract's.

    A missing column or one of another type is an error with the ALTER TABLE statements
    that fix it; columns the contract does not know are left alone (loaded as NULL).
    """
    present = {str(name).lower(): (data_type, scale) for name, data_type, scale in found}
    missing = [c for c in expected if c.name.lower() not in present]
    wrong = [(c, present[c.name.lower()][0]) for c in expected
             if c.name.lower() in present and not sql.type_matches(c.type,
                                                                   *present[c.name.lower()])]
    if not missing and not wrong:
        return None
    parts = []
    if missing:
        parts.append(f"lacks column(s) {', '.join(c.name for c in missing)}")
    if wrong:
        parts.append("has " + ", ".join(f"{c.name} as {data_type} (the contract says {c.type})"
                                        for c, data_type in wrong))
    fixes = ([sql.add_column_sql(table, c) for c in missing]
             + [sql.retype_column_sql(table, c) for c, _ in wrong])
    return TableMismatchError(
        f"Table {table} {' and '.join(parts)}; nothing loaded. Fix it first: "
        f"{'; '.join(fixes)}",
        hint="Then load again, and reload the earlier days to fill the new columns.")


def ensure_tables(conn, contracts: Iterable[Contract]) -> dict[str, TableMismatchError]:
    """Create the missing gold tables and LOAD_AUDIT; check the existing ones.

    One INFORMATION_SCHEMA query finds what exists; DDL runs only for what is missing (it
    commits, and needs CREATE TABLE on the schema, which a loader's role may lack once the
    tables exist). Returns the problems of existing tables by table name.
    """
    wanted = {sql.AUDIT_TABLE: (sql.audit_columns(), sql.create_audit_table_sql())}
    for contract in contracts:
        wanted[sql.table_name(contract.dataset)] = (sql.gold_columns(contract),
                                                    sql.create_gold_table_sql(contract))
    cur = conn.cursor()
    cur.execute(sql.table_columns_sql(list(wanted)))
    found: dict[str, list[tuple]] = {}
    for table, column, data_type, scale in cur.fetchall():
        found.setdefault(str(table).upper(), []).append((column, data_type, scale))
    problems = {}
    for table, (columns, create) in wanted.items():
        if table not in found:
            cur.execute(create)
            continue
        problem = table_problem(table, columns, found[table])
        if problem:
            problems[table] = problem
    return problems


def batch_rows(metadata, max_rows: int = BATCH_ROWS, max_bytes: int = BATCH_BYTES) -> int:
    """Rows per write_pandas call: at most ``max_rows``, and about ``max_bytes`` of the
    file's uncompressed data (its footer's size per row)."""
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    per_row = max(1, size // max(1, metadata.num_rows))
    return max(1, min(max_rows, max_bytes // per_row))


def _write_pandas_staging(conn, contract: Contract, path: str, staging: str) -> None:
    """Fill the temporary staging table from the gold file, one write_pandas per batch."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import snowflake.connector.pandas_tools as pandas_tools  # via the module: fakesnow patches it

    conn.cursor().execute(sql.create_staging_table_sql(contract))
    nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    parquet = pq.ParquetFile(path, buffer_size=HASH_BLOCK)  # pages streamed, not whole chunks
    rows = batch_rows(parquet.metadata, BATCH_ROWS, BATCH_BYTES)  # read now: tests lower them
    # A gold file of no row group (a day of empty silver files) has no batch; iter_batches
    # refuses such a file (OSError) instead of yielding none.
    batches = parquet.iter_batches(batch_size=rows) if parquet.metadata.num_row_groups else ()
    for batch in batches:
        frame = pa.Table.from_batches([batch]).to_pandas(types_mapper=nullable.get)
        del batch
        success, _chunks, _rows, output = pandas_tools.write_pandas(
            conn, frame, staging, quote_identifiers=False, auto_create_table=False,
            overwrite=False, use_logical_type=True)
        if not success:
            raise LoadError(f"write_pandas could not stage {contract.dataset}: {output}.")


def _run_copy(cursor, table: str, stage: str, file_name: str) -> None:
    cursor.execute(sql.copy_sql(table, stage, file_name))
    rows = cursor.fetchall() or []
    for row in rows:
        status = str(row[1]).upper() if len(row) > 1 else ""
        if status and status not in ("LOADED", "PARTIALLY_LOADED"):
            detail = row[6] if len(row) > 6 and row[6] else status
            raise LoadError(f"COPY of {file_name} from @{stage} reported {status}: {detail}.")


def _replace_day(conn, contract: Contract, day: str, path: str, *, stage: str | None,
                 result: LoadResult, source_object: str, run_id: str) -> int:
    """Stage (write_pandas path), then one transaction: delete the day, load it, check the
    count against the file's, record LOAD_AUDIT, commit. Returns the rows loaded."""
    table = result.table
    staging = None if stage else sql.staging_table_name(contract.dataset)
    try:
        if staging:  # DDL and write_pandas commit: done before the transaction opens
            _write_pandas_staging(conn, contract, path, staging)
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
                    f"{result.source_key} holds {result.rows_in_file}; rolled back (the table "
                    "keeps its previous rows for that day).",
                    hint="Check that the file's business_date is that day, then load again.")
            cur.execute(sql.audit_insert_sql(
                dataset=contract.dataset, day=day, source_object=source_object,
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
    return loaded


def load_dataset(conn, contract: Contract, day: str, *, source, stage: str | None = None,
                 run_id: str, table_error: M7Error | None = None) -> LoadResult:
    """Replace one dataset's day in its table with the gold file, in one transaction.

    ``table_error`` is what :func:`ensure_tables` found wrong with the table: the dataset
    then fails before its file is read (a day without input is still only skipped).
    """
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
        if table_error is not None:
            raise table_error
        with tempfile.TemporaryDirectory(prefix="m7etl-load-") as folder:
            path, result.checksum, result.rows_in_file = _gold_file(source, key, folder)
            loaded = _replace_day(conn, contract, day, path, stage=stage, result=result,
                                  source_object=source.describe(key), run_id=run_id)
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
    dataset does not stop the others; the caller decides what a failure means. A
    LOAD_AUDIT that does not match fails every dataset (each load writes to it).
    """
    try:
        layout.parse_day(day)
    except ValueError as exc:
        raise UsageError(f"Day to load: {exc}.", hint="Use YYYYMMDD, e.g. 20250501.") from None
    if stage:
        sql.check_object_name(stage, "Stage")
    selected = select_contracts(contracts, datasets)
    problems = ensure_tables(conn, selected)
    audit = problems.get(sql.AUDIT_TABLE)
    return [load_dataset(conn, c, day, source=source, stage=stage or None, run_id=run_id,
                         table_error=audit or problems.get(sql.table_name(c.dataset)))
            for c in selected]


def table_counts(conn, contracts: Iterable[Contract]) -> dict[str, int]:
    """Rows in each gold table now (for the summary)."""
    cur = conn.cursor()
    return {sql.table_name(c.dataset): int(_scalar(cur, sql.count_sql(sql.table_name(c.dataset))))
            for c in contracts}
