"""``m7etl status``: where an environment stands, in one look.

The stack (status, outputs, and when it is not complete its last events, the failures of
its last operation and what to do next), the MWAA environment's state, the DAG's last
runs, and the latest execution log's totals. Each
part is read on its own: a part that cannot be read (no stack yet, no MWAA endpoint,
access denied) says why in its place instead of failing the whole report, so the command
is useful at every stage of a first deployment.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from m7etl.core import layout
from m7etl.deploy.changeset import find_stack
from m7etl.deploy.stack import failures, follow_command, is_root, is_terminal, outcome, outputs
from m7etl.exceptions import M7Error
from m7etl.storage import S3Storage

RECENT_EVENTS = 8
RECENT_RUNS = 5
HEALTHY_STACK = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
NEVER_EXECUTED = "REVIEW_IN_PROGRESS"  # a CREATE change set never executed: it never moves
STARTS = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "IMPORT_IN_PROGRESS")
MAX_EVENT_PAGES = 10  # 1,000 events: more than one operation of the real stack writes


@dataclass
class Part:
    """One part of the report: its data, or why it is missing (``problem``)."""

    data: Any = None
    problem: str | None = None


@dataclass
class Status:
    environment: str
    stack_name: str
    stack: Part = field(default_factory=Part)
    events: Part = field(default_factory=Part)
    mwaa: Part = field(default_factory=Part)
    runs: Part = field(default_factory=Part)
    log: Part = field(default_factory=Part)

    @property
    def stack_status(self) -> str | None:
        return (self.stack.data or {}).get("status")

    @property
    def failed(self) -> bool:
        """A failed or rolled-back stack that no longer moves (exit 2); one still in progress
        or never executed (REVIEW_IN_PROGRESS) is not failed yet."""
        data = self.stack.data or {}
        return not data.get("in_progress") and any(
            mark in (self.stack_status or "") for mark in ("FAILED", "ROLLBACK"))

    def to_dict(self) -> dict:
        return asdict(self)


def _read_errors() -> tuple[type[Exception], ...]:
    """What reading a part may meet: AWS's answers, the SDK's own errors, ours."""
    from botocore.exceptions import BotoCoreError, ClientError

    return ClientError, BotoCoreError, M7Error, ValueError


def _problem(exc: Exception) -> str:
    """One line for an error met while reading a part (never a traceback)."""
    message = getattr(exc, "message", None)
    if message:
        hint = getattr(exc, "hint", None)
        return f"{message} {hint}" if hint else message
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def stack_part(cf, stack_name: str, env: str) -> tuple[Part, Part]:
    """The stack's status and outputs; when it is not complete, its last events and the
    failures of its last operation."""
    try:
        stack = find_stack(cf, stack_name)
    except _read_errors() as exc:  # reported in its place, the other parts still shown
        return Part(problem=_problem(exc)), Part()
    if stack is None:
        return (Part(problem=f"Stack {stack_name} does not exist yet: run 'm7etl deploy --env "
                             f"{env}' to create it."), Part())
    status = stack["StackStatus"]
    data = {"status": status, "reason": stack.get("StackStatusReason"),
            "updated": str(stack.get("LastUpdatedTime") or stack.get("CreationTime") or ""),
            "outputs": outputs(stack), "stack_id": stack["StackId"],
            "in_progress": not is_terminal(status) and status != NEVER_EXECUTED,
            "next_step": next_step(status, stack_name, env), "failures": []}
    if status in HEALTHY_STACK:
        return Part(data), Part()
    try:
        operation = latest_operation(cf, stack["StackId"])
    except _read_errors() as exc:
        return Part(data), Part(problem=_problem(exc))
    data["failures"] = [f.to_dict() for f in failures(operation)]
    return Part(data), Part([{"time": str(e.get("Timestamp", "")),
                              "logical_id": e.get("LogicalResourceId"),
                              "type": e.get("ResourceType"), "status": e.get("ResourceStatus"),
                              "reason": e.get("ResourceStatusReason")}
                             for e in operation[:RECENT_EVENTS]])


def latest_operation(cf, stack_id: str) -> list[dict]:
    """The events of the stack's last operation, newest first, back to the stack's event
    that started it: the failure that caused a rollback is older than the last few events
    (the rollback deletes every resource after it)."""
    events: list[dict] = []
    pages = cf.get_paginator("describe_stack_events").paginate(StackName=stack_id)
    for number, page in enumerate(pages, start=1):
        for event in page.get("StackEvents", []):
            events.append(event)
            if is_root(event) and event.get("ResourceStatus") in STARTS:
                return events
        if number >= MAX_EVENT_PAGES:
            break
    return events


def next_step(status: str, stack_name: str, env: str) -> str | None:
    """What to do about a stack that is not complete (None when it is)."""
    if status == NEVER_EXECUTED:
        return (f"A CREATE change set was made and never executed (the stack has no resources): "
                f"run 'm7etl deploy --env {env}' to start over.")
    if not is_terminal(status):
        return f"Follow it with '{follow_command(env)}'."
    return None if status in HEALTHY_STACK else outcome(status, stack_name, env).next_step


def mwaa_part(mwaa, env_name: str) -> Part:
    """The environment's state (CREATING, AVAILABLE, UPDATE_FAILED...) and its web server."""
    try:
        env = mwaa.get_environment(Name=env_name)["Environment"]
    except _read_errors() as exc:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
        if code == "ResourceNotFoundException":
            return Part(problem=f"Environment {env_name} does not exist (yet).")
        return Part(problem=_problem(exc))
    last = env.get("LastUpdate") or {}
    return Part({"name": env_name, "state": env.get("Status"),
                 "airflow_version": env.get("AirflowVersion"),
                 "webserver_url": env.get("WebserverUrl"),
                 "last_update": last.get("Status"),
                 "last_error": (last.get("Error") or {}).get("ErrorMessage")})


