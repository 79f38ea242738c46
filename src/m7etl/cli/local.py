"""``m7etl local up|down|status``: the local stack's processes (m7etl.local.stack).

A command group rather than make targets only: the same error boundary (one line, exit 1)
and the same ``--env``/``--config`` as every other command, so the ports come from the table
the other commands read. ``make local-up`` / ``local-down`` call it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from m7etl.cli.options import EXIT_FAILED, EXIT_OK
from m7etl.cli.render.local import next_steps, show, show_prerequisites
from m7etl.deploy.config import load_env
from m7etl.local.stack import MOTO, RUNNING, down, layout_for, status, up


def stack_options(command):
    """``--env`` (default local), ``--config``, ``--output``; passes the environment's
    configuration, its ``layout`` and ``json``."""

    @click.option("--env", "env", default="local", show_default=True, metavar="NAME",
                  help="The environment whose endpoint_url and endpoints.mwaa the stack serves.")
    @click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                  help="Configuration file (default: ./m7etl.toml or a parent's, or $M7ETL_CONFIG).")
    @click.option("--output", type=click.Choice(["text", "json"]), default="text",
                  show_default=True, help="json: one JSON document on stdout.")
    @functools.wraps(command)
    def wrapper(env: str, config_path: Path | None, output: str, **kwargs):
        config = load_env(env, config_path)
        return command(config, layout_for(config), output == "json", **kwargs)

    return wrapper


def _result(json_mode: bool, document: dict) -> None:
    if json_mode:
        import json

        click.echo(json.dumps(document, indent=2, sort_keys=True))


@click.group("local")
def command() -> None:
    """Run the AWS side on this machine, no account and no Docker: a moto server (S3,
    CloudFormation, IAM, Secrets Manager, SNS, SQS, EventBridge, CloudWatch, Logs, KMS, SSM,
    EC2; Lambda and Glue running the uploaded code) and the MWAA stand-in (a real Airflow
    3.0.6 that runs the triggered DAG runs), on 127.0.0.1 at the endpoints of the [local]
    table of m7etl.toml. Pids and logs are in .work/local/. Then every command works with
    --env local.

    Example: m7etl local up   (then m7etl deploy --env local --yes; m7etl local down)
    """


@command.command("up")
@stack_options
@click.option("--keep-state", is_flag=True,
              help="Keep the Airflow database, DAG folder and warehouse of the last run (moto "
                   "itself always starts empty).")
@click.option("--timeout", type=click.FloatRange(1, 1800), default=None, metavar="SECONDS",
              help="How long to wait for each process to answer (default 60 s moto, 180 s MWAA).")
@click.option("--with-prerequisites", is_flag=True,
              help="Then create what the guide assumes exists: the VPC exports (a network "
                   "stack) and both buckets (the code bucket versioned).")
def up_command(config, layout, json_mode: bool, keep_state: bool, timeout: float | None,
               with_prerequisites: bool) -> None:
    """Start the local stack in the background and wait until it answers; refuse when it
    already runs (naming its pids).

    Example: m7etl local up --with-prerequisites
    """
    report = up(layout, fresh=not keep_state, timeout=timeout)
    show(report, json_mode, title=f"Local stack up in {report.seconds:.1f} s ({layout.root})")
    document = report.to_dict()
    if with_prerequisites:
        from m7etl.local.prerequisites import create_prerequisites, local_clients

        document["prerequisites"] = create_prerequisites(config, local_clients(config))
        show_prerequisites(document["prerequisites"], json_mode)
    if not json_mode:
        next_steps(json_mode, config.name, prerequisites=with_prerequisites)
    _result(json_mode, document)


@command.command("prerequisites")
@stack_options
def prerequisites_command(config, layout, json_mode: bool) -> None:
    """Create on the running local stack what the guide assumes exists: a network stack
    exporting VPC, PrivateSubnet1 and PrivateSubnet2, and both buckets (public access
    blocked, the code bucket versioned). What exists already is kept.

    Example: m7etl local prerequisites
    """
    from m7etl.local.prerequisites import create_prerequisites, local_clients

    if {s.name: s for s in status(layout).services}[MOTO].state != RUNNING:
        from m7etl.exceptions import DeployError

        raise DeployError(f"The local moto server ({layout.endpoint('moto')}) is not running.",
                          hint="Start the local stack first: make local-up (m7etl local up).")
    lines = create_prerequisites(config, local_clients(config))
    show_prerequisites(lines, json_mode)
    _result(json_mode, {"prerequisites": lines})


@command.command("down")
@stack_options
def down_command(config, layout, json_mode: bool) -> None:
    """Stop exactly the processes local up started (and their children), by their pid files.

    Example: m7etl local down
    """
    report = down(layout)
    show(report, json_mode, title=f"Local stack stopped ({layout.root})")
    _result(json_mode, report.to_dict())


@command.command("status")
@stack_options
def status_command(config, layout, json_mode: bool) -> None:
    """Show each process: running, stopped, or died (with the end of its log). Exit 0 when
    both run, 2 otherwise.

    Example: m7etl local status
    """
    report = status(layout)
    show(report, json_mode, title=f"Local stack ({layout.root})")
    _result(json_mode, report.to_dict())
    running = all(s.state == RUNNING and not s.detail for s in report.services)
    raise click.exceptions.Exit(EXIT_OK if running else EXIT_FAILED)
