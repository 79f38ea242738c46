"""The guide's step 4.4: start the DAG by hand, then follow the run to its end.

The run id is ``manual_<date>_<UTC time>`` (``manual_<UTC time>`` without a date), new on
every call. Not the S3 event's id, derived from its input so that a retried event asks
for the same run: a person who triggers twice wants two runs (a re-run after a fix). The
date makes the id readable in the Airflow UI, and the id fits InvokeRestApi's 64-character
path (``/dags/m7_etl_pipeline/dagRuns/<id>``). It is to the second, so two calls in the same
second would share it: the second waits for the next second and takes a new id.

The conf is :func:`m7etl.orchestration.runs.run_conf`'s without ``raw_keys`` (a manual run
names no files: the DAG takes the day's ``raw/<date>/``), ``"trigger": "cli"``, and no
``date`` when none is given (the DAG then picks the days itself, ``max_days_back`` at most).

Following: the run's state and its tasks' every ``poll`` seconds, each change reported as
it is seen, until ``success`` or ``failed``, or the timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from m7etl.exceptions import DeployError
from m7etl.orchestration.mwaa import ALREADY_EXISTS
from m7etl.orchestration.runs import run_conf

CLI_TRIGGER = "cli"
DEFAULT_TIMEOUT_S = 2 * 3600
DEFAULT_POLL_S = 15
MAX_POLL_ERRORS = 3  # retryable errors in a row before following gives up
ID_ATTEMPTS = 3
RUN = "(run)"  # the pseudo task of a change of the run's own state
NOT_RUN = ("upstream_failed", "skipped", "removed")


@dataclass
class TriggerReport:
    env: str
    mwaa_environment: str
    dag_id: str
    dag_run_id: str
    conf: dict
    status: str  # "triggered" or "already_exists"
    route: str  # "cli-token" or "rest-api"
    state: str | None = None
    fallback_reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TaskChange:
    task_id: str  # RUN for the run itself
    before: str | None
    after: str | None
    elapsed_s: float


@dataclass
class RunOutcome:
    dag_id: str
    dag_run_id: str
    state: str
    tasks: dict[str, str | None]
    elapsed_s: float
    route: str
    changes: list[TaskChange] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.state == "success"

    @property
    def failed_tasks(self) -> list[str]:
        return sorted(t for t, s in self.tasks.items() if s == "failed")

    @property
    def not_run(self) -> list[str]:
        return sorted(t for t, s in self.tasks.items() if s in NOT_RUN)

    def to_dict(self) -> dict:
        return {**asdict(self), "failed_tasks": self.failed_tasks, "not_run": self.not_run}


def check_day(day: str) -> str:
    """A ``YYYYMMDD`` that is a real date."""
    try:
        valid = len(day) == 8 and day.isdigit() and bool(datetime.strptime(day, "%Y%m%d"))
    except ValueError:
        valid = False
    if not valid:
        raise DeployError(f"--date {day!r} is not a date as YYYYMMDD.",
                          hint="Write it like --date 20250501.")
    return day


def manual_run_id(day: str | None, now: datetime) -> str:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"manual_{day}_{stamp}" if day else f"manual_{stamp}"


def manual_conf(day: str | None) -> dict:
    conf = run_conf(day or "", [], CLI_TRIGGER)
    del conf["raw_keys"]
    if not day:
        del conf["date"]
    return conf


def again_command(config, run_id: str) -> str:
    """How to watch a run again (after Ctrl-C or the timeout)."""
    return f"m7etl trigger --env {config.name} --follow {run_id}"


def open_routes(config, clients, via: str = "auto", http=None):
    from m7etl.orchestration.airflow_api import connect

    return connect(clients, config.mwaa_environment, via,
                   web_url=config.endpoints.get("mwaa_web"), http=http)


def trigger_run(config, routes, *, day: str | None = None,
                now: Callable[[], datetime] = lambda: datetime.now(UTC),
                sleep: Callable[[float], None] | None = None) -> TriggerReport:
    """Start the environment's DAG with the day in its conf. An id taken by a call in the
    same second is not this call's run: wait for the next second and take a new one."""
    day = check_day(day) if day else None
    conf = manual_conf(day)
    for attempt in range(ID_ATTEMPTS):
        started = now()
        result = routes.call("trigger", config.dag_id, manual_run_id(day, started), conf, None)
        if result.status != ALREADY_EXISTS or attempt == ID_ATTEMPTS - 1:
            break
        (sleep or _sleep)(1.0 - started.microsecond / 1e6)
    return TriggerReport(config.name, config.mwaa_environment, config.dag_id, result.dag_run_id,
                         conf, result.status, routes.name, result.state, routes.fallback_reason)


def follow_run(config, routes, run_id: str, *, timeout: float = DEFAULT_TIMEOUT_S,
               poll: float = DEFAULT_POLL_S, on_change: Callable[[TaskChange], None] | None = None,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] | None = None) -> RunOutcome:
    """Poll the run until it ends; every state change goes to ``on_change`` as it is seen.
    Ctrl-C (KeyboardInterrupt, mostly in ``sleep``) goes to the caller."""
    sleep = sleep or _sleep
    start = clock()
    run_state: str | None = None
    tasks: dict[str, str | None] = {}
    changes: list[TaskChange] = []
    errors = 0
    while True:
        try:
            status = routes.call("run_status", config.dag_id, run_id)
            errors = 0
        except DeployError as exc:  # a hiccup (throttling, a busy web server): poll again
            errors += 1
            if not exc.retryable or errors >= MAX_POLL_ERRORS:
                raise
            sleep(poll)
            continue
        elapsed = clock() - start
        seen = [(RUN, run_state, status.state)] if status.state != run_state else []
        seen += [(t, tasks.get(t), s) for t, s in status.tasks.items()
                 if (t not in tasks and s is not None) or (t in tasks and tasks[t] != s)]
        for task_id, before, after in seen:
            change = TaskChange(task_id, before, after, elapsed)
            changes.append(change)
            if on_change:
                on_change(change)
        run_state, tasks = status.state, dict(status.tasks)
        if status.done:
            return RunOutcome(config.dag_id, run_id, status.state, tasks, elapsed, routes.name,
                              changes)
        if elapsed + poll > timeout:
            raise DeployError(
                f"Run {run_id} of {config.dag_id} on {config.mwaa_environment} is still "
                f"{status.state} after {_duration(timeout)}; it goes on in Airflow.",
                hint=f"Watch it again with: {again_command(config, run_id)}", retryable=True)
        sleep(poll)


def _sleep(seconds: float) -> None:
    """The wait between two looks (looked up at call time: tests replace it)."""
    time.sleep(seconds)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s" if seconds % 60 else f"{seconds // 60} min"
    return f"{seconds} s"
