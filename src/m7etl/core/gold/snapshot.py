"""Snapshot gold: the latest record per primary key.

The latest record wins by the contract's ``order_by`` columns, then the later file, then
the later line. A large day's rows may go through :class:`~m7etl.core.gold.spill.Spill`
(files on local disk, by key) to be finished one file at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from m7etl.core.contracts import Contract
from m7etl.core.gold.folding import Folding, as_table
from m7etl.core.gold.partition import partition_of
from m7etl.core.gold.schema import gold_schema, with_date
from m7etl.core.gold.spill import Spill


class SnapshotBuilder(Folding):
    """Latest record per primary key. Keeping the latest is associative, so chunks are
    folded into the rows kept so far: memory holds one row per key seen plus at most as
    many pending rows. A chunk is at least as large as what is kept, so each row is sorted
    O(log n) times even when every key is new (a full device list).

    With ``parts`` > 1 the rows are spilled to ``parts`` Parquet files by their key's
    partition instead, and each file is reduced alone: memory holds one file's rows."""

    def __init__(self, contract: Contract, chunk_rows: int | None = None, *,
                 spill_dir: Path | None = None, parts: int = 1):
        super().__init__(contract, chunk_rows)
        self.spill = Spill.when_needed(spill_dir, "snapshot", parts)
        self._kept: pa.Table | None = None

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self.spill is None:
            super().add(batch)
            return
        self.rows_in += batch.num_rows
        table = as_table(batch)
        self.spill.write(table, partition_of([table.column(k) for k in self.contract.primary_key],
                                             self.spill.parts))

    def _fold_at(self) -> int:
        return max(self.chunk_rows, self._kept.num_rows if self._kept is not None else 0)

    def _fold(self, chunk: pa.Table) -> None:
        rows = chunk if self._kept is None else pa.concat_tables([self._kept, chunk])
        self._kept = _latest(self.contract, rows)

    def result_tables(self, day: str) -> Iterator[pa.Table]:
        """The gold rows, sorted by key within each spill file (all of them when not spilled)."""
        schema = gold_schema(self.contract)
        if self.spill is not None:
            for rows in self.spill.read_back():
                if rows.num_rows:
                    yield with_date(_latest(self.contract, rows), day, schema)
            return
        self._flush()
        if self._kept is not None and self._kept.num_rows:
            yield with_date(self._kept, day, schema)

    def result(self, day: str) -> pa.Table:
        tables = list(self.result_tables(day))
        return pa.concat_tables(tables) if tables else gold_schema(self.contract).empty_table()


def _latest(contract: Contract, silver: pa.Table) -> pa.Table:
    """Latest record per primary key, sorted by key; ties broken by the contract's order_by,
    then source key, then line, all descending. Only the ordering columns are sorted; the
    kept rows are taken once from the input (no sorted copy of every column)."""
    key = list(contract.primary_key)
    order = [(k, "ascending") for k in key]
    order += [(c, "descending") for c in contract.gold.order_by]
    order += [("_source_key", "descending"), ("_line_number", "descending")]
    indices = pc.sort_indices(silver.select(list(dict.fromkeys(name for name, _ in order))),
                              sort_keys=order)
    if len(indices) < 2:
        return silver.take(indices)
    first = None
    for name in key:
        col = silver.column(name).take(indices).combine_chunks()
        changed = pc.not_equal(col[1:], col[:-1])
        first = changed if first is None else pc.or_(first, changed)
    keep = pa.concat_arrays([pa.array([True]), pc.fill_null(first, True)])
    return silver.take(indices.filter(keep))
