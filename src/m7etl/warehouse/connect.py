"""The Snowflake connection of the Glue job (the local fakesnow one is in m7etl.local).

The password is passed straight to the connector; it is never stored in the settings
object, never logged and never part of an error message.

This module must stay valid on Python 3.9 (the Glue job imports it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

from m7etl.exceptions import ConfigurationError
from m7etl.warehouse import sql

QUERY_TAG = "m7etl gold_to_snowflake"


@dataclass(frozen=True)
class SnowflakeSettings:
    """Where to load: everything but the password (which comes from Secrets Manager)."""

    account: str
    user: str
    role: str
    warehouse: str
    database: str
    schema: str
    stage: str = ""  # external stage over s3://<data bucket>/gold/; empty = write_pandas

    def check(self) -> SnowflakeSettings:
        missing = [f"--snowflake_{f.name}" for f in fields(self)
                   if f.name != "stage" and not getattr(self, f.name)]
        if missing:
            raise ConfigurationError(
                f"Snowflake is not configured: {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} empty.",
                hint="Set the stack's Snowflake parameters (SnowflakeAccount, ...) or pass the "
                     "job arguments.")
        for name in ("warehouse", "database", "schema"):
            sql.check_object_name(getattr(self, name), f"Snowflake {name}")
        if self.stage:
            sql.check_object_name(self.stage, "Snowflake stage")
        return self


def connect_snowflake(settings: SnowflakeSettings, password: str):
    """A Snowflake connection in the loader's database and schema (autocommit on; the loader
    opens its own transactions)."""
    import snowflake.connector
    from snowflake.connector.errors import DatabaseError

    settings.check()
    logging.getLogger("snowflake.connector").setLevel(logging.WARNING)
    try:
        return snowflake.connector.connect(
            account=settings.account, user=settings.user, password=password,
            role=settings.role, warehouse=settings.warehouse, database=settings.database,
            schema=settings.schema, application="m7etl", login_timeout=60,
            session_parameters={"QUERY_TAG": QUERY_TAG, "TIMEZONE": "UTC"},
        )
    except DatabaseError as exc:
        raise ConfigurationError(
            f"Cannot log in to Snowflake account {settings.account} as {settings.user} "
            f"(role {settings.role}): {getattr(exc, 'msg', None) or type(exc).__name__}.",
            hint="Check the account identifier, user and role, and the password in the secret.",
        ) from None
