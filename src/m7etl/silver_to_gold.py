"""silver -> gold for one dataset and day: the core of the ``silver_to_gold`` Lambda.

Gold is recomputed from all of that day's silver for the dataset, so it is the same
whichever file arrived last, and re-running it rewrites the same object.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from m7etl import layout
from m7etl.aggregate import build_gold, gold_schema, needed_columns
from m7etl.contracts import Contract
from m7etl.storage import Storage

GOLD_OK = "ok"
GOLD_NO_INPUT = "no_input"


@dataclass
class GoldResult:
    dataset: str
    date: str
    gold_key: str | None
    status: str
    rows_in: int = 0
    rows_out: int = 0
    silver_keys: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def rows_superseded(self) -> int:
        """Silver rows folded into another (older duplicates or aggregated rows)."""
        return self.rows_in - self.rows_out

    def to_dict(self) -> dict:
        return {**asdict(self), "rows_superseded": self.rows_superseded}


def read_silver(storage: Storage, keys: list[str], columns: list[str]) -> pa.Table:
    tables = [pq.read_table(pa.BufferReader(storage.read_bytes(k)), columns=columns) for k in keys]
    return pa.concat_tables(tables) if tables else None


def process_gold(storage: Storage, contract: Contract, day: str, *,
                 tmp_dir: str | None = None) -> GoldResult:
    """Rebuild ``gold/<Dataset>_YYYYMMDD.parquet`` from the day's silver files."""
    started = time.perf_counter()
    key = layout.gold_key(contract.dataset, day)
    silver_keys = [o.key for o in storage.list(layout.silver_prefix(day, contract.dataset))
                   if o.key.endswith(".parquet")]
    if not silver_keys:
        # No promoted input that day: a gold file left from an earlier run would be stale.
        if storage.exists(key):
            storage.delete([key])
        return GoldResult(contract.dataset, day, None, GOLD_NO_INPUT)
    silver = read_silver(storage, silver_keys, needed_columns(contract))
    gold = build_gold(contract, silver, day)
    with tempfile.TemporaryDirectory(prefix="m7-s2g-", dir=tmp_dir) as tmp:
        path = Path(tmp) / "gold.parquet"
        pq.write_table(gold.cast(gold_schema(contract)), path, compression="zstd")
        storage.upload_file(path, key)
    return GoldResult(contract.dataset, day, key, GOLD_OK, rows_in=silver.num_rows,
                      rows_out=gold.num_rows, silver_keys=silver_keys,
                      duration_s=round(time.perf_counter() - started, 3))
