"""The end of a DAG run as plain functions: its execution logs, its outcome, its alert.

Logs: one per day the run touched, built by the local runner's builder
(:func:`m7etl.core.execution_log.build_execution_log`) and merged into the day's earlier log
(:func:`~m7etl.core.execution_log.merge_execution_log`), so a run never erases what an
earlier run of the day recorded. A file's entry is its silver report (the full result, as
the local runner logs it) when the report can be read, else the function's summary (no
``dialect``; column lists given as counts).

Outcome: Airflow marks a run from its last task only, so the ``finish`` task fails the run
when any task failed or a file failed the gate; the alert names the run, the failed tasks
(a mapped task by its file or its dataset and day), the files that failed the gate and the
log keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from m7etl.core import layout
from m7etl.core.execution_log import build_execution_log

DAG_ID = "m7_etl_pipeline"
MAPPED_TASKS = ("raw_to_silver", "silver_to_gold")
FAILED = "failed"
MAX_LISTED = 50  # lines per list in an alert (SNS takes 256 KB; people read less)
SUBJECT_LIMIT = 100  # SNS e-mail subjects


def _day_of_file(entry: Mapping) -> str | None:
    return entry.get("date") or layout.day_of_raw_key(entry.get("source_key") or "")


def file_entry(summary: Mapping, report: Mapping | None = None) -> dict:
    """A file's ``files[]`` entry: its report if read (same fields as the local log), else
    the summary without the bucket (the log's ``parameters.storage`` says where)."""
    if report is not None and report.get("source_key") == summary.get("source_key"):
        return dict(report)
    return {k: v for k, v in summary.items() if k != "bucket"}


def gold_entry(summary: Mapping) -> dict:
    return {k: v for k, v in summary.items() if k != "bucket"}


def day_logs(*, run_id: str, started_at: str, finished_at: str, error_threshold: float,
             warning_threshold: float, storage_url: str, files: Iterable[Mapping],
             gold: Iterable[Mapping]) -> dict[str, dict]:
    """This run's log of each day it touched (before merging), by day."""
    by_day: dict[str, tuple[list[dict], list[dict]]] = {}
    for f in files:
        day = _day_of_file(f)
        if day:
            by_day.setdefault(day, ([], []))[0].append(dict(f))
    for g in gold:
        if g.get("date"):
            by_day.setdefault(g["date"], ([], []))[1].append(dict(g))
    days = sorted(by_day)
    logs = {}
    for day in days:
        day_files, day_gold = by_day[day]
        day_files.sort(key=lambda f: (layout.base_name(f.get("source_key") or ""), f.get("source_key")))
        day_gold.sort(key=lambda g: g.get("dataset") or "")
        logs[day] = build_execution_log(
            run_id=run_id, day=day, started_at=started_at, finished_at=finished_at,
            parameters={"error_threshold": error_threshold, "warning_threshold": warning_threshold,
                        "days": days, "storage": storage_url},
            files=day_files, gold=day_gold)
    return logs


# -- outcome ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FailedTask:
    """A failed task instance: its id, map index (None when not mapped) and display name."""

    task_id: str
    map_index: int | None
    name: str


def failed_tasks(states: Mapping[str, str], labels: Mapping[str, list[str]] | None = None,
                 ignore: Iterable[str] = ()) -> list[FailedTask]:
    """The failed tasks of a run, from ``get_task_states`` (``{task_key: state}``, a mapped
    instance keyed ``<task_id>_<map_index>``), a mapped one named ``raw_to_silver[2] <file>``.
    Only ``failed`` counts: ``upstream_failed`` tasks are consequences, not causes."""
    labels = labels or {}
    skip = set(ignore)
    out = []
    for key, state in states.items():
        if state != FAILED:
            continue
        task_id, index = key, None
        for mapped in MAPPED_TASKS:
            rest = key[len(mapped) + 1:]
            if key.startswith(mapped + "_") and rest.isdigit():
                task_id, index = mapped, int(rest)
        if task_id in skip:
            continue
        if index is None:
            out.append(FailedTask(task_id, None, task_id))
            continue
        names = labels.get(task_id) or []
        label = f" {names[index]}" if index < len(names) else ""
        out.append(FailedTask(task_id, index, f"{task_id}[{index}]{label}"))
    return sorted(out, key=lambda t: (_task_order(t.task_id), t.map_index or 0, t.name))


def _task_order(name: str) -> int:
    order = ("plan", "raw_to_silver", "quality_gate", "silver_to_gold", "gold_to_snowflake",
             "write_execution_log", "notify_failure", "finish")
    return order.index(name) if name in order else len(order)


@dataclass(frozen=True)
class Outcome:
    """How a run ended: failed tasks (with their error when known), gate failures, logs."""

    run_id: str
    environment: str | None
    failed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # failed task name -> its error
    gate_failures: list[dict] = field(default_factory=list)  # source_key, reason
    error_threshold: float | None = None
    log_keys: list[str] = field(default_factory=list)
    bucket: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.gate_failures

    def subject(self) -> str:
        env = f" {self.environment}" if self.environment else ""
        return f"m7etl{env}: {DAG_ID} run failed"[:SUBJECT_LIMIT]

    def summary(self) -> str:
        """One line: why the run failed (the ``finish`` task's error)."""
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed)} task(s) failed: {', '.join(self.failed[:5])}"
                         + (" ..." if len(self.failed) > 5 else ""))
        if self.gate_failures:
            names = [layout.base_name(f["source_key"]) for f in self.gate_failures]
            parts.append(f"{len(names)} file(s) failed the quality gate: {', '.join(names[:5])}"
                         + (" ..." if len(names) > 5 else ""))
        if not parts:
            return f"Run {self.run_id} succeeded."
        return f"Run {self.run_id} failed: " + "; ".join(parts) + "."

    def message(self) -> str:
        """The alert's text."""
        env = f" (environment {self.environment})" if self.environment else ""
        lines = [f"DAG {DAG_ID} run {self.run_id} failed{env}.", ""]
        if self.failed:
            lines.append("Failed tasks:")
            for name in self.failed[:MAX_LISTED]:
                error = self.errors.get(name)
                lines.append(f"  - {name}" + (f": {error}" if error else ""))
            if len(self.failed) > MAX_LISTED:
                lines.append(f"  ... and {len(self.failed) - MAX_LISTED} more")
            lines.append("")
        if self.gate_failures:
            threshold = (f" (error_threshold {self.error_threshold}%)"
                         if self.error_threshold is not None else "")
            lines.append(f"Files that failed the quality gate{threshold}:")
            for f in self.gate_failures[:MAX_LISTED]:
                lines.append(f"  - {f['source_key']}: {f.get('reason') or f.get('status')}")
            if len(self.gate_failures) > MAX_LISTED:
                lines.append(f"  ... and {len(self.gate_failures) - MAX_LISTED} more")
            lines.append("")
        if self.log_keys:
            where = f"s3://{self.bucket}/" if self.bucket else ""
            lines.append("Execution log: " + ", ".join(f"{where}{k}" for k in self.log_keys))
        else:
            lines.append("Execution log: none written by this run.")
        lines.append("Task logs: Airflow UI > DAG m7_etl_pipeline > this run "
                     "(or CloudWatch airflow-<environment>-Task).")
        return "\n".join(lines)
