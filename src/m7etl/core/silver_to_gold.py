"""silver -> gold for one dataset and day: the core of the ``silver_to_gold`` Lambda.

Gold is recomputed from all of that day's silver for the dataset (every file and part
of the day), so it is the same whichever file arrived last, and re-running it rewrites
the same object. An aggregate with a primary key reads the day's keys first: a key sent
twice (a ``.csv`` and its ``.csv.gz``, a part re-sent) counts once, its latest record.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pyarrow.parquet as pq

from m7etl.core import layout
from m7etl.core.contracts import Contract
from m7etl.core.gold import AggregateBuilder, KeyCheck, Repeats, gold_builder, gold_schema, key_hashes
from m7etl.core.gold.schema import needed_columns, parquet_options
from m7etl.core.gold.snapshot import dictionary_columns
from m7etl.storage.base import Storage

GOLD_OK = "ok"
GOLD_NO_INPUT = "no_input"
BATCH_ROWS = 64 * 1024
# Memory is judged by what is held, as read (Arrow bytes: the rows in the Parquet footers
# times the width of a row read; compressed silver is 3-7x smaller, by a ratio that varies
# with the data): above SPILL_FROM_BYTES it spills, in files of about SPILL_PART_BYTES.
# An aggregate holds its distinct-count columns (group-by and counted column; counting
# them takes ~5x that at its peak: a 300 MB Viewing CSV counted in memory peaked at
# 846 MB, in 3 files at 570 MB). A snapshot holds the rows it keeps, one per key, plus as
# many pending (~4x the rows kept at its peak): it folds in memory while they stay under
# SPILL_FROM_BYTES, so a day of few keys never spills, and a list of distinct keys spills
# whole rows, each file reduced alone (a 300 MB Device CSV: 405 MB peak in 4 files, as
# fast as 900 MB in memory).
SPILL_FROM_BYTES = {"aggregate": 96 * 1024 * 1024, "snapshot": 96 * 1024 * 1024}
SPILL_PART_BYTES = {"aggregate": 48 * 1024 * 1024, "snapshot": 64 * 1024 * 1024}
# The key check holds 8 bytes a row and sorts them (~30 bytes a row at its peak): in
# memory up to 4M rows, else spilled in files of 2M rows (with their row numbers).
KEY_HASH_SPILL_FROM_ROWS = 4_000_000
KEY_HASH_PART_ROWS = 2_000_000


def spill_parts(kind: str, day_bytes: int) -> int:
    """How many spill files a day of ``day_bytes`` (as read: see :func:`day_size`) needs
    if it spills (1: none, all in memory)."""
    if day_bytes <= SPILL_FROM_BYTES[kind]:
        return 1
    return max(2, math.ceil(day_bytes / SPILL_PART_BYTES[kind]))


def day_size(paths: list[Path], columns: list[str], dictionary: list[str] = ()) -> tuple[int, int]:
    """The day's silver rows (from the files' Parquet footers) and what they weigh once read
    (bytes): the rows times the Arrow width of the first batch read as the builder reads it.
    The footers' own sizes are no measure: a dictionary-encoded column of a few values
    weighs little in Parquet and 4 to 30 bytes a row as strings."""
    counts = [pq.read_metadata(p).num_rows for p in paths]
    width = 0.0
    for path, rows in zip(paths, counts, strict=True):
        if rows:
            parquet = pq.ParquetFile(path, read_dictionary=list(dictionary) or None)
            try:
                sample = next(parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns))
            finally:
                parquet.close()
            width = sample.nbytes / max(sample.num_rows, 1)
            break
    return sum(counts), int(sum(counts) * width)


def spill_plan(contract: Contract, paths: list[Path]) -> tuple[int, int, int]:
    """The day's rows, their bytes as the builder reads them, and the spill files it needs
    if it spills (:func:`spill_parts` of what it holds: a snapshot its rows, an aggregate
    its distinct-count columns, none without a distinct count)."""
    snapshot = contract.gold.kind == "snapshot"
    rows, day_bytes = day_size(paths, needed_columns(contract, dedupe=bool(contract.primary_key)),
                               dictionary_columns(contract) if snapshot else [])
    if snapshot:
        return rows, day_bytes, spill_parts("snapshot", day_bytes)
    counted = [m.column for m in contract.gold.metrics if m.agg == "count_distinct"]
    if not counted:
        return rows, day_bytes, 1
    _rows, held = day_size(paths, list(dict.fromkeys([*contract.gold.group_by, *counted])))
    return rows, day_bytes, spill_parts("aggregate", held)


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
    # Silver rows replaced by a later record of their primary key (a snapshot keeps one
    # row per key; an aggregate counts each key once).
    rows_superseded: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _batches(path: Path, columns: list[str], dictionary: list[str] = ()):
    parquet = pq.ParquetFile(path, read_dictionary=list(dictionary) or None)
    try:
        # A file whose every row was rejected (a threshold of 100 % publishes it) has no row
        # group, and iter_batches refuses such a file: it has no batch.
        if parquet.metadata.num_row_groups:
            yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)
    finally:
        parquet.close()


def fold_silver(storage: Storage, keys: list[str], builder, tmp: Path,
                local: dict[str, Path] | None = None) -> None:
    """Feed the builder every silver file batch by batch, one file on local disk at a time
    (Parquet needs random access; memory stays one batch plus the builder's state), unless
    ``local`` already holds the file's copy (deleted once read)."""
    for key in keys:
        path = (local or {}).get(key)
        if path is None:
            path = tmp / "silver.parquet"
            storage.download_file(key, path)
        try:
            for batch in _batches(path, builder.columns, builder.read_dictionary):
                builder.add(batch)
        finally:
            path.unlink()


def key_hash_parts(rows: int) -> int:
    """How many spill files the key check of ``rows`` silver rows needs (1: none)."""
    return 1 if rows <= KEY_HASH_SPILL_FROM_ROWS else math.ceil(rows / KEY_HASH_PART_ROWS)


def check_keys(contract: Contract, paths: list[Path], tmp: Path, silver_bytes: int) -> Repeats:
    """Which keys the day's silver files hold more than once, from their key columns only;
    the rows holding them get spill files as a snapshot of their share of the day would."""
    rows = sum(pq.read_metadata(p).num_rows for p in paths)
    check = KeyCheck(tmp, key_hash_parts(rows))
    for path in paths:
        for batch in _batches(path, list(contract.primary_key)):
            check.add(key_hashes(batch, contract.primary_key))
    repeats = check.repeats()
    return replace(repeats, parts=spill_parts("snapshot", silver_bytes * repeats.rows // max(rows, 1)))


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
    rows_out = 0
    with tempfile.TemporaryDirectory(prefix="m7-s2g-", dir=tmp_dir) as tmp:
        keys, local, repeats = sorted(silver_keys), {}, None
        # on local disk first: their footers size the day (and an aggregate with a key
        # reads them twice, keys then rows); each is deleted once folded
        for i, silver in enumerate(keys):
            local[silver] = Path(tmp) / f"silver-{i}.parquet"
            storage.download_file(silver, local[silver])
        rows, day_bytes, parts = spill_plan(contract, list(local.values()))
        if contract.gold.kind == "aggregate" and contract.primary_key:
            repeats = check_keys(contract, list(local.values()), Path(tmp), day_bytes)
        builder = gold_builder(contract, spill_dir=Path(tmp), parts=parts, repeats=repeats,
                               hold_bytes=SPILL_FROM_BYTES["snapshot"], day_rows=rows)
        fold_silver(storage, keys, builder, Path(tmp), local)
        path = Path(tmp) / "gold.parquet"
        schema = gold_schema(contract)
        with pq.ParquetWriter(path, schema, **parquet_options(contract)) as writer:
            for table in builder.result_tables(day):  # one spill file's gold at a time
                writer.write_table(table.cast(schema))
                rows_out += table.num_rows
                del table  # freed before the next file's gold is computed
        storage.upload_file(path, key)
    superseded = (builder.rows_superseded if isinstance(builder, AggregateBuilder)
                  else builder.rows_in - rows_out)
    return GoldResult(contract.dataset, day, key, GOLD_OK, rows_in=builder.rows_in,
                      rows_out=rows_out, silver_keys=silver_keys,
                      duration_s=round(time.perf_counter() - started, 3), rows_superseded=superseded)
