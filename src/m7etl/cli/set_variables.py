"""``m7etl set-variables --env E``: the guide's step 4.2 (Admin > Variables) in one command."""

from __future__ import annotations

from pathlib import Path

import click

from m7etl.cli.options import Context, env_options
from m7etl.cli.render.airflow import show_variables
from m7etl.deploy.variables import set_variables


@click.command("set-variables")
@env_options
@click.option("--var", "assignments", multiple=True, metavar="KEY=VALUE",
              help="A variable to set, over the file and m7etl.toml; repeatable.")
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="A JSON object of variables, over m7etl.toml's [<env>.variables].")
@click.option("--via", type=click.Choice(["auto", "cli-token", "rest-api"]), default="auto",
              show_default=True,
              help="MWAA route: auto tries the CLI token, then InvokeRestApi.")
@click.option("--allow-extra", is_flag=True,
              help="Send variables the DAG does not read (refused by default: typos).")
def command(ctx: Context, assignments: tuple[str, ...], file: Path | None, via: str,
            allow_extra: bool) -> None:
    """Set the DAG's Airflow variables (environment, max_days_back, error_threshold,
    warning_threshold): checked first, then sent through an MWAA CLI token or InvokeRestApi.
    Prints what changed and what was already set.

    Example: m7etl set-variables --env test --var max_days_back=5
    """
    report = set_variables(ctx.config, ctx.clients, assignments=assignments, file=file, via=via,
                           allow_extra=allow_extra)
    for warning in report.warnings:
        ctx.warn(f"Warning: {warning}")
    show_variables(report, ctx.json)
    ctx.result(report.to_dict())
