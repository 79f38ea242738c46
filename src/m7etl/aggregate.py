"""silver -> gold logic (pure): a snapshot by key, or group-by aggregates, per contract.

Grain: a snapshot holds one row per primary key, the latest record winning (the
contract's ``order_by`` columns, then the later file, then the later line); an aggregate
holds one row per group-by key. Both carry ``business_date``, the day the rows belong to,
which the warehouse load uses to replace exactly that day.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from m7etl.contracts import Contract
from m7etl.validate import ARROW_TYPES

BUSINESS_DATE = "business_date"
ORDER_COLUMN = "_order"


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
    value = datetime.strptime(day, "%Y%m%d").date()
    dates = pa.array([value] * table.num_rows, pa.date32())
    table = table.add_column(0, BUSINESS_DATE, dates)
    return table.select(schema.names).cast(schema)


def snapshot(contract: Contract, silver: pa.Table, day: str) -> pa.Table:
    """Latest record per primary key; ties broken by source key then line, both descending."""
    schema = gold_schema(contract)
    if silver.num_rows == 0:
        return schema.empty_table()
    key = list(contract.primary_key)
    order = [(k, "ascending") for k in key]
    order += [(c, "descending") for c in contract.gold.order_by]
    order += [("_source_key", "descending"), ("_line_number", "descending")]
    ranked = silver.sort_by(order)
    first = None
    for name in key:
        col = ranked.column(name).combine_chunks()
        changed = pc.not_equal(col[1:], col[:-1])
        first = changed if first is None else pc.or_(first, changed)
    keep = pa.concat_arrays([pa.array([True]), first]) if first is not None else None
    latest = ranked.filter(keep) if keep is not None else ranked
    return _with_date(latest, day, schema)


def aggregate(contract: Contract, silver: pa.Table, day: str) -> pa.Table:
    """One row per group-by key with the contract's metrics, sorted by the key."""
    schema = gold_schema(contract)
    spec = contract.gold
    if silver.num_rows == 0:
        return schema.empty_table()
    aggs, produced = [], []
    for m in spec.metrics:
        if m.agg == "count":
            aggs.append(([], "count_all"))
            produced.append("count_all")
        else:
            func = "count_distinct" if m.agg == "count_distinct" else m.agg
            aggs.append((m.column, func))
            produced.append(f"{m.column}_{func}")
    aggs = list({name: agg for name, agg in zip(produced, aggs, strict=True)}.values())
    grouped = silver.group_by(list(spec.group_by), use_threads=False).aggregate(aggs)
    # pyarrow names each result "<column>_<function>" ("count_all" for a row count).
    columns = [grouped.column(k) for k in spec.group_by] + [grouped.column(p) for p in produced]
    names = list(spec.group_by) + [m.name for m in spec.metrics]
    result = pa.Table.from_arrays(columns, names=names)
    result = result.sort_by([(k, "ascending") for k in spec.group_by])
    return _with_date(result, day, schema)


def build_gold(contract: Contract, silver: pa.Table, day: str) -> pa.Table:
    if contract.gold.kind == "snapshot":
        return snapshot(contract, silver, day)
    return aggregate(contract, silver, day)
