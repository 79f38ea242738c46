"""``m7etl doctor``: the preflight (credentials, buckets, network, template, environment)."""

from __future__ import annotations

from pathlib import Path

import click

from m7etl.cli.options import EXIT_FAILED, Context, env_options
from m7etl.cli.render.doctor import show
from m7etl.deploy.doctor import default_template, failed, run_checks


@click.command("doctor")
@env_options
@click.option("--template", "template_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Template to lint (default: the checkout's templates/etl-pipeline-mwaa.yaml).")
def command(ctx: Context, template_path: Path | None) -> None:
    """Check the prerequisites of an environment: credentials and region, both buckets
    (versioning and public access block on the code bucket), the VPC exports and subnets,
    the template (cfn-lint), then the MWAA environment and its aws_default connection.
    Exits 2 when a check fails.

    Example: m7etl doctor --env test
    """
    checks = run_checks(ctx.config, ctx.clients, template_path=template_path or default_template())
    show(checks, ctx.config.name, ctx.json)
    ctx.result([c.to_dict() for c in checks])
    if failed(checks):
        raise click.exceptions.Exit(EXIT_FAILED)
