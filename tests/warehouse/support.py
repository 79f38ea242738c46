"""Constants and small helpers of the warehouse tests."""

from __future__ import annotations

DAY1 = "20250501"
DAY2 = "20250502"
SECRET_ID = "m7-etl/snowflake-test"
PASSWORD = "s3cr3t-Pa55word!"  # a fake; tests assert it never shows in logs
STAGE = "M7_GOLD_STAGE"


def query(connection, statement: str) -> list[tuple]:
    cur = connection.cursor()
    cur.execute(statement)
    return cur.fetchall()


def scalar(connection, statement: str):
    return query(connection, statement)[0][0]
