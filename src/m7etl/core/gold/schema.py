"""Gold's shape: its explicit schema, the silver columns it reads, ``business_date``.

Grain: a snapshot holds one row per primary key; an aggregate one row per group-by key,
counting each primary key once (its latest record).
Both carry ``business_date``, the day the rows belong to, which the warehouse load uses
to replace exactly that day.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from m7etl.core.contracts import Contract
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


LINEAGE = ["_source_key", "_line_number"]  # the later file, then the later line, wins


def needed_columns(contract: Contract, *, dedupe: bool = False) -> list[str]:
    """The silver columns gold reads (so wide files are read only as far as needed); an
    aggregate that counts each key once (``dedupe``) also reads what picks the latest record."""
    if contract.gold.kind == "snapshot":
        return [*contract.column_names, *LINEAGE]
    names = list(contract.gold.group_by) + [m.column for m in contract.gold.metrics if m.column]
    if dedupe:
        names += [*contract.primary_key, *contract.gold.order_by, *LINEAGE]
    return list(dict.fromkeys(names))


def with_date(table: pa.Table, day: str, schema: pa.Schema) -> pa.Table:
    value = pa.scalar(datetime.strptime(day, "%Y%m%d").date(), pa.date32())
    table = table.add_column(0, BUSINESS_DATE, pa.repeat(value, table.num_rows))
    return table.select(schema.names).cast(schema)


def parquet_options(contract: Contract) -> dict:
    """How gold is written. Every column is dictionary-encoded but a snapshot's primary key
    (one distinct value per gold row: its dictionary would be the column again), and min/max
    statistics are kept for the typed columns only (a string's cost a fifth of the write and
    nothing reads them). Device gold, 2M rows: 0.66 -> 0.50 CPU-s, 42 -> 40 MB. The encoding
    only: the schema, and so what the warehouse loads, is the same."""
    schema = gold_schema(contract)
    unique = set(contract.primary_key) if contract.gold.kind == "snapshot" else set()
    return {"compression": "zstd",
            "use_dictionary": [f.name for f in schema if f.name not in unique],
            "write_statistics": [f.name for f in schema if not pa.types.is_string(f.type)]}
