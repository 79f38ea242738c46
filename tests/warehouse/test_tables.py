"""ensure_tables against fakesnow: create only what is missing, check what exists.

fakesnow (DuckDB) answers INFORMATION_SCHEMA.COLUMNS with Snowflake's type names (TEXT,
NUMBER with its scale, TIMESTAMP_NTZ), which is what these tests rely on. What it does not
check: roles and grants (Snowflake's INFORMATION_SCHEMA shows only the objects the role may
see, and CREATE TABLE needs the CREATE TABLE privilege on the schema; fakesnow has neither),
so "a table the role cannot see looks missing" is not tested here.
"""

from __future__ import annotations

import pytest

from m7etl.warehouse import sql
from m7etl.warehouse.loader import FAILED, LOADED, ensure_tables, load_day, table_problem
from warehouse.support import DAY1, STAGE, scalar


@pytest.fixture
def statements(monkeypatch):
    """Every statement the loader sends through fakesnow's cursor, in order (a spy: the
    real cursor still runs them)."""
    from fakesnow.cursor import FakeSnowflakeCursor

    sent: list[str] = []
    real = FakeSnowflakeCursor.execute

    def execute(self, command, *args, **kwargs):
        sent.append(" ".join(str(command).split()))
        return real(self, command, *args, **kwargs)

    monkeypatch.setattr(FakeSnowflakeCursor, "execute", execute)
    return sent


def ddl(sent: list[str]) -> list[str]:
    return [s for s in sent if s.startswith(("CREATE TABLE", "ALTER TABLE"))]


def test_tables_are_created_once_then_only_looked_up(conn, registry, source, statements):
    load_day(conn, registry, DAY1, source=source, stage=STAGE, run_id="r1")
    created = ddl(statements)
    assert sorted(s.split()[5] for s in created) == [
        "CHANNEL", "DEVICE", "EPG", "LOAD_AUDIT", "VIEWING"]
    statements.clear()
    results = load_day(conn, registry, DAY1, source=source, stage=STAGE, run_id="r2")
    assert [r.status for r in results] == [LOADED] * 4
    assert ddl(statements) == []  # the old loader ran 5 CREATE TABLE IF NOT EXISTS each time
    lookups = [s for s in statements if "information_schema.columns" in s]
    assert len(lookups) == 1


def test_a_missing_table_is_created_beside_existing_ones(conn, registry, source, statements):
    load_day(conn, registry, DAY1, source=source, stage=STAGE, run_id="r1", datasets=["EPG"])
    statements.clear()
    assert ensure_tables(conn, registry) == {}
    assert sorted(s.split()[5] for s in ddl(statements)) == ["CHANNEL", "DEVICE", "VIEWING"]


def test_wrong_type_names_table_column_and_fix(conn, registry, source):
    conn.cursor().execute(
        "CREATE TABLE EPG (business_date DATE, programme_id VARCHAR, channel_id NUMBER(38,0), "
        "title VARCHAR, category VARCHAR, start_time VARCHAR, end_time TIMESTAMP_NTZ, "
        "duration_s NUMBER(38,2), rating VARCHAR)")
    [r] = load_day(conn, registry, DAY1, source=source, stage=STAGE, run_id="r",
                   datasets=["EPG"])
    assert r.status == FAILED
    assert r.message.startswith(
        "Table EPG has start_time as TEXT (the contract says TIMESTAMP_NTZ), duration_s as "
        "NUMBER (the contract says NUMBER(38,0)); nothing loaded. Fix it first: "
        "ALTER TABLE EPG RENAME COLUMN start_time TO start_time_old; "
        "ALTER TABLE EPG ADD COLUMN start_time TIMESTAMP_NTZ; ")
    assert r.rows_in_file is None  # failed before the gold file was read
    assert scalar(conn, "SELECT COUNT(*) FROM EPG") == 0
    assert scalar(conn, "SELECT COUNT(*) FROM LOAD_AUDIT") == 0


def test_printed_fix_makes_the_next_load_work(conn, registry, source):
    conn.cursor().execute("CREATE TABLE EPG (business_date DATE, programme_id VARCHAR, "
                          "channel_id NUMBER(38,0), title VARCHAR, category VARCHAR, "
                          "start_time TIMESTAMP_NTZ, end_time TIMESTAMP_NTZ, rating VARCHAR, "
                          "duration_s VARCHAR)")
    [failed] = load_day(conn, registry, DAY1, source=source, stage=STAGE, run_id="r1",
                        datasets=["EPG"])
    fix = failed.message.split("Fix it first: ", 1)[1].split(" Then load again", 1)[0]
    for statement in fix.split("; "):
        conn.cursor().execute(statement)
    [r] = load_day(conn, registry, DAY1, source=source, stage=STAGE, run_id="r2",
                   datasets=["EPG"])
    assert r.status == LOADED, r.message
    assert scalar(conn, "SELECT COUNT(duration_s) FROM EPG") == r.rows_loaded == 80


def test_a_wrong_audit_table_fails_every_dataset(conn, registry, source):
    conn.cursor().execute("CREATE TABLE LOAD_AUDIT (dataset VARCHAR, business_date DATE)")
    results = load_day(conn, registry, DAY1, source=source, stage=STAGE, run_id="r")
    assert {r.status for r in results} == {FAILED}
    assert all(r.message.startswith("Table LOAD_AUDIT lacks column(s) source_object, ")
               for r in results)
    assert scalar(conn, "SELECT COUNT(*) FROM DEVICE") == 0


def test_extra_columns_are_left_alone_and_case_does_not_matter():
    expected = [sql.GoldColumn("business_date", "DATE"), sql.GoldColumn("n", "NUMBER(38,0)")]
    found = [("BUSINESS_DATE", "DATE", None), ("N", "NUMBER", 0), ("NOTE", "TEXT", None)]
    assert table_problem("T", expected, found) is None
