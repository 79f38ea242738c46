"""``m7etl local up|down|status``: one row per process of the local stack, and what next."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from m7etl.cli.render.console import console
from m7etl.local.stack import DIED, RUNNING, STOPPED, Report

STYLE = {RUNNING: "green", STOPPED: "dim", DIED: "bold red"}
WHAT = {"moto": "moto: S3, CloudFormation, Lambda, Glue, SNS, SQS, ...",
        "mwaa": "MWAA stand-in: Airflow 3.0.6"}


def show(report: Report, json_mode: bool, *, title: str) -> None:
    out = console(json_mode)
    table = Table(title=title, title_justify="left")
    for header in ("process", "state", "pid", "endpoint", "log"):
        table.add_column(header)
    for s in report.services:
        table.add_row(WHAT.get(s.name, s.name), f"[{STYLE.get(s.state, '')}]{s.state}[/]",
                      str(s.pid or "-"), s.endpoint, str(s.log))
    out.print(table)
    for s in report.services:
        if s.detail and s.detail != "stopped":
            out.print(f"[bold]{s.name}[/]: {escape(s.detail)}")


def show_prerequisites(lines: list[str], json_mode: bool) -> None:
    out = console(json_mode)
    out.print("The guide's prerequisites:")
    for line in lines:
        out.print(f"  {escape(line)}")


def next_steps(json_mode: bool, env: str, *, prerequisites: bool) -> None:
    """What a person types next: moto's keys, the guide's steps with --env."""
    out = console(json_mode)
    first = "" if prerequisites else (
        f"  m7etl local prerequisites --env {env}   # the VPC exports and both buckets\n")
    out.print(f"Every command now works with --env {env}. moto takes any key; in this shell:\n"
              "  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing\n"
              "  export M7_SNOWFLAKE_PASSWORD=local   # the first deploy asks for one\n"
              f"{first}  m7etl deploy --env {env} --yes\n"
              f"  m7etl trigger --env {env} --date 20250501 --wait\n"
              "Stop it with make local-down (m7etl local down).")
