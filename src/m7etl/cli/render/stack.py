"""What ``m7etl deploy`` prints for the stack: the change set, the live events, the end.

The change set is a table with ``+ Add`` / ``* Modify`` / ``- Delete`` markers and the
replacement column (the one that says a resource, and its data, is recreated), and the
parameters that change (the password only as '(changed)' or '(kept)'). While the stack
runs, one line per resource event (a log keeps every line, unlike a redrawn table) with how
long each resource took, and on a terminal a status line naming what is still in progress:
an MWAA environment is 20 to 60 minutes of one resource, which should not look stuck.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from m7etl.cli.render.console import console as shared_console
from m7etl.deploy.stack import Failure, ParameterChange, ResourceChange, is_root

ACTIONS = {"Add": ("+ Add", "green"), "Modify": ("* Modify", "yellow"),
           "Remove": ("- Delete", "red"), "Import": ("> Import", "cyan"),
           "Dynamic": ("? Dynamic", "magenta")}
REPLACEMENT = {"True": ("yes: replaced", "bold red"), "Conditional": ("maybe", "yellow"),
               "False": ("no", "")}
FAILURES_SHOWN = 5


def console(json_mode: bool) -> Console:
    return shared_console(json_mode, soft_wrap=False)


def status_style(status: str) -> str:
    if status.endswith("_FAILED"):
        return "bold red"
    if "ROLLBACK" in status:
        return "magenta"
    if status.endswith("_COMPLETE"):
        return "green"
    return "yellow"


def say(out: Console, message: str, style: str = "") -> None:
    """One message, never folded (a log line stays whole for grep)."""
    out.print(Text(message, style=style), soft_wrap=True)


def print_change_set(out: Console, stack_name: str, change_set_type: str,
                     changes: list[ResourceChange]) -> None:
    verb = "create" if change_set_type == "CREATE" else "update"
    say(out, f"Change set: {verb} stack {stack_name} ({len(changes)} resource change(s))", "bold")
    if not changes:
        return
    table = Table()
    for column in ("operation", "logical id", "type", "replacement"):
        table.add_column(column, no_wrap=True)
    for c in changes:
        label, style = ACTIONS.get(c.action, (c.action, ""))
        shown, rstyle = REPLACEMENT.get(str(c.replacement), ("", ""))
        table.add_row(Text(label, style=style), c.logical_id, c.resource_type,
                      Text(shown, style=rstyle))
    out.print(table)


def print_parameters(out: Console, changes: list[ParameterChange], change_set_type: str) -> None:
    say(out, "Parameters sent" if change_set_type == "CREATE" else "Parameters that change", "bold")
    table = Table()
    table.add_column("parameter", no_wrap=True)
    table.add_column("old", overflow="fold")
    table.add_column("new", overflow="fold")
    for c in changes:
        table.add_row(c.name, "-" if c.old is None else c.old, c.new)
    out.print(table)


def _clock(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone().strftime("%H:%M:%S")
    return str(value or "")[11:19]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class EventPrinter:
    """One line per event: time, logical id, type, status (colored), reason, duration."""

    def __init__(self, out: Console):
        self.out = out
        self.started: dict[str, datetime] = {}  # logical id -> its first *_IN_PROGRESS
        self.root_status = ""
        self.done = 0

    def __call__(self, event: Mapping[str, Any]) -> None:
        status = event.get("ResourceStatus", "?")
        logical = event.get("LogicalResourceId", "?")
        when = event.get("Timestamp")
        took = ""
        if is_root(event):
            self.root_status = status
        elif status.endswith("_IN_PROGRESS") and isinstance(when, datetime):
            self.started.setdefault(logical, when)
        elif logical in self.started and isinstance(when, datetime):
            took = f" ({_duration((when - self.started.pop(logical)).total_seconds())})"
            self.done += 1
        reason = event.get("ResourceStatusReason") or ""
        self.out.print(Text.assemble(
            (f"{_clock(when):8}  ", "dim"), (f"{logical:32} ", "bold"),
            (f"{event.get('ResourceType', ''):34} ", ""), (f"{status:28}", status_style(status)),
            (f" {reason}" if reason else "", ""), (took, "dim")), soft_wrap=True)

    def waiting_line(self, now: datetime) -> str:
        """For the terminal's status line: what is still running, and for how long."""
        running = sorted(self.started.items(), key=lambda kv: kv[1])
        parts = [f"{name} ({_duration((now - since).total_seconds())})" for name, since in running[:3]]
        more = f" and {len(running) - 3} more" if len(running) > 3 else ""
        busy = f"; in progress: {', '.join(parts)}{more}" if parts else ""
        return f"{self.root_status or 'waiting'}: {self.done} resource(s) done{busy}"


@contextmanager
def waiting(out: Console, printer: EventPrinter) -> Iterator[Any]:
    """A status line redrawn on each poll, on a terminal only (a log gets the event lines)."""
    if not out.is_terminal:
        yield lambda _elapsed: None
        return
    with out.status(printer.waiting_line(datetime.now().astimezone())) as status:
        yield lambda _elapsed: status.update(printer.waiting_line(datetime.now().astimezone()))


def print_failures(out: Console, found: list[Failure]) -> None:
    """The first failed resources, causes first, one line each: 'logical id (type) STATUS: why'."""
    say(out, "Failed resources (causes first):", "bold red")
    for f in found[:FAILURES_SHOWN]:
        out.print(Text.assemble(("  ", ""), (f.logical_id, "bold"), f" ({f.resource_type}) ",
                                (f.status, "red"), f": {f.reason}"), soft_wrap=True)
    if len(found) > FAILURES_SHOWN:
        say(out, f"  ... and {len(found) - FAILURES_SHOWN} more in the events above")


def print_outputs(out: Console, outputs: Mapping[str, str]) -> None:
    """The Airflow UI and the dashboard as lines (easy to click), then every output."""
    if "AirflowWebUIUrl" in outputs:
        out.print(Text.assemble(("Airflow UI: ", "bold"), outputs["AirflowWebUIUrl"]), soft_wrap=True)
    if "DashboardUrl" in outputs:
        out.print(Text.assemble(("Dashboard:  ", "bold"), outputs["DashboardUrl"]), soft_wrap=True)
    if outputs:
        say(out, "Stack outputs", "bold")
        table = Table()
        table.add_column("output", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key, value in outputs.items():
            table.add_row(key, value)
        out.print(table)
