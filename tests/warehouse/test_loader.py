"""load_day against fakesnow: the COPY path (file:// stage) and the write_pandas fallback.

What fakesnow (DuckDB underneath) does not check, so these tests cannot either:

- roles and grants: every statement runs as if the role owned everything (USAGE on the
  stage, INSERT/DELETE on the tables, CREATE TABLE on the schema are never refused);
- Parquet logical types: DuckDB always reads timestamp[us] as a timestamp, and fakesnow
  ignores ``USE_LOGICAL_TYPE``; Snowflake does not without it ("timestamps stay timestamps"
  below passes either way; test_sql.py checks the COPY text instead);
- stage URLs and storage integrations: the stage is a ``file://`` folder, never an
  ``s3://`` URL behind a STORAGE_INTEGRATION (its IAM role and external id are untested);
- Snowflake's transaction rule that DDL commits an open transaction (DuckDB's DDL is
  transactional), which is why the loader stages before it opens one.
"""

from __future__ import annotations

import datetime
import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m7etl.exceptions import UsageError
from m7etl.warehouse import sql
from m7etl.warehouse.loader import (
    FAILED,
    LOADED,
    PATH_COPY,
    PATH_WRITE_PANDAS,
    SKIPPED_NO_INPUT,
    load_day,
    table_counts,
)
from warehouse.support import DAY1, DAY2, STAGE, query, scalar

PATHS = {"copy": STAGE, "write_pandas": None}


@pytest.fixture(params=sorted(PATHS))
def stage(request):
    """Each test runs on both load paths."""
    return PATHS[request.param]


def gold_rows(source, dataset: str, day: str) -> int:
    return pq.read_metadata(source.describe(f"gold/{dataset}_{day}.parquet")).num_rows


def by_dataset(results):
    return {r.dataset: r for r in results}


