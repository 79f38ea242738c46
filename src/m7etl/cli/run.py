"""``m7etl run --local``: the whole pipeline on this machine, no AWS account needed."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from m7etl.cli.options import EXIT_FAILED, EXIT_INTERRUPTED
from m7etl.cli.render import run_summary
from m7etl.core.contracts import load_registry
from m7etl.core.ingest import SKIPPED
from m7etl.core.raw_to_silver import Thresholds
from m7etl.exceptions import UsageError
from m7etl.local.runner import new_run_id, run_local
from m7etl.storage import LocalStorage

DEFAULT_DATA_DIR = Path(".work") / "data"
DEFAULT_WAREHOUSE_DIR = Path(".work") / "warehouse"


@click.command("run")
@click.option("--local", "local", is_flag=True, help="Run every stage on this machine.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR,
              show_default=True, help="A folder laid out like the data bucket (landing/, raw/, ...).")
@click.option("--date", "day", metavar="YYYYMMDD",
              help="Process this day (default: the days of the new files).")
@click.option("--error-threshold", type=float, default=5.0, show_default=True,
              help="Percent of rejected rows above which a file fails the quality gate.")
@click.option("--warning-threshold", type=float, default=10.0, show_default=True,
              help="Percent of rows with warnings above which a file is flagged.")
@click.option("--contracts", type=click.Path(file_okay=False, path_type=Path),
              help="A folder of contract YAML files (default: the built-in contracts).")
@click.option("--strict", is_flag=True,
              help="Exit with code 2 if any file fails, is quarantined or is skipped, or a load fails.")
@click.option("--no-load", is_flag=True, help="Stop after gold (skip the warehouse load).")
@click.option("--warehouse-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_WAREHOUSE_DIR, show_default=True,
              help="Folder of the local warehouse (fakesnow database files, kept between runs).")
def command(local: bool, data_dir: Path, day: str | None, error_threshold: float,
            warning_threshold: float, contracts: Path | None, strict: bool, no_load: bool,
            warehouse_dir: Path) -> None:
    """Run landing -> raw -> silver -> gold -> warehouse and write the execution log.

    Example: m7etl run --local --data-dir .work/demo --strict
    """
    if not local:
        raise UsageError("Only the local run is available here.",
                         hint="Add --local (the AWS pipeline is started by its S3 trigger or the DAG).")
    if not data_dir.is_dir():
        raise UsageError(f"Data folder {data_dir} does not exist.",
                         hint="Create it with a landing/ folder of CSV files, or run `make demo`.")
    for name, value in (("--error-threshold", error_threshold), ("--warning-threshold", warning_threshold)):
        if not 0 <= value <= 100:
            raise UsageError(f"{name} {value} is not a percentage.", hint="Use a value from 0 to 100.")
    registry = load_registry(contracts)
    storage = LocalStorage(data_dir)
    bar = None

    def on_plan(days: list[str], total: int) -> None:
        nonlocal bar
        if not total:
            return
        click.echo(f"Processing {total} raw file(s) for {', '.join(days)} in {storage.url}", err=True)
        bar = click.progressbar(length=total, label="raw -> silver", file=sys.stderr)
        bar.__enter__()

    def on_file(_key, _result) -> None:
        bar.update(1)

    run_id = new_run_id()  # one id for the execution log and the warehouse's LOAD_AUDIT
    warehouse = None
    if not no_load:
        from m7etl.local.warehouse import LocalWarehouse  # fakesnow: imported only when loading

        warehouse = LocalWarehouse(data_dir, warehouse_dir, registry, run_id=run_id)

    try:
        with sigterm_as_interrupt():
            result = run_local(storage, registry, warehouse=warehouse, day=day,
                               thresholds=Thresholds(error_threshold, warning_threshold),
                               on_plan=on_plan, on_file=on_file, run_id=run_id)
    except KeyboardInterrupt:
        click.echo("\nInterrupted: what the run finished is kept (each finished day has its "
                   "execution log). Run the same command again: it finishes every day left "
                   "half-done.", err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    for line in run_summary(result):
        click.echo(line)
    if strict and (any(f.status != "ok" for d in result.days for f in d.files)
                   or any(i.status == SKIPPED for i in result.ingested)
                   or any(x["status"] == "failed" for d in result.days for x in d.load or [])):
        raise SystemExit(EXIT_FAILED)


def _terminated(_signum, _frame) -> None:
    raise KeyboardInterrupt  # SIGTERM takes Ctrl-C's path: every cleanup on the way out runs


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a service manager's stop) acts as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
