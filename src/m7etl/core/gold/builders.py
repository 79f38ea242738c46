"""silver -> gold logic: a snapshot by key, or group-by aggregates, per contract.

Pure Arrow computation over batches, except that a large day's rows may go through
:class:`m7etl.core.gold.spill.Spill` (files on local disk) to be finished one file at a time.

Grain: a snapshot holds one row per primary key, the latest record winning (the
contract's ``order_by`` columns, then the later file, then the later line); an aggregate
holds one row per group-by key. Both carry ``business_date``, the day the rows belong to,
which the warehouse load uses to replace exactly that day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from m7etl.core.contracts import Contract
from m7etl.core.gold.partition import partition_of
from m7etl.core.gold.spill import Spill
from m7etl.core.validate import ARROW_TYPES

BUSINESS_DATE = "business_date"


def metric_type(contract: Contract, agg: str, column: str | None) -> pa.DataType:
    if agg in ("count", "count_distinct"):
        return pa.int64()
    if agg == "mean":
        return pa.float64()
    return ARROW_TYPES[contract.column(column).type]


def gold_schema(contract: Contract) -> pa.Schema:
    """Gold's explicit schema (the warehouse tables are created from it)."""
    fields = [pa.field(BUSINESS_DATE, pa.date32(), nullable=False)]
    if contract.gold.kind == "snapshot":
        fields += [pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required)
                   for c in contract.columns]
    else:
        fields += [pa.field(name, ARROW_TYPES[contract.column(name).type])
                   for name in contract.gold.group_by]
        fields += [pa.field(m.name, metric_type(contract, m.agg, m.column))
                   for m in contract.gold.metrics]
    return pa.schema(fields)


def needed_columns(contract: Contract) -> list[str]:
    """The silver columns gold reads (so wide files are read only as far as needed)."""
    if contract.gold.kind == "snapshot":
        return [*contract.column_names, "_source_key", "_line_number"]
    names = list(contract.gold.group_by) + [m.column for m in contract.gold.metrics if m.column]
    return list(dict.fromkeys(names))


def _with_date(table: pa.Table, day: str, schema: pa.Schema) -> pa.Table:
    value = pa.scalar(datetime.strptime(day, "%Y%m%d").date(), pa.date32())
    table = table.add_column(0, BUSINESS_DATE, pa.repeat(value, table.num_rows))
    return table.select(schema.names).cast(schema)


CHUNK_ROWS = 1_000_000  # silver rows folded at once: memory follows this, not the day's size
# How a partial result of each Arrow aggregation is folded into the next.
_COMBINE = {"count_all": "sum", "count": "sum", "sum": "sum", "min": "min", "max": "max"}


def _table(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    return batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])


class _Folding:
    """Buffers silver batches and folds them ``chunk_rows`` at a time."""

    def __init__(self, contract: Contract, chunk_rows: int | None = None):
        self.contract = contract
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self.rows_in = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.rows_in += batch.num_rows
        self._pending.append(_table(batch))
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


class SnapshotBuilder(_Folding):
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
        table = _table(batch)
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
                    yield _with_date(_latest(self.contract, rows), day, schema)
            return
        self._flush()
        if self._kept is not None and self._kept.num_rows:
            yield _with_date(self._kept, day, schema)

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


class _DistinctCounter:
    """Exact count of the distinct non-null values of one column per group.

    It keeps the (group, value) columns of the rows and counts at the end. With ``parts``
    > 1 those rows are spilled to ``parts`` Parquet files by the value's partition instead:
    a value lives in one file only, so each file is counted alone and the counts add up,
    and memory holds one file's rows, not the day's."""

    def __init__(self, keys: list[str], column: str, spill_dir: Path | None = None, parts: int = 1):
        self.keys, self.column = keys, column
        self.names = [*keys, column]
        self.spill = Spill.when_needed(spill_dir, f"distinct-{column}", parts)
        self._rows: list[pa.Table] = []

    def add(self, chunk: pa.Table) -> None:
        rows = chunk.select(self.names)
        if self.spill is None:
            self._rows.append(rows)
        else:
            self.spill.write(rows, partition_of(rows.column(self.column), self.spill.parts))

    def _count(self, rows: pa.Table) -> pa.Table:
        counted = rows.group_by(self.keys, use_threads=False).aggregate([(self.column, "count_distinct")])
        return counted.select([*self.keys, f"{self.column}_count_distinct"])

    def counts(self) -> pa.Table:
        """[*keys, <column>_count_distinct], one row per group seen (the caller saw rows)."""
        if self.spill is None:
            return self._count(pa.concat_tables(self._rows))
        name = f"{self.column}_count_distinct"
        counted = pa.concat_tables([self._count(rows) for rows in self.spill.read_back()])
        total = counted.group_by(self.keys, use_threads=False).aggregate([(name, "sum")])
        return total.select([*self.keys, f"{name}_sum"]).rename_columns([*self.keys, name])