def test_first_load(conn, registry, source, stage):
    results = by_dataset(load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r1"))
    assert set(results) == {"Channel", "Device", "EPG", "Viewing"}
    for name, r in results.items():
        expected = gold_rows(source, name, DAY1)
        assert (r.status, r.rows_in_file, r.rows_loaded) == (LOADED, expected, expected), r.message
        assert r.path == (PATH_COPY if stage else PATH_WRITE_PANDAS)
        assert r.table == name.upper()
        assert r.source_key == f"gold/{name}_{DAY1}.parquet"
        data = source.read_bytes(r.source_key)
        assert r.checksum == hashlib.sha256(data).hexdigest()
    counts = table_counts(conn, registry)
    assert counts == {name.upper(): gold_rows(source, name, DAY1) for name in results}
    assert counts["DEVICE"] == 120  # one row per device: the sample has no duplicate keys
    audit = query(conn, "SELECT dataset, business_date, source_object, source_checksum, "
                        "rows_in_file, rows_loaded, load_path, run_id, loaded_at FROM LOAD_AUDIT "
                        "ORDER BY dataset")
    assert [a[0] for a in audit] == ["Channel", "Device", "EPG", "Viewing"]
    for row in audit:
        r = results[row[0]]
        assert row[1] == datetime.date(2025, 5, 1)
        assert row[2] == source.describe(r.source_key)
        assert row[3:8] == (r.checksum, r.rows_in_file, r.rows_loaded, r.path, "r1")
        assert isinstance(row[8], datetime.datetime)


def test_reload_same_day_keeps_counts(conn, registry, source, stage):
    load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r1")
    first = table_counts(conn, registry)
    again = load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r2")
    assert all(r.status == LOADED for r in again), [r.message for r in again]
    assert table_counts(conn, registry) == first
    assert scalar(conn, "SELECT COUNT(*) FROM LOAD_AUDIT") == 8
    assert scalar(conn, "SELECT COUNT(DISTINCT run_id) FROM LOAD_AUDIT") == 2


def test_two_days_and_reloading_one(conn, registry, source, stage):
    day1 = by_dataset(load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r1"))
    day2 = by_dataset(load_day(conn, registry, DAY2, source=source, stage=stage, run_id="r1"))
    assert {n: r.status for n, r in day2.items()} == {
        "Channel": SKIPPED_NO_INPUT, "Device": LOADED, "EPG": SKIPPED_NO_INPUT, "Viewing": LOADED}
    both = table_counts(conn, registry)
    assert both["DEVICE"] == day1["Device"].rows_loaded + day2["Device"].rows_loaded
    assert both["VIEWING"] == day1["Viewing"].rows_loaded + day2["Viewing"].rows_loaded
    assert both["EPG"] == day1["EPG"].rows_loaded
    load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r2")
    assert table_counts(conn, registry) == both  # the reload replaced DAY1 only
    dates = query(conn, "SELECT business_date, COUNT(*) FROM DEVICE GROUP BY 1 ORDER BY 1")
    assert dates == [(datetime.date(2025, 5, 1), day1["Device"].rows_loaded),
                     (datetime.date(2025, 5, 2), day2["Device"].rows_loaded)]


def test_dataset_without_input_is_skipped_and_says_why(conn, registry, source, stage):
    results = by_dataset(load_day(conn, registry, DAY2, source=source, stage=stage, run_id="r1",
                                  datasets=["EPG"]))
    assert list(results) == ["EPG"]
    r = results["EPG"]
    assert r.status == SKIPPED_NO_INPUT
    assert r.rows_loaded is None
    assert "No input for EPG on 20250502" in r.message
    assert "gold/EPG_20250502.parquet" in r.message


def test_skip_mentions_rows_left_from_an_earlier_load(conn, registry, source, data_dir, stage):
    load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r1", datasets=["EPG"])
    for path in (data_dir / "silver" / DAY1 / "EPG").glob("*.parquet"):
        path.unlink()
    (data_dir / "gold" / f"EPG_{DAY1}.parquet").unlink()
    [r] = load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r2",
                   datasets=["EPG"])
    assert r.status == SKIPPED_NO_INPUT
    assert "EPG keeps 80 row(s) of that day from an earlier load" in r.message


def test_missing_gold_file_with_input_is_an_error_naming_the_key(conn, registry, source,
                                                                 data_dir, stage):
    (data_dir / "gold" / f"Device_{DAY1}.parquet").unlink()
    results = by_dataset(load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r1"))
    r = results["Device"]
    assert r.status == FAILED
    assert f"Gold file {data_dir / 'gold' / 'Device_20250501.parquet'} is missing" in r.message
    assert "run silver_to_gold for that day" in r.message
    assert results["EPG"].status == LOADED  # one failure does not stop the others
    assert table_counts(conn, registry)["DEVICE"] == 0


def test_count_mismatch_rolls_back(conn, registry, source, data_dir, stage):
    load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r1")
    before = table_counts(conn, registry)
    audit_before = scalar(conn, "SELECT COUNT(*) FROM LOAD_AUDIT")
    # A gold file whose first rows belong to another day: the day's count comes out short.
    path = data_dir / "gold" / f"Device_{DAY1}.parquet"
    table = pq.read_table(path)
    dates = table.column("business_date").to_pylist()
    dates[:5] = [datetime.date(2025, 4, 30)] * 5
    table = table.set_column(0, table.schema.field(0), pa.array(dates, pa.date32()))
    pq.write_table(table, path)
    [r] = load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r2",
                   datasets=["Device"])
    assert r.status == FAILED
    assert r.rows_in_file == 120 and r.rows_loaded == 115
    assert "DEVICE holds 115 row(s) for 20250501 after the load but the gold file" in r.message
    assert "holds 120; rolled back" in r.message
    assert table_counts(conn, registry) == before  # the delete was rolled back too
    assert scalar(conn, "SELECT COUNT(*) FROM DEVICE WHERE business_date = '2025-04-30'") == 0
    assert scalar(conn, "SELECT COUNT(*) FROM LOAD_AUDIT") == audit_before


def test_both_paths_load_the_same_rows(fake_snowflake, data_dir, registry, source):
    import snowflake.connector

    from m7etl.local.warehouse import stage_url

    tables = {}
    for database, stage in (("VIA_COPY", STAGE), ("VIA_PANDAS", None)):
        connection = snowflake.connector.connect(database=database, schema="GOLD")
        connection.cursor().execute(sql.create_stage_sql(STAGE, stage_url(data_dir)))
        load_day(connection, registry, DAY1, source=source, stage=stage, run_id="r")
        tables[database] = {
            c.dataset: sorted(query(connection, f"SELECT * FROM {c.dataset.upper()}"), key=repr)
            for c in registry}
        connection.close()
    assert tables["VIA_COPY"] == tables["VIA_PANDAS"]
    device = tables["VIA_COPY"]["Device"][0]
    assert isinstance(device[0], datetime.date)
    assert any(isinstance(v, datetime.datetime) for v in device)  # timestamps stay timestamps
    gold = pq.read_table(source.describe(f"gold/Device_{DAY1}.parquet")).to_pylist()
    assert sorted((tuple(row.values()) for row in gold), key=repr) == tables["VIA_COPY"]["Device"]


def test_unknown_dataset_is_a_usage_error(conn, registry, source):
    with pytest.raises(UsageError, match="Unknown dataset\\(s\\): Billing"):
        load_day(conn, registry, DAY1, source=source, stage=STAGE, run_id="r", datasets=["Billing"])


def test_bad_day_is_a_usage_error(conn, registry, source):
    with pytest.raises(UsageError, match="not a real calendar date"):
        load_day(conn, registry, "20250230", source=source, stage=STAGE, run_id="r")


def test_missing_stage_fails_with_snowflake_message(conn, registry, source):
    [r] = load_day(conn, registry, DAY1, source=source, stage="NO_SUCH_STAGE", run_id="r",
                   datasets=["EPG"])
    assert r.status == FAILED
    assert r.message.startswith("Snowflake refused the load of gold/EPG_20250501.parquet into EPG")
    assert scalar(conn, "SELECT COUNT(*) FROM EPG") == 0


def test_table_lacking_a_contract_column_is_reported(conn, registry, source):
    conn.cursor().execute("CREATE TABLE EPG (business_date DATE, programme_id VARCHAR)")
    [r] = load_day(conn, registry, DAY1, source=source, stage=STAGE, run_id="r",
                   datasets=["EPG"])
    assert r.status == FAILED
    assert "Table EPG lacks column(s) channel_id, title" in r.message
    assert "ALTER TABLE EPG ADD COLUMN channel_id NUMBER(38,0)" in r.message


def test_a_gold_file_of_no_row_group_loads_no_row_on_both_paths(conn, registry, source, stage):
    """A day whose silver files held no row gives a gold file of no row group (nothing was
    written into it); write_pandas iterated its batches and iter_batches refused the file."""
    from m7etl.core.gold import gold_schema

    key = f"gold/Channel_{DAY1}.parquet"
    with pq.ParquetWriter(source.describe(key), gold_schema(registry["Channel"])):
        pass  # no row group, as process_gold writes when no builder table comes out
    assert pq.read_metadata(source.describe(key)).num_row_groups == 0
    results = by_dataset(load_day(conn, registry, DAY1, source=source, stage=stage, run_id="r1",
                                  datasets=["Channel"]))
    assert (results["Channel"].status, results["Channel"].rows_loaded) == (LOADED, 0)
    assert scalar(conn, "SELECT COUNT(*) FROM CHANNEL") == 0
