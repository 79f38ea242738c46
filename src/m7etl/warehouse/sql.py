"""The SQL text of the load, built by pure functions (tested as strings).

Table names are the dataset names in upper case (``Device`` -> ``DEVICE``), columns the
contract's snake_case names, unquoted (Snowflake stores them in upper case, and the COPY
matches the Parquet columns with ``MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE``). Types are
mapped explicitly from the contract, never inferred from a file.

The gold column list is derived here from the contract, not from ``m7etl.core.gold``
(which needs Python 3.10+); a test keeps both in step.

This module must stay valid on Python 3.9 (the Glue job imports it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from m7etl.core import layout
from m7etl.core.contracts import Contract
from m7etl.exceptions import ConfigurationError

BUSINESS_DATE = "business_date"
AUDIT_TABLE = "LOAD_AUDIT"
STAGING_PREFIX = "M7_LOAD_"

SNOWFLAKE_TYPES = {
    "string": "VARCHAR",
    "integer": "NUMBER(38,0)",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP_NTZ",
}
INTEGER_TYPE = SNOWFLAKE_TYPES["integer"]
FLOAT_TYPE = SNOWFLAKE_TYPES["float"]
# Parquet as the gold files write it: logical types (date32, timestamp[us]) must be honoured.
PARQUET_FORMAT = "TYPE=PARQUET USE_LOGICAL_TYPE=TRUE"

# One row per load committed: what was loaded, from which object, by which run.
AUDIT_COLUMNS: list[tuple[str, str, bool]] = [
    ("dataset", "VARCHAR", True),
    (BUSINESS_DATE, "DATE", True),
    ("source_object", "VARCHAR", True),
    ("source_checksum", "VARCHAR", True),
    ("rows_in_file", INTEGER_TYPE, True),
    ("rows_loaded", INTEGER_TYPE, True),
    ("load_path", "VARCHAR", True),
    ("run_id", "VARCHAR", True),
    ("loaded_at", "TIMESTAMP_NTZ", True),
]

# A Snowflake object name, optionally qualified (db.schema.name); unquoted identifiers only.
_IDENT = r"[A-Za-z_][A-Za-z0-9_$]*"
OBJECT_NAME = re.compile(rf"^{_IDENT}(\.{_IDENT}){{0,2}}$")


@dataclass(frozen=True)
class GoldColumn:
    """One column of a gold table: name, Snowflake type, and whether it may be null."""

    name: str
    type: str
    nullable: bool = True

    def ddl(self) -> str:
        return f"{self.name} {self.type}" + ("" if self.nullable else " NOT NULL")


def metric_type(contract: Contract, agg: str, column: str | None) -> str:
    """count/count_distinct -> NUMBER(38,0), mean -> FLOAT, sum/min/max -> the column's type."""
    if agg in ("count", "count_distinct"):
        return INTEGER_TYPE
    if agg == "mean":
        return FLOAT_TYPE
    return SNOWFLAKE_TYPES[contract.column(column).type]


def gold_columns(contract: Contract) -> list[GoldColumn]:
    """The gold table's columns: business_date, then the snapshot or aggregate columns."""
    columns = [GoldColumn(BUSINESS_DATE, "DATE", nullable=False)]
    if contract.gold.kind == "snapshot":
        columns += [GoldColumn(c.name, SNOWFLAKE_TYPES[c.type], nullable=not c.required)
                    for c in contract.columns]
    else:
        columns += [GoldColumn(name, SNOWFLAKE_TYPES[contract.column(name).type])
                    for name in contract.gold.group_by]
        columns += [GoldColumn(m.name, metric_type(contract, m.agg, m.column))
                    for m in contract.gold.metrics]
    return columns


def table_name(dataset: str) -> str:
    name = dataset.upper()
    if not OBJECT_NAME.match(name) or "." in name:
        raise ConfigurationError(f"Dataset name '{dataset}' cannot be a Snowflake table name.")
    return name


def staging_table_name(dataset: str) -> str:
    return STAGING_PREFIX + table_name(dataset)


def check_object_name(name: str, what: str) -> str:
    """An unquoted, optionally qualified Snowflake name (stage, table); else a clear error."""
    if not OBJECT_NAME.match(name or ""):
        raise ConfigurationError(
            f"{what} '{name}' is not a Snowflake object name.",
            hint="Use letters, digits, _ and $, optionally qualified as DATABASE.SCHEMA.NAME.")
    return name


