"""``m7etl notifications``: the bucket's rules as a table, and one line saying what changed."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from m7etl.cli.render.console import console as shared_console
from m7etl.deploy.notifications import ADDED, REMOVED, UPDATED, NotificationReport

STYLE = {ADDED: "green", UPDATED: "yellow", REMOVED: "red"}


def console(json_mode: bool) -> Console:
    return shared_console(json_mode, soft_wrap=True)


def _short(kind: str, arn: str) -> str:
    """``lambda m7-etl-s3-event-test``: the ARN's last part says enough in a table."""
    name = arn.rsplit(":", 1)[-1] if arn else "?"
    return f"{kind} {name}"


def rules_table(report: NotificationReport) -> Table:
    table = Table(title=f"Event notifications of s3://{report.bucket}", title_justify="left")
    for name in ("id", "events", "prefix", "suffix", "target", "change"):
        table.add_column(name, overflow="fold", no_wrap=name != "target")
    for row in report.rows():
        change = row["change"]
        style = STYLE.get(change)
        cells = [row["id"], ", ".join(row["events"]), row["prefix"] or "(any)",
                 row["suffix"] or "(any)", _short(row["target_kind"], row["target"])]
        table.add_row(*map(escape, cells), f"[{style}]{change}[/]" if style else change)
    return table


def summary(report: NotificationReport) -> str:
    """One line: nothing to do, what was written, or what a dry run would write."""
    if not report.changed:
        return (f"Bucket {report.bucket}: already configured (landing/*.csv and "
                "landing/*.csv.gz to the S3-event function); nothing written.")
    counts: dict[str, int] = {}
    for change in report.changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    done = ", ".join(f"{n} rule(s) {action}" for action, n in counts.items())
    if report.dry_run:
        return f"Dry run: bucket {report.bucket} would get {done}; nothing written."
    return f"Bucket {report.bucket}: {done}."


def show(report: NotificationReport, json_mode: bool) -> None:
    out = console(json_mode)
    out.print(rules_table(report))
    out.print(escape(summary(report)))
