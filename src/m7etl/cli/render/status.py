"""What ``m7etl status`` prints: one block per part, a missing part says why in its place."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from m7etl.cli.render.stack import print_failures, print_outputs, say, status_style
from m7etl.deploy.stack import Failure
from m7etl.deploy.status import Status

TOTALS = ("files", "rows_read", "rows_valid", "rows_rejected", "rows_warned", "files_ok",
          "files_failed_threshold", "files_quarantined")
RUN_STYLE = {"success": "green", "failed": "bold red", "running": "yellow", "queued": "yellow"}


def print_status(out: Console, status: Status) -> None:
    say(out, f"Environment {status.environment}", "bold")
    _stack(out, status)
    _mwaa(out, status)
    _runs(out, status)
    _log(out, status)


def _problem(out: Console, title: str, problem: str) -> None:
    out.print(Text.assemble((f"{title}: ", "bold"), (problem, "yellow")), soft_wrap=True)


def _stack(out: Console, status: Status) -> None:
    if status.stack.problem:
        title = f"Stack {status.stack_name}"
        if status.stack.problem.startswith(title):  # it names the stack itself
            out.print(Text(status.stack.problem, style="yellow"), soft_wrap=True)
        else:
            _problem(out, title, status.stack.problem)
        return
    data = status.stack.data
    line = Text.assemble(("Stack ", "bold"), (f"{status.stack_name}: ", "bold"),
                         (data["status"], status_style(data["status"])),
                         f" (last change {data['updated']})")
    if data.get("reason"):
        line.append(f" - {data['reason']}")
    out.print(line, soft_wrap=True)
    if status.events.data:
        table = Table("time", "logical id", "type", "status", "reason", title="Last stack events",
                      title_justify="left")
        for e in status.events.data:
            table.add_row(e["time"][:19], e["logical_id"], e["type"],  # to the second
                          Text(e["status"] or "", style=status_style(e["status"] or "")),
                          e["reason"] or "")
        out.print(table)
    elif status.events.problem:
        _problem(out, "Stack events", status.events.problem)
    if data.get("failures"):
        print_failures(out, [Failure(**f) for f in data["failures"]])
    if data.get("next_step"):
        say(out, data["next_step"])
    print_outputs(out, data["outputs"])


def _mwaa(out: Console, status: Status) -> None:
    if status.mwaa.problem:
        _problem(out, "MWAA", status.mwaa.problem)
        return
    env = status.mwaa.data
    line = Text.assemble(("MWAA ", "bold"), (f"{env['name']}: ", "bold"),
                         (env["state"] or "?", "green" if env["state"] == "AVAILABLE" else "yellow"),
                         f" (Airflow {env['airflow_version']})")
    if env.get("last_error"):
        line.append(f" - last update {env['last_update']}: {env['last_error']}", style="red")
    out.print(line, soft_wrap=True)


def _runs(out: Console, status: Status) -> None:
    if status.runs.problem:
        _problem(out, "DAG runs", status.runs.problem)
        return
    if not status.runs.data:
        say(out, "DAG runs: none yet.")
        return
    table = Table("run id", "state", "started", "ended", title="Last DAG runs", title_justify="left")
    for run in status.runs.data:
        table.add_row(run.get("run_id", "?"), Text(run.get("state") or "?",
                                                   style=RUN_STYLE.get(run.get("state"), "")),
                      str(run.get("start_date") or ""), str(run.get("end_date") or ""))
    out.print(table)


def _log(out: Console, status: Status) -> None:
    if status.log.problem:
        _problem(out, "Execution log", status.log.problem)
        return
    log = status.log.data
    say(out, f"Execution log {log['key']}: day {log['day']}, status {log['status']}, "
             f"finished {log['finished_at']}", "bold")
    totals = log.get("totals", {})
    table = Table(*TOTALS)
    table.add_row(*(f"{totals.get(k, 0):,}" for k in TOTALS))
    out.print(table)
