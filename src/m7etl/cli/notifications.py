"""``m7etl notifications``: the data bucket's notifications to the S3-event function."""

from __future__ import annotations

import click

from m7etl.cli.options import Context, env_options
from m7etl.cli.render.notifications import show
from m7etl.deploy.notifications import configure_notifications


@click.command("notifications")
@env_options
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--replace-rule", "replace", multiple=True, metavar="ID",
              help="Replace this existing (foreign) rule that overlaps m7etl's; repeatable.")
def command(ctx: Context, dry_run: bool, replace: tuple[str, ...]) -> None:
    """Send new landing/*.csv and landing/*.csv.gz files of the data bucket to the S3-event
    function (the guide's step 5), keeping every other rule of the bucket; idempotent.

    Example: m7etl notifications --env test --dry-run
    """
    report = configure_notifications(ctx.config, ctx.clients, dry_run=dry_run, replace=replace)
    show(report, ctx.json)
    ctx.result(report.to_dict())
