"""DuckDB's equivalent of a contract's gold, as SQL over the day's silver Parquet files.

The same rules as :mod:`m7etl.core.gold`: a snapshot keeps, per primary key, the row that
sorts first by the contract's ``order_by`` descending (nulls last, as Arrow's sort puts
them), then ``_source_key`` and ``_line_number`` descending; an aggregate groups by the
contract's ``group_by`` (each primary key's latest record, chosen the same way) and
computes its metrics (``count`` counts rows, ``mean`` is null for a group without values).
Columns in gold's schema order, ``business_date`` first.
"""

from __future__ import annotations

from datetime import datetime

from m7etl.core.contracts import Contract
from m7etl.core.gold import BUSINESS_DATE, gold_schema

_SQL_AGG = {"count_distinct": "count(DISTINCT {c})", "sum": "sum({c})", "min": "min({c})",
            "max": "max({c})", "mean": "avg({c})"}
_SQL_TYPES = {"int64": "BIGINT", "double": "DOUBLE"}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _files(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _business_date(day: str) -> str:
    return f"DATE '{datetime.strptime(day, '%Y%m%d').date().isoformat()}' AS {BUSINESS_DATE}"


def _metric(contract: Contract, agg: str, column: str | None, name: str) -> str:
    expr = "count(*)" if agg == "count" else _SQL_AGG[agg].format(c=quote(column))
    arrow_type = str(gold_schema(contract).field(name).type)
    if arrow_type in _SQL_TYPES:  # DuckDB's sum of BIGINT is a HUGEINT
        expr = f"CAST({expr} AS {_SQL_TYPES[arrow_type]})"
    return f"{expr} AS {quote(name)}"


def _latest(contract: Contract) -> str:
    """The QUALIFY clause keeping each primary key's latest record."""
    order = [f"{quote(c)} DESC NULLS LAST" for c in contract.gold.order_by]
    order += ["_source_key DESC", "_line_number DESC"]
    keys = ", ".join(quote(k) for k in contract.primary_key)
    return f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {', '.join(order)}) = 1"


def gold_query(contract: Contract, silver: list[str], day: str) -> str:
    """The SELECT giving the contract's gold for ``day`` from the ``silver`` Parquet files.

    An aggregate over a contract with a primary key counts each key once, its latest record
    (as :mod:`m7etl.core.gold.dedupe` does)."""
    source = f"read_parquet({_files(silver)})"
    if contract.gold.kind == "snapshot":
        columns = ", ".join(quote(c) for c in contract.column_names)
        return f"SELECT {_business_date(day)}, {columns} FROM {source} {_latest(contract)}"
    if contract.primary_key:
        source = f"(SELECT * FROM {source} {_latest(contract)})"
    keys = ", ".join(quote(k) for k in contract.gold.group_by)
    metrics = ", ".join(_metric(contract, m.agg, m.column, m.name) for m in contract.gold.metrics)
    return f"SELECT {_business_date(day)}, {keys}, {metrics} FROM {source} GROUP BY {keys}"


def copy_statement(query: str, target: str) -> str:
    """Write a query's rows to Parquet as gold is written (zstd)."""
    return f"COPY ({query}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
