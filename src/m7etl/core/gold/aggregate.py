"""Aggregate gold: group-by metrics folded from partial results, chunk by chunk.

Distinct counts of a large day go through :class:`~m7etl.core.gold.spill.Spill` (files
on local disk, by value) to be counted one file at a time. With a primary key, a key seen
more than once counts once, its latest record (:mod:`~m7etl.core.gold.dedupe`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from m7etl.core.contracts import Contract
from m7etl.core.gold.dedupe import Contested, Repeats
from m7etl.core.gold.folding import Folding
from m7etl.core.gold.partition import partition_of
from m7etl.core.gold.schema import gold_schema, needed_columns, with_date
from m7etl.core.gold.spill import Spill

# How a partial result of each Arrow aggregation is folded into the next.
_COMBINE = {"count_all": "sum", "count": "sum", "sum": "sum", "min": "min", "max": "max"}


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


class AggregateBuilder(Folding):
    """Group-by metrics from partial results: count, sum, min, max (and mean as sum and
    count) fold per chunk; count_distinct keeps its (group, value) columns, in memory or
    spilled to ``spill_dir`` in ``parts`` files. Memory holds a chunk plus the partials
    (plus those two columns when not spilled), never the day's rows.

    With a primary key, ``repeats`` (the day's keys checked beforehand, rows in the order
    they will come) says which rows may share a key: those wait aside (spilled in
    ``repeats.parts`` files) and join, each key's latest record only, at the end. Without
    ``repeats`` every row waits aside; with none repeated, the rows fold as if there were
    no key."""

    def __init__(self, contract: Contract, chunk_rows: int | None = None, *,
                 spill_dir: Path | None = None, parts: int = 1, repeats: Repeats | None = None):
        super().__init__(contract, chunk_rows)
        self.contested = None
        if contract.primary_key and (repeats is None or repeats.rows):
            self.contested = Contested(contract, None if repeats is None else repeats.held, spill_dir,
                                       parts if repeats is None else repeats.parts)
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

    @property
    def columns(self) -> list[str]:
        return needed_columns(self.contract, dedupe=self.contested is not None)

    @property
    def read_dictionary(self) -> list[str]:
        return ["_source_key"] if self.contested is not None else []

    @property
    def rows_superseded(self) -> int:
        """Silver rows not counted: an older record of a key counted once."""
        return self.contested.superseded if self.contested is not None else 0

    def _fold(self, chunk: pa.Table) -> None:
        if self.contested is not None:
            chunk = self.contested.split(chunk, needed_columns(self.contract))
        if chunk.num_rows:
            self._aggregate(chunk)

    def _aggregate(self, chunk: pa.Table) -> None:
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
        if self.contested is not None:
            for kept in self.contested.latest():
                self._aggregate(kept)
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
        return with_date(pa.Table.from_arrays(columns, names=names), day, schema)
