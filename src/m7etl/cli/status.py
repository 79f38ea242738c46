"""``m7etl status --env E [--follow]``: the stack, MWAA, the last DAG runs, the last log."""

from __future__ import annotations

import click

from m7etl.cli.options import EXIT_FAILED, EXIT_INTERRUPTED, Context, env_options
from m7etl.cli.render import stack as render_stack
from m7etl.cli.render.status import print_status
from m7etl.deploy.changeset import Polling
from m7etl.deploy.events import EventStream, watch
from m7etl.deploy.stack import follow_command
from m7etl.deploy.status import environment_status


def _routes(ctx: Context):
    """The Airflow routes (the CLI token, then the REST API), as set-variables takes them:
    ``mwaa_web`` replaces the web server's https://<host> (a local stand-in)."""
    from m7etl.orchestration.airflow_api import connect

    return connect(ctx.clients, ctx.config.mwaa_environment,
                   web_url=ctx.config.endpoints.get("mwaa_web"))


@click.command("status")
@click.option("--follow", is_flag=True,
              help="While the stack is being created or updated, follow its events to the end.")
@click.option("--wait-minutes", type=click.IntRange(1, 24 * 60), default=120, show_default=True,
              help="With --follow: how long to follow before giving up (MWAA can take over an hour).")
@click.option("--poll-seconds", type=click.FloatRange(0, 300), default=5.0, hidden=True)
@env_options
def command(ctx: Context, follow: bool, wait_minutes: int, poll_seconds: float) -> None:
    """Show where an environment stands: the stack's status and outputs (and its last events
    when not complete), the MWAA environment's state, the DAG's last runs and the latest
    execution log's totals. Exit 2 when the stack is in a failed or rolled-back state.

    Example: m7etl status --env test --follow
    """
    out = render_stack.console(ctx.json)
    status = environment_status(ctx.config, ctx.clients, routes=_routes(ctx))
    data = status.stack.data or {}
    if follow and data.get("in_progress"):
        cf = ctx.clients("cloudformation")
        stream = EventStream(cf, data["stack_id"])
        stream.mark()
        render_stack.say(out, f"Following stack {ctx.config.stack_name} ({data['status']}); "
                              "Ctrl-C stops watching, not the deployment:")
        printer = render_stack.EventPrinter(out)
        try:
            with render_stack.waiting(out, printer) as on_wait:
                watch(cf, stream, on_event=printer, on_wait=on_wait,
                      polling=Polling(poll_seconds, wait_minutes * 60.0),
                      follow=follow_command(ctx.config.name))
        except KeyboardInterrupt:
            ctx.warn(f"Stopped watching; run '{follow_command(ctx.config.name)}' to look again.")
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        status = environment_status(ctx.config, ctx.clients, routes=_routes(ctx))
    if not ctx.json:
        print_status(out, status)
    ctx.result(status.to_dict())
    if status.failed:
        raise click.exceptions.Exit(EXIT_FAILED)
