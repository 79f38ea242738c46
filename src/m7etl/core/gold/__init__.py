"""silver -> gold logic: a snapshot by key, or group-by aggregates, per contract.

Pure Arrow computation over batches (:mod:`.snapshot`, :mod:`.aggregate`, folded by
:mod:`.folding`; an aggregate counts each primary key once through :mod:`.dedupe`),
except that a large day's rows may go through :mod:`.spill` (files on local disk, split
by :mod:`.partition`) to be finished one file at a time. The schema and the silver
columns read are in :mod:`.schema`.
"""

from __future__ import annotations

from pathlib import Path

from m7etl.core.contracts import Contract
from m7etl.core.gold.aggregate import AggregateBuilder
from m7etl.core.gold.dedupe import KeyCheck, Repeats, key_hashes
from m7etl.core.gold.schema import BUSINESS_DATE, gold_schema, metric_type, needed_columns
from m7etl.core.gold.snapshot import SnapshotBuilder

__all__ = ["BUSINESS_DATE", "AggregateBuilder", "KeyCheck", "Repeats", "SnapshotBuilder", "gold_builder",
           "gold_schema", "key_hashes", "metric_type", "needed_columns"]


def gold_builder(contract: Contract, chunk_rows: int | None = None, *, spill_dir: Path | None = None,
                 parts: int = 1, repeats: Repeats | None = None, hold_bytes: int = 0,
                 day_rows: int = 0) -> SnapshotBuilder | AggregateBuilder:
    """The builder for the contract's gold: feed it silver batches (its ``columns``), then
    ask for the result. With ``spill_dir`` and ``parts`` > 1, a snapshot spills its rows by
    key and an aggregate its distinct counts by value, to finish one file at a time.
    ``repeats``: an aggregate's day of keys checked beforehand (see :class:`AggregateBuilder`).
    ``hold_bytes``, ``day_rows``: a snapshot folds in memory until its rows kept would
    outgrow ``hold_bytes``, and spills only then (see :class:`SnapshotBuilder`)."""
    if contract.gold.kind == "snapshot":
        return SnapshotBuilder(contract, chunk_rows, spill_dir=spill_dir, parts=parts,
                               hold_bytes=hold_bytes, day_rows=day_rows)
    return AggregateBuilder(contract, chunk_rows, spill_dir=spill_dir, parts=parts, repeats=repeats)