def quote_literal(value: str) -> str:
    """A Snowflake single-quoted string literal (backslash and quote escaped)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def date_literal(day: str) -> str:
    """``20250501`` -> ``'2025-05-01'::DATE`` (the day is checked first)."""
    day = layout.parse_day(day)
    return f"'{day[:4]}-{day[4:6]}-{day[6:]}'::DATE"


def create_table_sql(name: str, columns: Sequence[GoldColumn], *, temporary: bool = False,
                     replace: bool = False) -> str:
    head = "CREATE OR REPLACE" if replace else "CREATE"
    kind = " TEMPORARY" if temporary else ""
    exists = "" if replace else " IF NOT EXISTS"
    body = ",\n  ".join(c.ddl() for c in columns)
    return f"{head}{kind} TABLE{exists} {name} (\n  {body}\n)"


def create_gold_table_sql(contract: Contract) -> str:
    return create_table_sql(table_name(contract.dataset), gold_columns(contract))


def create_staging_table_sql(contract: Contract) -> str:
    """A session-scoped table the write_pandas fallback fills before the swap transaction."""
    return create_table_sql(staging_table_name(contract.dataset), gold_columns(contract),
                            temporary=True, replace=True)


def audit_columns() -> list[GoldColumn]:
    return [GoldColumn(n, t, not required) for n, t, required in AUDIT_COLUMNS]


def create_audit_table_sql() -> str:
    return create_table_sql(AUDIT_TABLE, audit_columns())


def table_columns_sql(names: Sequence[str]) -> str:
    """The columns the named tables of the current schema have now: one query for all.

    Rows are (table, column, data type, numeric scale). ``INFORMATION_SCHEMA`` lists only
    what the session's role may see, so a table the role cannot read looks missing.
    """
    listed = ", ".join(quote_literal(n.upper()) for n in names)
    return ("SELECT table_name, column_name, data_type, numeric_scale "
            "FROM information_schema.columns "
            f"WHERE table_schema = CURRENT_SCHEMA() AND table_name IN ({listed}) "
            "ORDER BY table_name, ordinal_position")


# What INFORMATION_SCHEMA.COLUMNS.DATA_TYPE says for each type the loader creates.
INFO_SCHEMA_TYPES = {"VARCHAR": "TEXT", INTEGER_TYPE: "NUMBER", FLOAT_TYPE: "FLOAT",
                     "BOOLEAN": "BOOLEAN", "DATE": "DATE", "TIMESTAMP_NTZ": "TIMESTAMP_NTZ"}


def type_matches(expected: str, data_type: str, numeric_scale) -> bool:
    """Whether a column reported as ``data_type`` holds the contract's ``expected`` type
    (an integer needs a NUMBER of scale 0: NUMBER(38,2) is a decimal)."""
    if INFO_SCHEMA_TYPES.get(expected) != str(data_type).upper():
        return False
    return expected != INTEGER_TYPE or int(numeric_scale or 0) == 0


def add_column_sql(name: str, column: GoldColumn) -> str:
    return f"ALTER TABLE {name} ADD COLUMN {column.name} {column.type}"


def retype_column_sql(name: str, column: GoldColumn) -> str:
    """Replace a column of the wrong type, keeping its old values beside it."""
    return (f"ALTER TABLE {name} RENAME COLUMN {column.name} TO {column.name}_old; "
            + add_column_sql(name, column))


def delete_day_sql(name: str, day: str) -> str:
    return f"DELETE FROM {name} WHERE {BUSINESS_DATE} = {date_literal(day)}"


def count_day_sql(name: str, day: str) -> str:
    return f"SELECT COUNT(*) FROM {name} WHERE {BUSINESS_DATE} = {date_literal(day)}"


def count_sql(name: str) -> str:
    return f"SELECT COUNT(*) FROM {name}"


def gold_file_name(dataset: str, day: str) -> str:
    """The gold object's name relative to the stage (the stage's URL is ``.../gold/``)."""
    return layout.base_name(layout.gold_key(dataset, day))


def copy_sql(name: str, stage: str, file_name: str) -> str:
    """The production load: Snowflake reads the gold file from the external stage itself.

    ``USE_LOGICAL_TYPE=TRUE`` because Snowflake ignores Parquet logical types by default: a
    ``timestamp[us]`` column is then read as its INT64 and fails or loads as a number into
    TIMESTAMP_NTZ (DuckDB, under fakesnow, always honours them, so only this text can show
    it). ``FORCE=TRUE`` because a reload of the same day re-reads a file Snowflake already
    loaded (its load metadata would otherwise skip it, and the day would be left empty).
    """
    check_object_name(stage, "Stage")
    return (f"COPY INTO {name} FROM @{stage} FILES=({quote_literal(file_name)}) "
            f"FILE_FORMAT=({PARQUET_FORMAT}) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE FORCE=TRUE")


def insert_from_staging_sql(name: str, staging: str, columns: Sequence[GoldColumn]) -> str:
    names = ", ".join(c.name for c in columns)
    return f"INSERT INTO {name} ({names}) SELECT {names} FROM {staging}"


def drop_table_sql(name: str) -> str:
    return f"DROP TABLE IF EXISTS {name}"


def audit_insert_sql(*, dataset: str, day: str, source_object: str, checksum: str,
                     rows_in_file: int, rows_loaded: int, load_path: str, run_id: str,
                     loaded_at: str) -> str:
    """One LOAD_AUDIT row; ``loaded_at`` is a UTC ``YYYY-MM-DD HH:MM:SS`` text."""
    values = [
        quote_literal(dataset), date_literal(day), quote_literal(source_object),
        quote_literal(checksum), str(int(rows_in_file)), str(int(rows_loaded)),
        quote_literal(load_path), quote_literal(run_id),
        f"{quote_literal(loaded_at)}::TIMESTAMP_NTZ",
    ]
    names = ", ".join(n for n, _t, _r in AUDIT_COLUMNS)
    return f"INSERT INTO {AUDIT_TABLE} ({names}) VALUES ({', '.join(values)})"


def create_stage_sql(stage: str, url: str, *, storage_integration: str | None = None) -> str:
    """An external stage over the gold folder (``s3://<bucket>/gold/`` or ``file:///.../gold/``)."""
    check_object_name(stage, "Stage")
    integration = ""
    if storage_integration:
        integration = " STORAGE_INTEGRATION = " + check_object_name(
            storage_integration, "Storage integration")
    return (f"CREATE OR REPLACE STAGE {stage} URL={quote_literal(url)}{integration} "
            f"FILE_FORMAT=({PARQUET_FORMAT})")
