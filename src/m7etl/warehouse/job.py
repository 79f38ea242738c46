"""The ``gold_to_snowflake`` Glue job: arguments -> settings -> password -> loads.

``glue_src/gold_to_snowflake.py`` only calls :func:`main`. Arguments (the template passes
them as the job's DefaultArguments; ``--days`` and ``--datasets`` at run time)::

    --environment --data_bucket --snowflake_account --snowflake_user --snowflake_role
    --snowflake_warehouse --snowflake_database --snowflake_schema --snowflake_stage
    --snowflake_secret_id [--days YYYYMMDD,...] [--datasets Device,EPG]

They are read with ``awsglue.utils.getResolvedOptions`` on Glue, else with argparse (so the
job runs on a laptop too). No credential is ever an argument: the password is read from
Secrets Manager at run time, and neither it nor the connection is logged.

This module must stay valid on Python 3.9 (AWS Glue Python shell).
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from m7etl.core import layout
from m7etl.exceptions import ConfigurationError, M7Error, UsageError
from m7etl.warehouse.connect import SnowflakeSettings
from m7etl.warehouse.loader import FAILED, LOADED, LoadError, LoadResult, load_day

log = logging.getLogger("m7etl.warehouse.job")

ARGUMENTS = (
    "environment", "data_bucket", "snowflake_account", "snowflake_user", "snowflake_role",
    "snowflake_warehouse", "snowflake_database", "snowflake_schema", "snowflake_stage",
    "snowflake_secret_id",
)
RUN_TIME_ARGUMENTS = ("days", "datasets", "JOB_RUN_ID")
# botocore logs response bodies at DEBUG (the secret's value among them): keep these quiet.
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "snowflake.connector")
NO_STAGE = ("", "none", "-")  # an empty CloudFormation default may reach the job as "none"


@dataclass(frozen=True)
class JobConfig:
    environment: str
    data_bucket: str
    settings: SnowflakeSettings
    secret_id: str
    days: tuple[str, ...]
    datasets: tuple[str, ...] | None
    run_id: str


def _present(argv: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """The job's arguments as a dict (absent ones missing or empty)."""
    names = [n for n in ARGUMENTS + RUN_TIME_ARGUMENTS if _present(argv, n)]
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        getResolvedOptions = None  # not on Glue: plain argparse
    if getResolvedOptions is not None:
        # getResolvedOptions fails on any name it is given that is absent, so only the
        # present ones are asked for; the missing ones are reported by config_from_args.
        return dict(getResolvedOptions(list(argv), names))
    import argparse

    parser = argparse.ArgumentParser(prog="gold_to_snowflake", allow_abbrev=False)
    for name in ARGUMENTS + RUN_TIME_ARGUMENTS:
        parser.add_argument(f"--{name}", default="")
    known, _unknown = parser.parse_known_args(list(argv[1:]))  # Glue adds its own arguments
    return {k: v for k, v in vars(known).items() if v != ""}


def _split(text: str) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def today_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d")  # noqa: UP017 - Python 3.9


def config_from_args(args: dict[str, str], *, today: str | None = None) -> JobConfig:
    """Check the arguments and build the job's configuration (errors name the argument)."""
    missing = [f"--{n}" for n in ("environment", "data_bucket", "snowflake_secret_id")
               if not args.get(n)]
    if missing:
        raise ConfigurationError(f"Missing job argument(s): {', '.join(missing)}.",
                                 hint="The stack sets them as the Glue job's DefaultArguments.")
    stage = args.get("snowflake_stage", "")
    settings = SnowflakeSettings(
        account=args.get("snowflake_account", ""), user=args.get("snowflake_user", ""),
        role=args.get("snowflake_role", ""), warehouse=args.get("snowflake_warehouse", ""),
        database=args.get("snowflake_database", ""), schema=args.get("snowflake_schema", ""),
        stage="" if stage.strip().lower() in NO_STAGE else stage.strip(),
    ).check()
    days = _split(args.get("days", "")) or [today or today_utc()]
    for day in days:
        try:
            layout.parse_day(day)
        except ValueError as exc:
            raise UsageError(f"--days: {exc}.", hint="Use YYYYMMDD[,YYYYMMDD...].") from None
    datasets = tuple(_split(args.get("datasets", ""))) or None
    run_id = args.get("JOB_RUN_ID") or (
        datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-")  # noqa: UP017 - Python 3.9
        + uuid.uuid4().hex[:8])
    return JobConfig(args["environment"], args["data_bucket"], settings,
                     args["snowflake_secret_id"], tuple(dict.fromkeys(days)), datasets, run_id)


def run_job(config: JobConfig, *, read_password: Callable[[str], str] | None = None,
            connect: Callable | None = None, storage=None, registry=None) -> list[LoadResult]:
    """Read the password, connect, load every day; raise :class:`LoadError` if any failed.

    Each collaborator can be passed in (tests give moto, fakesnow and a local folder).
    """
    from m7etl.core.contracts import load_registry
    from m7etl.storage import open_storage
    from m7etl.warehouse.connect import connect_snowflake
    from m7etl.warehouse.secrets import read_password as default_read_password

    registry = registry if registry is not None else load_registry()
    storage = storage if storage is not None else open_storage(f"s3://{config.data_bucket}")
    password = (read_password or default_read_password)(config.secret_id)
    conn = (connect or connect_snowflake)(config.settings, password)
    del password
    log.info("run %s: loading %s into %s.%s (%s)", config.run_id, ",".join(config.days),
             config.settings.database, config.settings.schema,
             f"COPY from @{config.settings.stage}" if config.settings.stage
             else "write_pandas fallback")
    results: list[LoadResult] = []
    try:
        for day in config.days:
            results += load_day(conn, registry, day, source=storage,
                                stage=config.settings.stage or None, run_id=config.run_id,
                                datasets=config.datasets)
    finally:
        conn.close()
    for r in results:
        log.info("load %s", json.dumps(r.to_dict(), sort_keys=True))
    failed = [r for r in results if r.status == FAILED]
    if failed:
        first = failed[0]
        raise LoadError(
            f"{len(failed)} of {len(results)} load(s) failed; first: {first.dataset} "
            f"{first.day}: {first.message}",
            hint="Fix the cause and run the job again for those days (reloads are safe).")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """The Glue entry point: exit code 0 when every load succeeded or was skipped."""
    argv = list(sys.argv if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        config = config_from_args(parse_args(argv))
        results = run_job(config)
    except M7Error as exc:
        log.error("gold_to_snowflake failed: %s", exc)
        return 1
    loaded = sum(1 for r in results if r.status == LOADED)
    log.info("gold_to_snowflake done: %d load(s), %d skipped (no input)", loaded,
             len(results) - loaded)
    return 0
