"""What ``m7etl set-variables`` and ``m7etl trigger`` print: the variables table, the run
started, each task state change as the run goes, and the run's end.

Everything goes to click's stdout, or stderr in JSON mode (stdout then carries the one
JSON document). Values are Airflow variables and run ids: nothing secret is printed.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from m7etl.cli.render.console import console as shared_console
from m7etl.deploy.runs import RUN, RunOutcome, TaskChange, TriggerReport
from m7etl.deploy.variables import CREATED, UNCHANGED, UPDATED, VariablesReport

ACTION_STYLE = {CREATED: "green", UPDATED: "yellow", UNCHANGED: "dim"}
STATE_STYLE = {"success": "green", "failed": "red", "upstream_failed": "red", "running": "cyan",
               "queued": "blue", "scheduled": "blue", "up_for_retry": "yellow",
               "skipped": "dim", "removed": "dim"}


def console(json_mode: bool) -> Console:
    return shared_console(json_mode, soft_wrap=True)


def _state(state: str | None) -> str:
    text = state or "none"
    style = STATE_STYLE.get(text)
    return f"[{style}]{escape(text)}[/]" if style else escape(text)


def _via(route: str, fallback_reason: str | None) -> str:
    return f"{route} (after {fallback_reason})" if fallback_reason else route


# -- set-variables -------------------------------------------------------------------------
def variables_table(report: VariablesReport) -> Table:
    table = Table(title=f"Airflow variables of {report.mwaa_environment}", title_justify="left")
    for name in ("variable", "before", "now", "change"):
        table.add_column(name, overflow="fold")
    for c in report.changes:
        style = ACTION_STYLE[c.action]
        table.add_row(escape(c.key), escape(c.before) if c.before is not None else "(not set)",
                      escape(c.after), f"[{style}]{c.action}[/]")
    return table


def variables_summary(report: VariablesReport) -> str:
    kept = [c.key for c in report.changes if c.action == UNCHANGED]
    done = [f"{c.key} {c.action}" for c in report.changed]
    parts = [f"{', '.join(done)}" if done else "nothing changed"]
    if kept:
        parts.append(f"already set: {', '.join(kept)}")
    return f"{report.mwaa_environment} via {report.route}: {'; '.join(parts)}."


def show_variables(report: VariablesReport, json_mode: bool) -> None:
    out = console(json_mode)
    out.print(variables_table(report))
    out.print(escape(variables_summary(report)))


# -- trigger -------------------------------------------------------------------------------
def trigger_line(report: TriggerReport) -> str:
    what = "Started" if report.status == "triggered" else "Already started (same run id):"
    return (f"{what} {report.dag_id} run {report.dag_run_id} on {report.mwaa_environment} via "
            f"{_via(report.route, report.fallback_reason)}, conf {report.conf}.")


def show_trigger(report: TriggerReport, json_mode: bool) -> None:
    console(json_mode).print(escape(trigger_line(report)))


class RunWatcher:
    """Prints each state change as :func:`m7etl.deploy.runs.follow_run` sees it."""

    def __init__(self, json_mode: bool):
        self.out = console(json_mode)

    def __call__(self, change: TaskChange) -> None:
        clock = time.strftime("%H:%M:%S")
        who = "run" if change.task_id == RUN else escape(change.task_id)
        before = f"{_state(change.before)} -> " if change.before is not None else ""
        self.out.print(f"{clock} +{int(change.elapsed_s)}s  {who}: {before}{_state(change.after)}")


def outcome_table(outcome: RunOutcome) -> Table:
    table = Table(title=f"Run {outcome.dag_run_id}: {outcome.state}", title_justify="left")
    table.add_column("task", overflow="fold")
    table.add_column("state")
    for task, state in outcome.tasks.items():
        table.add_row(escape(task), _state(state))
    return table


def outcome_line(outcome: RunOutcome) -> str:
    took = f"after {int(outcome.elapsed_s)} s"
    if outcome.succeeded:
        return f"Run {outcome.dag_run_id} succeeded {took}."
    line = f"Run {outcome.dag_run_id} {outcome.state} {took}"
    if outcome.failed_tasks:
        line += f"; failed: {', '.join(outcome.failed_tasks)}"
    if outcome.not_run:
        line += f"; not run: {', '.join(outcome.not_run)}"
    return line + ". Task logs: CloudWatch log group airflow-<MWAA environment>-Task."


def show_outcome(outcome: RunOutcome, json_mode: bool) -> None:
    out = console(json_mode)
    out.print(outcome_table(outcome))
    out.print(escape(outcome_line(outcome)))


def show_stopped(run_id: str, again: str, json_mode: bool) -> None:
    console(json_mode).print(escape(f"Stopped watching {run_id}; the run goes on in Airflow. "
                                    f"Watch it again with: {again}"))