class AggregateBuilder(_Folding):
    """Group-by metrics from partial results: count, sum, min, max (and mean as sum and
    count) fold per chunk; count_distinct keeps its (group, value) columns, in memory or
    spilled to ``spill_dir`` in ``parts`` files. Memory holds a chunk plus the partials
    (plus those two columns when not spilled), never the day's rows."""

    def __init__(self, contract: Contract, chunk_rows: int | None = None, *,
                 spill_dir: Path | None = None, parts: int = 1):
        super().__init__(contract, chunk_rows)
        self.keys = list(contract.gold.group_by)
        partials: dict[str, tuple] = {}  # Arrow's result name -> (column(s), function)
        for m in contract.gold.metrics:
            if m.agg == "count":
                partials["count_all"] = ([], "count_all")
            elif m.agg == "mean":
                partials[f"{m.column}_sum"] = (m.column, "sum")
                partials[f"{m.column}_count"] = (m.column, "count")
            elif m.agg != "count_distinct":
                partials[f"{m.column}_{m.agg}"] = (m.column, m.agg)
        self.partials = partials
        self.distinct = {c: _DistinctCounter(self.keys, c, spill_dir, parts)
                         for c in dict.fromkeys(m.column for m in contract.gold.metrics
                                                if m.agg == "count_distinct")}
        self._parts: list[pa.Table] = []

    def _fold(self, chunk: pa.Table) -> None:
        part = self._group(chunk, list(self.partials.values()))
        self._parts.append(part.select([*self.keys, *self.partials]))
        if sum(t.num_rows for t in self._parts) > self.chunk_rows:
            self._parts = [self._combined()]
        for counter in self.distinct.values():
            counter.add(chunk)

    def _group(self, table: pa.Table, aggs: list[tuple]) -> pa.Table:
        return table.group_by(self.keys, use_threads=False).aggregate(aggs)

    def _combined(self) -> pa.Table:
        """The partials folded into one row per group, named as Arrow names the partials."""
        table = pa.concat_tables(self._parts)
        folded = self._group(table, [(name, _COMBINE[func]) for name, (_c, func) in self.partials.items()])
        names = [*self.keys] + [f"{name}_{_COMBINE[func]}" for name, (_c, func) in self.partials.items()]
        return folded.select(names).rename_columns([*self.keys, *self.partials])

    def result_tables(self, day: str) -> Iterator[pa.Table]:
        yield self.result(day)

    def result(self, day: str) -> pa.Table:
        self._flush()
        schema = gold_schema(self.contract)
        if not self._parts:
            return schema.empty_table()
        order = [(k, "ascending") for k in self.keys]
        main = self._combined().sort_by(order)
        counts = {}
        for column, counter in self.distinct.items():
            counted = counter.counts().sort_by(order)
            if counted.num_rows != main.num_rows:  # both hold every group once: a bug otherwise
                raise AssertionError(f"count_distinct({column}) found {counted.num_rows} groups, "
                                     f"the other metrics {main.num_rows}")
            counts[column] = counted.column(f"{column}_count_distinct")
        columns = [main.column(k) for k in self.keys]
        for m in self.contract.gold.metrics:
            if m.agg == "count":
                columns.append(main.column("count_all"))
            elif m.agg == "count_distinct":
                columns.append(counts[m.column])
            elif m.agg == "mean":
                total = pc.cast(main.column(f"{m.column}_sum"), pa.float64())
                n = main.column(f"{m.column}_count")
                columns.append(pc.if_else(pc.equal(n, 0), None, pc.divide(total, pc.cast(n, pa.float64()))))
            else:
                columns.append(main.column(f"{m.column}_{m.agg}"))
        names = [*self.keys] + [m.name for m in self.contract.gold.metrics]
        return _with_date(pa.Table.from_arrays(columns, names=names), day, schema)


def gold_builder(contract: Contract, chunk_rows: int | None = None, *, spill_dir: Path | None = None,
                 parts: int = 1) -> SnapshotBuilder | AggregateBuilder:
    """The builder for the contract's gold: feed it silver batches, then ask for the result.
    With ``spill_dir`` and ``parts`` > 1, a snapshot spills its rows by key and an aggregate
    its distinct counts by value, to finish one file at a time."""
    kind = SnapshotBuilder if contract.gold.kind == "snapshot" else AggregateBuilder
    return kind(contract, chunk_rows, spill_dir=spill_dir, parts=parts)
