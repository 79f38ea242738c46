"""Folding silver batches ``chunk_rows`` at a time: memory follows a chunk, not the day."""

from __future__ import annotations

import pyarrow as pa

from m7etl.core.contracts import Contract
from m7etl.core.gold.schema import needed_columns

CHUNK_ROWS = 1_000_000  # silver rows folded at once: memory follows this, not the day's size


def as_table(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    return batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])


class Folding:
    """Buffers silver batches and folds them ``chunk_rows`` at a time."""

    def __init__(self, contract: Contract, chunk_rows: int | None = None):
        self.contract = contract
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self.rows_in = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    @property
    def columns(self) -> list[str]:
        """The silver columns to feed this builder."""
        return needed_columns(self.contract)

    @property
    def read_dictionary(self) -> list[str]:
        """Of those, the ones best read as dictionaries (one value a file: the source key)."""
        return []

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.rows_in += batch.num_rows
        self._pending.append(as_table(batch))
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self._fold_at():
            self._flush()

    def _fold_at(self) -> int:
        return self.chunk_rows

    def _flush(self) -> None:
        if self._pending_rows:
            self._fold(pa.concat_tables(self._pending))
        self._pending, self._pending_rows = [], 0

    def _fold(self, chunk: pa.Table) -> None:
        raise NotImplementedError