def latest_log_key(keys: list[str]) -> str | None:
    """The newest ``logs/pipeline_execution_YYYYMMDD.json`` (by day in the name)."""
    logs = sorted(k for k in keys if layout.is_execution_log_key(k))
    return logs[-1] if logs else None


def log_part(s3, bucket: str) -> Part:
    """The latest execution log's day, status and totals."""
    storage = S3Storage(bucket, client=s3)  # its paged list and its error mapping
    try:
        keys = [o.key for o in storage.list(f"{layout.LOGS}pipeline_execution_")]
        key = latest_log_key(keys)
        if key is None:
            return Part(problem=f"No execution log in s3://{bucket}/{layout.LOGS} yet.")
        log = json.loads(storage.read_bytes(key))
    except _read_errors() as exc:
        return Part(problem=_problem(exc))
    return Part({"key": key, "day": log.get("day"), "status": log.get("status"),
                 "run_id": log.get("run_id"), "finished_at": log.get("finished_at"),
                 "totals": log.get("totals", {})})


def runs_part(routes, dag_id: str, limit: int = RECENT_RUNS) -> Part:
    """The DAG's last runs (run id, state, start, end), newest first."""
    try:
        runs = routes.call("recent_runs", dag_id, limit)
    except _read_errors() as exc:
        return Part(problem=_problem(exc))
    return Part(runs)


def environment_status(config, clients, *, routes=None) -> Status:
    """Every part of the report for ``config``'s environment."""
    status = Status(config.name, config.stack_name)
    status.stack, status.events = stack_part(clients("cloudformation"), config.stack_name,
                                             config.name)
    status.mwaa = mwaa_part(routes.routes[0].client if routes else clients("mwaa"),
                            config.mwaa_environment)
    if status.mwaa.problem is None and routes is not None:
        status.runs = runs_part(routes, config.dag_id)
    else:
        status.runs = Part(problem="No MWAA environment to ask.")
    status.log = log_part(clients("s3"), config.data_bucket)
    return status
