"""The ``m7etl`` command group. One module per command; each calls one library function."""

from __future__ import annotations

import click

from m7etl import __version__
from m7etl.cli.errors import ErrorBoundaryGroup


@click.group(cls=ErrorBoundaryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="m7etl")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Build, deploy and operate the M7 ETL pipeline (S3, Lambda, Glue, MWAA, Snowflake)."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


# In the order of the guide: local work, then build, check, deploy, configure, operate.
COMMANDS = ("run", "sample", "package", "doctor", "upload", "deploy", "set_variables",
            "notifications", "trigger", "status", "local")


def _register() -> None:
    import importlib

    for name in COMMANDS:
        cli.add_command(importlib.import_module(f"m7etl.cli.{name}").command)


_register()


def main() -> None:
    cli(prog_name="m7etl")
