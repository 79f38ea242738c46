"""silver -> gold for one dataset and day: the core of the ``silver_to_gold`` Lambda.

Gold is recomputed from all of that day's silver for the dataset, so it is the same
whichever file arrived last, and re-running it rewrites the same object.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from m7etl.core import layout
from m7etl.core.contracts import Contract
from m7etl.core.gold import gold_builder, gold_schema, needed_columns
from m7etl.storage.base import Storage

GOLD_OK = "ok"
GOLD_NO_INPUT = "no_input"
BATCH_ROWS = 64 * 1024
# A day's silver above SPILL_FROM_BYTES spills, in files of about SPILL_PART_BYTES of silver.
# An aggregate spills only its distinct-count columns (a 300 MB CSV's day is counted in
# memory, a 2 GB CSV's in 15 files); a snapshot spills whole rows and sorts each file, and
# silver of few distinct values compresses well, so its files are small (a 3M-device day:
# 9 files, 440 MB peak instead of 1,355 MB in memory, and faster).
SPILL_FROM_BYTES = {"aggregate": 128 * 1024 * 1024, "snapshot": 8 * 1024 * 1024}
SPILL_PART_BYTES = {"aggregate": 48 * 1024 * 1024, "snapshot": 8 * 1024 * 1024}


def spill_parts(kind: str, silver_bytes: int) -> int:
    """How many spill files a day of ``silver_bytes`` needs (1: none, all in memory)."""
    if silver_bytes <= SPILL_FROM_BYTES[kind]:
        return 1
    return math.ceil(silver_bytes / SPILL_PART_BYTES[kind])


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


def fold_silver(storage: Storage, keys: list[str], builder, tmp: Path) -> None:
    """Feed the builder every silver file batch by batch, one file on local disk at a time
    (Parquet needs random access; memory stays one batch plus the builder's state)."""
    columns = needed_columns(builder.contract)
    local = tmp / "silver.parquet"
    for key in keys:
        storage.download_file(key, local)
        parquet = pq.ParquetFile(local)
        try:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                builder.add(batch)
        finally:
            parquet.close()
            local.unlink()


def process_gold(storage: Storage, contract: Contract, day: str, *,
                 tmp_dir: str | None = None) -> GoldResult:
    """Rebuild ``gold/<Dataset>_YYYYMMDD.parquet`` from the day's silver files."""
    started = time.perf_counter()
    key = layout.gold_key(contract.dataset, day)
    listed = storage.list(layout.silver_prefix(day, contract.dataset))
    silver_keys = [o.key for o in listed if o.key.endswith(".parquet")]
    if not silver_keys:
        # No promoted input that day: a gold file left from an earlier run would be stale.
        if storage.exists(key):
            storage.delete([key])
        return GoldResult(contract.dataset, day, None, GOLD_NO_INPUT)
    silver_bytes = sum(o.size for o in listed if o.key.endswith(".parquet"))
    parts = spill_parts(contract.gold.kind, silver_bytes)
    rows_out = 0
    with tempfile.TemporaryDirectory(prefix="m7-s2g-", dir=tmp_dir) as tmp:
        builder = gold_builder(contract, spill_dir=Path(tmp), parts=parts)
        fold_silver(storage, sorted(silver_keys), builder, Path(tmp))
        path = Path(tmp) / "gold.parquet"
        schema = gold_schema(contract)
        with pq.ParquetWriter(path, schema, compression="zstd") as writer:
            for table in builder.result_tables(day):  # one spill file's gold at a time
                writer.write_table(table.cast(schema))
                rows_out += table.num_rows
        storage.upload_file(path, key)
    return GoldResult(contract.dataset, day, key, GOLD_OK, rows_in=builder.rows_in,
                      rows_out=rows_out, silver_keys=silver_keys,
                      duration_s=round(time.perf_counter() - started, 3))
