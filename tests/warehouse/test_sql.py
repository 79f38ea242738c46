"""The SQL text of the load, as strings; the gold columns stay in step with aggregate.py.

Text is the only check for what fakesnow accepts but does not act on: the COPY's and the
stage's ``USE_LOGICAL_TYPE=TRUE`` (DuckDB honours Parquet logical types anyway), the stage's
``s3://`` URL and STORAGE_INTEGRATION (fakesnow never reaches S3 nor checks an integration),
and the grants the statements need (fakesnow has no roles).
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from m7etl.core.contracts import parse_contract
from m7etl.core.gold import gold_schema
from m7etl.exceptions import ConfigurationError
from m7etl.warehouse import sql

ARROW_TO_SNOWFLAKE = {
    pa.string(): "VARCHAR", pa.int64(): "NUMBER(38,0)", pa.float64(): "FLOAT",
    pa.bool_(): "BOOLEAN", pa.date32(): "DATE", pa.timestamp("us"): "TIMESTAMP_NTZ",
}

SMALL = parse_contract({
    "dataset": "Box",
    "columns": [
        {"name": "box_id", "type": "string", "required": True},
        {"name": "size_cm", "type": "integer"},
        {"name": "weight_kg", "type": "float"},
        {"name": "is_open", "type": "boolean"},
        {"name": "made_on", "type": "date"},
        {"name": "seen_at", "type": "timestamp", "required": True},
    ],
    "primary_key": ["box_id"],
    "gold": {"kind": "snapshot", "order_by": ["seen_at"]},
}, "<box>")

AGG = parse_contract({
    "dataset": "Views",
    "columns": [
        {"name": "channel_id", "type": "integer", "required": True},
        {"name": "device_id", "type": "string"},
        {"name": "duration_s", "type": "integer"},
        {"name": "score", "type": "float"},
    ],
    "gold": {"kind": "aggregate", "group_by": ["channel_id"], "metrics": [
        {"name": "sessions", "agg": "count"},
        {"name": "viewers", "agg": "count_distinct", "column": "device_id"},
        {"name": "total_duration_s", "agg": "sum", "column": "duration_s"},
        {"name": "avg_score", "agg": "mean", "column": "score"},
        {"name": "first_device", "agg": "min", "column": "device_id"},
        {"name": "max_score", "agg": "max", "column": "score"},
    ]},
}, "<views>")


def test_type_mapping_is_explicit():
    assert sql.SNOWFLAKE_TYPES == {
        "string": "VARCHAR", "integer": "NUMBER(38,0)", "float": "FLOAT",
        "boolean": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMP_NTZ",
    }


@pytest.mark.parametrize("contract", [SMALL, AGG], ids=["snapshot", "aggregate"])
def test_columns_match_gold_schema_of_test_contracts(contract):
    schema = gold_schema(contract)
    columns = sql.gold_columns(contract)
    assert [c.name for c in columns] == schema.names
    assert [c.type for c in columns] == [ARROW_TO_SNOWFLAKE[f.type] for f in schema]


def test_columns_match_gold_schema_of_every_builtin_contract(registry):
    for contract in registry:
        schema = gold_schema(contract)
        columns = sql.gold_columns(contract)
        assert [c.name for c in columns] == schema.names, contract.dataset
        assert [c.type for c in columns] == [ARROW_TO_SNOWFLAKE[f.type] for f in schema]
        assert [c.nullable for c in columns] == [f.nullable for f in schema]


def test_create_snapshot_table():
    assert sql.create_gold_table_sql(SMALL) == (
        "CREATE TABLE IF NOT EXISTS BOX (\n"
        "  business_date DATE NOT NULL,\n"
        "  box_id VARCHAR NOT NULL,\n"
        "  size_cm NUMBER(38,0),\n"
        "  weight_kg FLOAT,\n"
        "  is_open BOOLEAN,\n"
        "  made_on DATE,\n"
        "  seen_at TIMESTAMP_NTZ NOT NULL\n"
        ")")


def test_create_aggregate_table_maps_metric_types():
    assert sql.create_gold_table_sql(AGG) == (
        "CREATE TABLE IF NOT EXISTS VIEWS (\n"
        "  business_date DATE NOT NULL,\n"
        "  channel_id NUMBER(38,0),\n"
        "  sessions NUMBER(38,0),\n"
        "  viewers NUMBER(38,0),\n"
        "  total_duration_s NUMBER(38,0),\n"
        "  avg_score FLOAT,\n"
        "  first_device VARCHAR,\n"
        "  max_score FLOAT\n"
        ")")


def test_staging_table_is_temporary_and_replaced():
    text = sql.create_staging_table_sql(SMALL)
    assert text.startswith("CREATE OR REPLACE TEMPORARY TABLE M7_LOAD_BOX (\n")


def test_audit_table():
    assert sql.create_audit_table_sql() == (
        "CREATE TABLE IF NOT EXISTS LOAD_AUDIT (\n"
        "  dataset VARCHAR NOT NULL,\n"
        "  business_date DATE NOT NULL,\n"
        "  source_object VARCHAR NOT NULL,\n"
        "  source_checksum VARCHAR NOT NULL,\n"
        "  rows_in_file NUMBER(38,0) NOT NULL,\n"
        "  rows_loaded NUMBER(38,0) NOT NULL,\n"
        "  load_path VARCHAR NOT NULL,\n"
        "  run_id VARCHAR NOT NULL,\n"
        "  loaded_at TIMESTAMP_NTZ NOT NULL\n"
        ")")


def test_copy_statement_is_the_production_one():
    # Checked as text because no stand-in can see it: Snowflake ignores Parquet logical types
    # unless USE_LOGICAL_TYPE=TRUE (a timestamp[us] column is then its raw INT64), while
    # DuckDB under fakesnow always honours them and ignores the option, so the loader tests'
    # "timestamps stay timestamps" passes with or without it.
    assert sql.copy_sql("DEVICE", "M7_GOLD_STAGE", "Device_20250501.parquet") == (
        "COPY INTO DEVICE FROM @M7_GOLD_STAGE FILES=('Device_20250501.parquet') "
        "FILE_FORMAT=(TYPE=PARQUET USE_LOGICAL_TYPE=TRUE) "
        "MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE FORCE=TRUE")
    assert sql.copy_sql("DEVICE", "M7_ETL.GOLD.M7_GOLD_STAGE", "x.parquet").startswith(
        "COPY INTO DEVICE FROM @M7_ETL.GOLD.M7_GOLD_STAGE ")


def test_day_statements():
    assert sql.delete_day_sql("EPG", "20250501") == (
        "DELETE FROM EPG WHERE business_date = '2025-05-01'::DATE")
    assert sql.count_day_sql("EPG", "20250501") == (
        "SELECT COUNT(*) FROM EPG WHERE business_date = '2025-05-01'::DATE")
    assert sql.gold_file_name("EPG", "20250501") == "EPG_20250501.parquet"
    with pytest.raises(ValueError, match="not a real calendar date"):
        sql.delete_day_sql("EPG", "20250231")
    with pytest.raises(ValueError, match="YYYYMMDD"):
        sql.delete_day_sql("EPG", "1 OR 1=1")


def test_insert_from_staging():
    assert sql.insert_from_staging_sql("BOX", "M7_LOAD_BOX", sql.gold_columns(SMALL)[:3]) == (
        "INSERT INTO BOX (business_date, box_id, size_cm) "
        "SELECT business_date, box_id, size_cm FROM M7_LOAD_BOX")


def test_audit_insert_quotes_values():
    text = sql.audit_insert_sql(
        dataset="Device", day="20250501", source_object="s3://b/gold/Device_20250501.parquet",
        checksum="ab" * 32, rows_in_file=3, rows_loaded=3, load_path="copy",
        run_id="jr_1'; DROP TABLE X; --", loaded_at="2025-05-02 03:04:05")
    assert text == (
        "INSERT INTO LOAD_AUDIT (dataset, business_date, source_object, source_checksum, "
        "rows_in_file, rows_loaded, load_path, run_id, loaded_at) VALUES ('Device', "
        "'2025-05-01'::DATE, 's3://b/gold/Device_20250501.parquet', '" + "ab" * 32 + "', 3, 3, "
        "'copy', 'jr_1''; DROP TABLE X; --', '2025-05-02 03:04:05'::TIMESTAMP_NTZ)")


def test_quote_literal_escapes_backslash_and_quote():
    assert sql.quote_literal("a'b\\c") == "'a''b\\\\c'"


def test_stage_statements():
    # The stage's own format carries USE_LOGICAL_TYPE too (for anyone querying @stage);
    # fakesnow accepts and ignores it, and never checks the URL or the integration.
    assert sql.create_stage_sql("M7_GOLD_STAGE", "file:///tmp/data/gold/") == (
        "CREATE OR REPLACE STAGE M7_GOLD_STAGE URL='file:///tmp/data/gold/' "
        "FILE_FORMAT=(TYPE=PARQUET USE_LOGICAL_TYPE=TRUE)")
    assert sql.create_stage_sql("M7_GOLD_STAGE", "s3://m7-etl-data-solocco-test/gold/",
                                storage_integration="M7_S3_INT") == (
        "CREATE OR REPLACE STAGE M7_GOLD_STAGE URL='s3://m7-etl-data-solocco-test/gold/' "
        "STORAGE_INTEGRATION = M7_S3_INT FILE_FORMAT=(TYPE=PARQUET USE_LOGICAL_TYPE=TRUE)")


def test_table_columns_is_one_query_for_every_table():
    assert sql.table_columns_sql(["LOAD_AUDIT", "Device", "EPG"]) == (
        "SELECT table_name, column_name, data_type, numeric_scale "
        "FROM information_schema.columns WHERE table_schema = CURRENT_SCHEMA() "
        "AND table_name IN ('LOAD_AUDIT', 'DEVICE', 'EPG') ORDER BY table_name, ordinal_position")


@pytest.mark.parametrize(("expected", "data_type", "scale", "matches"), [
    ("VARCHAR", "TEXT", None, True), ("NUMBER(38,0)", "NUMBER", 0, True),
    ("NUMBER(38,0)", "NUMBER", 2, False), ("NUMBER(38,0)", "FLOAT", None, False),
    ("FLOAT", "FLOAT", None, True), ("TIMESTAMP_NTZ", "TIMESTAMP_LTZ", None, False),
    ("TIMESTAMP_NTZ", "timestamp_ntz", None, True), ("DATE", "TEXT", None, False),
    ("BOOLEAN", "BOOLEAN", None, True),
])
def test_information_schema_types(expected, data_type, scale, matches):
    # The DATA_TYPE names are Snowflake's (TEXT for VARCHAR, NUMBER with a scale).
    assert sql.type_matches(expected, data_type, scale) is matches


def test_fix_statements():
    column = sql.GoldColumn("seen_at", "TIMESTAMP_NTZ", nullable=False)
    assert sql.add_column_sql("BOX", column) == "ALTER TABLE BOX ADD COLUMN seen_at TIMESTAMP_NTZ"
    assert sql.retype_column_sql("BOX", column) == (
        "ALTER TABLE BOX RENAME COLUMN seen_at TO seen_at_old; "
        "ALTER TABLE BOX ADD COLUMN seen_at TIMESTAMP_NTZ")


@pytest.mark.parametrize("name", ["", "1STAGE", "a b", "x; DROP TABLE y", "a.b.c.d", "@s"])
def test_object_names_are_checked(name):
    with pytest.raises(ConfigurationError, match="not a Snowflake object name"):
        sql.copy_sql("DEVICE", name, "f.parquet")


def test_table_names():
    assert sql.table_name("Device") == "DEVICE"
    assert sql.staging_table_name("EPG") == "M7_LOAD_EPG"
