"""The load step of ``m7etl run --local``: gold -> the embedded warehouse (fakesnow).

The warehouse is fakesnow (Snowflake's connector API over DuckDB) with its database file
in ``--warehouse-dir`` (kept between runs). The loader is the Glue job's, and so is the
COPY statement: only the stage's URL differs (``file:///<data dir>/gold/`` instead of
``s3://<bucket>/gold/``), because DuckDB cannot fetch its S3 extension here.

Not imported by the Glue job (it needs fakesnow), so not held to Python 3.9.
"""

from __future__ import annotations

import time
from pathlib import Path

from m7etl.core import layout
from m7etl.core.contracts import Registry
from m7etl.core.execution_log import text_table
from m7etl.exceptions import UsageError
from m7etl.local.runner import DayResult, new_run_id
from m7etl.storage import LocalStorage
from m7etl.warehouse import sql
from m7etl.warehouse.connect import LOCAL_DATABASE, LOCAL_SCHEMA, local_connection
from m7etl.warehouse.loader import LOADED, LoadResult, load_day, table_counts

DEFAULT_WAREHOUSE_DIR = Path(".work") / "warehouse"
LOCAL_STAGE = "M7_GOLD_STAGE"


def stage_url(data_dir: str | Path) -> str:
    """``file:///abs/data/gold/``: the local stand-in for ``s3://<bucket>/gold/``."""
    gold = (Path(data_dir).resolve() / layout.GOLD).as_posix().rstrip("/")
    return f"file://{gold}/"


class LocalWarehouse:
    """The ``after_day`` hook of the local runner: load the day, fill ``load`` and ``notes``."""

    def __init__(self, data_dir: str | Path, warehouse_dir: str | Path, registry: Registry, *,
                 database: str = LOCAL_DATABASE, schema: str = LOCAL_SCHEMA,
                 stage: str | None = LOCAL_STAGE, run_id: str | None = None):
        self.data_dir = Path(data_dir)
        self.warehouse_dir = Path(warehouse_dir)
        self.registry = registry
        self.database = database
        self.schema = schema
        self.stage = stage  # None: the write_pandas fallback
        self.run_id = run_id or new_run_id()

    def load(self, day: str) -> tuple[list[LoadResult], dict[str, int], float]:
        started = time.perf_counter()
        try:
            with local_connection(self.warehouse_dir, self.database, self.schema) as conn:
                if self.stage:
                    conn.cursor().execute(sql.create_stage_sql(self.stage,
                                                               stage_url(self.data_dir)))
                results = load_day(conn, self.registry, day, source=LocalStorage(self.data_dir),
                                   stage=self.stage, run_id=self.run_id)
                counts = table_counts(conn, self.registry)
        except Exception as exc:
            if "lock" not in str(exc).lower():
                raise
            raise UsageError(
                f"The local warehouse {self.warehouse_dir} is in use by another process.",
                hint="Wait for the other run to end, or pass another --warehouse-dir "
                     "(or --no-load).") from None
        return results, counts, time.perf_counter() - started

    def __call__(self, day_result: DayResult) -> None:
        results, counts, seconds = self.load(day_result.day)
        day_result.load = [r.to_dict() for r in results]
        day_result.notes.extend(summary_lines(day_result.day, results, counts, seconds,
                                              self.warehouse_dir, self.stage))


def summary_lines(day: str, results: list[LoadResult], counts: dict[str, int], seconds: float,
                  warehouse_dir: Path, stage: str | None) -> list[str]:
    """The CLI's summary of the load: one line per table with its row count after the load."""
    how = f"COPY from @{stage}" if stage else "write_pandas"
    lines = [f"\nDay {day}: gold -> warehouse (fakesnow in {warehouse_dir}, {how}, "
             f"{seconds:.2f} s)"]
    rows = [[r.table, r.status, r.rows_in_file, r.rows_loaded, counts.get(r.table)]
            for r in results]
    lines += text_table(["table", "status", "file rows", "loaded", "table rows"], rows,
                        right={2, 3, 4}).splitlines()
    for r in results:
        if r.status != LOADED:
            lines.append(f"  {r.table}: {r.message}")
    return lines
