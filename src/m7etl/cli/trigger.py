"""``m7etl trigger --env E``: the guide's step 4.4 (start the DAG by hand), and ``--wait``."""

from __future__ import annotations

import click

from m7etl.cli.options import EXIT_FAILED, EXIT_INTERRUPTED, Context, env_options
from m7etl.cli.render.airflow import RunWatcher, show_outcome, show_stopped, show_trigger
from m7etl.deploy.runs import (
    DEFAULT_POLL_S,
    DEFAULT_TIMEOUT_S,
    again_command,
    follow_run,
    open_routes,
    trigger_run,
)


@click.command("trigger")
@env_options
@click.option("--date", "day", metavar="YYYYMMDD",
              help="The day to process, put in the run's conf (default: the DAG picks).")
@click.option("--wait", is_flag=True,
              help="Follow the run to its end; exit 0 on success, 2 when it failed.")
@click.option("--follow", "follow", metavar="RUN_ID",
              help="Follow this existing run instead of starting one (implies --wait).")
@click.option("--timeout", type=click.IntRange(min=1), default=DEFAULT_TIMEOUT_S,
              show_default=True, metavar="SECONDS", help="How long --wait follows the run.")
@click.option("--poll-interval", "poll", type=click.FloatRange(min=0), default=DEFAULT_POLL_S,
              show_default=True, metavar="SECONDS", help="Seconds between two looks at the run.")
@click.option("--via", type=click.Choice(["auto", "cli-token", "rest-api"]), default="auto",
              show_default=True,
              help="MWAA route: auto tries the CLI token, then InvokeRestApi.")
def command(ctx: Context, day: str | None, wait: bool, follow: str | None, timeout: int,
            poll: float, via: str) -> None:
    """Start the m7_etl_pipeline DAG with the day in its conf, through an MWAA CLI token or
    InvokeRestApi. With --wait, print each task state change until the run ends and exit
    with its outcome (2 when it failed, naming the failed tasks).

    Example: m7etl trigger --env test --date 20250501 --wait
    """
    routes = open_routes(ctx.config, ctx.clients, via)
    document: dict = {}
    run_id = follow
    if follow is None:
        report = trigger_run(ctx.config, routes, day=day)
        show_trigger(report, ctx.json)
        document["trigger"] = report.to_dict()
        run_id = report.dag_run_id
        if not wait:
            ctx.result(document)
            return
    try:
        outcome = follow_run(ctx.config, routes, run_id, timeout=timeout, poll=poll,
                             on_change=RunWatcher(ctx.json))
    except KeyboardInterrupt:
        show_stopped(run_id, again_command(ctx.config, run_id), ctx.json)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    show_outcome(outcome, ctx.json)
    document["run"] = outcome.to_dict()
    ctx.result(document)
    if not outcome.succeeded:
        raise click.exceptions.Exit(EXIT_FAILED)
