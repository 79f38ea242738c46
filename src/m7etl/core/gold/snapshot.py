"""Snapshot gold: the latest record per primary key.

The latest record wins by the contract's ``order_by`` columns, then the later file, then
the later line. The day is folded in memory while the rows kept (one per key seen) stay
small; a day of many keys goes through :class:`~m7etl.core.gold.spill.Spill` instead
(files on local disk, by key) to be finished one file at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m7etl.core.contracts import Contract
from m7etl.core.gold.folding import Folding, as_table
from m7etl.core.gold.order import changes, descending_rank, sort_codes, stable_order
from m7etl.core.gold.partition import partition_of
from m7etl.core.gold.schema import gold_schema, with_date
from m7etl.core.gold.spill import Spill

# A fold keeping more than this share of its rows looks like a list of distinct keys
# (a full device list, a day of programmes): it spills as soon as the day's rows at that
# share would not fit ``hold_bytes``, instead of folding on until they do not.
DISTINCT_SHARE = 0.5
PROBE_ROWS = 256 * 1024  # the first fold, which judges that share: small, so little is redone


def dictionary_columns(contract: Contract) -> list[str]:
    """The columns a snapshot reads as dictionaries: those of a few allowed values and the
    source file. Their rows then weigh 4 bytes each in memory and in spill files (a Device
    row: 81 bytes instead of 143) and reordering them copies no strings."""
    names = [c.name for c in contract.columns if c.type == "string" and c.rules.allowed
             and c.name not in contract.primary_key]
    return [*names, "_source_key"]


class SnapshotBuilder(Folding):
    """Latest record per primary key. Keeping the latest is associative, so chunks are
    folded into the rows kept so far: memory holds one row per key seen plus at most as
    many pending rows. A chunk is at least as large as what is kept, so each row is sorted
    O(log n) times even when every key is new.

    With ``spill_dir`` and ``parts`` > 1 the rows may go to ``parts`` spill partitions by
    their key instead, each then reduced alone (memory: one partition's rows):
    from the first row when ``hold_bytes`` is 0, else once the rows kept would outgrow
    ``hold_bytes`` (judged from what is kept and, for a list of distinct keys, the share
    of rows kept times ``day_rows``). A day of few keys never touches the disk."""

    def __init__(self, contract: Contract, chunk_rows: int | None = None, *,
                 spill_dir: Path | None = None, parts: int = 1, hold_bytes: int = 0,
                 day_rows: int = 0):
        super().__init__(contract, chunk_rows)
        self.hold_bytes, self.day_rows = hold_bytes, day_rows
        self._spill_dir, self._parts = spill_dir, parts
        self.spill = Spill.when_needed(spill_dir, "snapshot", parts) if hold_bytes <= 0 else None
        self._kept: pa.Table | None = None

    @property
    def read_dictionary(self) -> list[str]:
        return dictionary_columns(self.contract)

    @property
    def spilled(self) -> bool:
        """Whether the rows went through spill files (the decision, for the run's report)."""
        return self.spill is not None

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self.spill is None:
            super().add(batch)
            return
        self.rows_in += batch.num_rows
        self._spill_rows(as_table(batch))

    def _spill_rows(self, table: pa.Table) -> None:
        self.spill.write(table, partition_of([table.column(k) for k in self.contract.primary_key],
                                             self.spill.parts))

    def _fold_at(self) -> int:
        if self._kept is None and self.hold_bytes > 0:  # the first fold decides: keep it small
            return min(self.chunk_rows, PROBE_ROWS)
        return max(self.chunk_rows, self._kept.num_rows if self._kept is not None else 0)

    def _fold(self, chunk: pa.Table) -> None:
        rows = chunk if self._kept is None else pa.concat_tables([self._kept, chunk])
        self._kept = _latest(self.contract, rows)
        if self._outgrows_memory(self._kept):
            self.spill = Spill(self._spill_dir, "snapshot", self._parts)
            kept, self._kept = self._kept, None
            self._spill_rows(kept)

    def _outgrows_memory(self, kept: pa.Table) -> bool:
        if self._spill_dir is None or self._parts <= 1 or not kept.num_rows:
            return False
        if kept.nbytes > self.hold_bytes:
            return True
        share = kept.num_rows / max(self.rows_in, 1)
        day_kept = kept.nbytes / kept.num_rows * share * self.day_rows  # the day's keys at that share
        return share > DISTINCT_SHARE and day_kept > self.hold_bytes

    def result_tables(self, day: str) -> Iterator[pa.Table]:
        """The gold rows: sorted by key when folded in memory; when spilled, partition by
        partition, each in the order its rows came."""
        schema = gold_schema(self.contract)
        self._flush()
        if self.spill is not None:
            parts = self.spill.read_back()
            while (table := self._next_part(parts, day, schema)) is not None:
                yield table
                del table  # before the next file is read: one file's rows in memory at a time
            return
        if self._kept is not None and self._kept.num_rows:
            yield with_date(self._kept, day, schema)

    def _next_part(self, parts: Iterator[pa.Table], day: str, schema: pa.Schema) -> pa.Table | None:
        """The next spill file's gold (its rows are freed on return), None after the last."""
        for rows in parts:
            if rows.num_rows:
                return with_date(_latest(self.contract, rows, by_key=False), day, schema)
        return None

    def result(self, day: str) -> pa.Table:
        tables = list(self.result_tables(day))
        return pa.concat_tables(tables) if tables else gold_schema(self.contract).empty_table()


def _order(contract: Contract) -> list[tuple[str, str]]:
    order = [(k, "ascending") for k in contract.primary_key]
    order += [(c, "descending") for c in contract.gold.order_by]
    return order + [("_source_key", "descending"), ("_line_number", "descending")]


def _latest(contract: Contract, silver: pa.Table, *, by_key: bool = True) -> pa.Table:
    """Latest record per primary key, sorted by key (else in input order: a spill file's
    rows, already out of key order across files, are then taken without reordering them);
    ties broken by the contract's order_by, then source key, then line, all descending
    (and then the input order).

    The key is sorted as integer codes (:mod:`.order`); only the rows of a key seen more
    than once are then sorted by the other columns, and the kept rows are taken once from
    the input (no sorted copy of every column)."""
    if silver.num_rows < 2:
        return silver
    words = sort_codes([silver.column(k) for k in contract.primary_key])
    if words is None:
        return _latest_by_values(contract, silver)
    ordered = stable_order(words)
    first = changes([w[ordered] for w in words])
    group = np.cumsum(first) - 1
    chosen = ordered[first]
    contested = np.flatnonzero(np.bincount(group)[group] > 1)
    if len(contested):
        rows = pa.array(ordered[contested])
        ties = {"group": group[contested]}
        sort_keys = [("group", "ascending")]
        for i, name in enumerate(contract.gold.order_by):
            ties[f"o{i}"] = silver.column(name).take(rows)
            sort_keys.append((f"o{i}", "descending"))
        source = silver.column("_source_key").take(rows)
        rank = descending_rank(source)
        ties["source"] = source if rank is None else rank
        sort_keys.append(("source", "descending" if rank is None else "ascending"))
        ties["line"] = silver.column("_line_number").take(rows)
        sort_keys.append(("line", "descending"))
        ranked = pc.sort_indices(pa.table(ties), sort_keys=sort_keys).to_numpy()
        groups = ties["group"][ranked]
        latest = changes([groups])
        chosen[groups[latest]] = ordered[contested][ranked[latest]]
    return silver.take(pa.array(chosen if by_key else np.sort(chosen)))


def _latest_by_values(contract: Contract, silver: pa.Table) -> pa.Table:
    """:func:`_latest` for keys :func:`.order.sort_codes` cannot pack: Arrow sorts the
    ordering columns themselves (slower on strings, the same rows)."""
    order = _order(contract)
    ordering = silver.select(list(dict.fromkeys(name for name, _ in order)))
    for i, f in enumerate(ordering.schema):  # Arrow sorts no dictionaries (the source key)
        if pa.types.is_dictionary(f.type):
            ordering = ordering.set_column(i, f.name, ordering.column(i).cast(f.type.value_type))
    indices = pc.sort_indices(ordering, sort_keys=order)
    if len(indices) < 2:
        return silver.take(indices)
    first = None
    for name in contract.primary_key:
        col = silver.column(name).take(indices).combine_chunks()
        changed = pc.not_equal(col[1:], col[:-1])
        first = changed if first is None else pc.or_(first, changed)
    keep = pa.concat_arrays([pa.array([True]), pc.fill_null(first, True)])
    return silver.take(indices.filter(keep))
