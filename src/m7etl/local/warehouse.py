"""The load step of ``m7etl run --local``: gold -> the embedded warehouse (fakesnow).

The warehouse is fakesnow (Snowflake's connector API over DuckDB) with its database file
in ``--warehouse-dir`` (kept between runs). The loader is the Glue job's, and so is the
COPY statement: only the stage's URL differs (``file:///<data dir>/gold/`` instead of
``s3://<bucket>/gold/``), because DuckDB cannot fetch its S3 extension here.

Not imported by the Glue job (it needs fakesnow), so not held to Python 3.9.

A run reserves the warehouse before any work (:meth:`LocalWarehouse.reserve`): another
m7etl run holding it, or another program holding its database file, is found at the start,
not after the day's work when the load opens the file.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from m7etl.core import layout
from m7etl.core.contracts import Registry
from m7etl.exceptions import UsageError
from m7etl.local.lock import FolderLock
from m7etl.local.runner import DayResult, new_run_id
from m7etl.storage import LocalStorage
from m7etl.warehouse import sql
from m7etl.warehouse.loader import LoadResult, load_day, table_counts

DEFAULT_WAREHOUSE_DIR = Path(".work") / "warehouse"
LOCAL_STAGE = "M7_GOLD_STAGE"
LOCAL_DATABASE = "M7_ETL"
LOCAL_SCHEMA = "GOLD"
WAREHOUSE_LOCK = ".m7etl-warehouse.lock"
BUSY_HINT = "Wait for the other run to end, or pass another --warehouse-dir (or --no-load)."


def stage_url(data_dir: str | Path) -> str:
    """``file:///abs/data/gold/``: the local stand-in for ``s3://<bucket>/gold/``."""
    gold = (Path(data_dir).resolve() / layout.GOLD).as_posix().rstrip("/")
    return f"file://{gold}/"


@contextmanager
def local_connection(db_dir: str | Path, database: str = LOCAL_DATABASE,
                     schema: str = LOCAL_SCHEMA) -> Iterator[object]:
    """A fakesnow connection whose database file lives in ``db_dir`` (kept between runs).

    fakesnow patches ``snowflake.connector.connect`` and ``pandas_tools.write_pandas`` only
    inside this block, so the loader's own calls reach the fakes.
    """
    import fakesnow
    import snowflake.connector

    path = Path(db_dir)
    path.mkdir(parents=True, exist_ok=True)  # fakesnow.patch needs it to exist
    with warnings.catch_warnings():
        # fakesnow's cursor warns on every fetch about an Arrow copy; it is noise here.
        warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
        with fakesnow.patch(db_path=str(path)):
            conn = snowflake.connector.connect(database=database, schema=schema)
            try:
                yield conn
            finally:
                conn.close()


@dataclass
class LoadReport:
    """What a day's local load did, for the CLI to show."""

    day: str
    results: list[LoadResult]
    counts: dict[str, int]  # table -> rows after the load
    seconds: float
    warehouse_dir: Path
    stage: str | None  # None: the write_pandas fallback


class LocalWarehouse:
    """The ``after_day`` hook of the local runner: load the day, fill ``load`` and ``load_report``."""

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

    @contextmanager
    def reserve(self) -> Iterator[None]:
        """Hold the warehouse for a whole run: UsageError at once if another run holds it
        (its pid, start and host named) or another program has its database file open."""
        try:
            self.warehouse_dir.mkdir(parents=True, exist_ok=True)
            lock = FolderLock(self.warehouse_dir / WAREHOUSE_LOCK)
            holder = lock.try_acquire()
        except OSError as exc:
            raise UsageError(f"Cannot use the local warehouse {self.warehouse_dir}: {exc.strerror}.",
                             hint="Pass a writable --warehouse-dir (or --no-load).") from None
        if holder is not None:
            raise UsageError(f"The local warehouse {self.warehouse_dir} is in use by another run "
                             f"({holder.describe()}).", hint=BUSY_HINT)
        try:
            self._check_database_free()
            yield
        finally:
            lock.release()

    def _check_database_free(self) -> None:
        """Open and close the database file: DuckDB refuses it while another process has it."""
        path = self.warehouse_dir / f"{self.database}.db"
        if not path.exists():
            return
        import duckdb

        try:
            duckdb.connect(str(path)).close()
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise
            held = text.split("Conflicting lock is held in ", 1)[-1].split(". See", 1)[0]
            who = f" ({held})" if held != text else ""
            raise UsageError(f"The local warehouse {path} is open in another program{who}.",
                             hint=BUSY_HINT) from None

    def load(self, day: str) -> LoadReport:
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
                hint=BUSY_HINT) from None
        return LoadReport(day, results, counts, time.perf_counter() - started,
                          self.warehouse_dir, self.stage)

    def __call__(self, day_result: DayResult) -> None:
        report = self.load(day_result.day)
        day_result.load = [r.to_dict() for r in report.results]
        day_result.load_report = report
