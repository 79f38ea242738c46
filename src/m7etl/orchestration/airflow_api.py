"""What m7etl asks of Airflow through MWAA: variables, a DAG run, the states of its tasks.

Each request is built by a pure function (the REST call or the CLI line, tested as data),
sent by :func:`m7etl.orchestration.mwaa.rest_call` or :func:`~m7etl.orchestration.mwaa.cli_call`,
and read by a parser written against Airflow 3.0.6's answers (the REST models of
``airflow/api_fastapi/core_api/datamodels``, the CLI's ``-o json`` output). Two routes
with the same methods:

* :class:`CliRoute`: ``CreateCliToken`` and ``/aws_mwaa/cli``, the deployment guide's way;
* :class:`RestRoute`: ``InvokeRestApi``, for a private web server or a refused CLI route.

:class:`Routes` tries them in order; the first usable one serves every later call, and why
the others were skipped is kept for the report.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
from dataclasses import dataclass, field

from m7etl.orchestration.mwaa import (
    MAX_PATH,
    AirflowError,
    CliOutput,
    CliTokens,
    HttpPost,
    MwaaError,
    RouteUnavailable,
    TriggerResult,
    cli_call,
    rest_call,
    trigger_cli,
    trigger_rest,
)

AUTO = "auto"
CLI_TOKEN = "cli-token"
REST = "rest-api"
VIA = (AUTO, CLI_TOKEN, REST)
SUCCESS = "success"
FAILED = "failed"
TERMINAL = (SUCCESS, FAILED)  # Airflow 3's DagRunState: queued, running, success, failed
LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\dT[^\]]*\] \{")  # Airflow's log lines on stdout
NO_DATA = "No data found"  # what Airflow's console prints for an empty -o json list


@dataclass(frozen=True)
class RunStatus:
    """A DAG run as Airflow reports it: its state and each task's (None = not yet)."""

    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str | None] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


# -- requests, as data ---------------------------------------------------------------------
def variable_path(key: str) -> str:
    return f"/variables/{key}"


def variable_body(key: str, value: str) -> dict:
    """Airflow 3's ``VariableBody`` (PATCH and POST): the value as text, as the CLI stores it."""
    return {"key": key, "value": value}


def variable_get_command(key: str) -> str:
    return f"variables get {shlex.quote(key)}"


def variable_set_command(key: str, value: str) -> str:
    return " ".join(shlex.quote(p) for p in ("variables", "set", key, value))


def dag_run_path(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/dagRuns/{run_id}"


def task_instances_request(dag_id: str, run_id: str) -> tuple[str, str, dict | None]:
    """``GET .../taskInstances`` when its path fits InvokeRestApi's 64 characters, else the
    batch route ``POST /dags/~/dagRuns/~/taskInstances/list`` filtered on the run."""
    path = f"{dag_run_path(dag_id, run_id)}/taskInstances"
    if len(path) <= MAX_PATH:
        return "GET", path, None
    return "POST", "/dags/~/dagRuns/~/taskInstances/list", {"dag_ids": [dag_id],
                                                            "dag_run_ids": [run_id]}


def recent_runs_request(dag_id: str, limit: int) -> tuple[str, dict]:
    """``GET /dags/{dag_id}/dagRuns``, newest first (Airflow 3's ``order_by`` takes ``-``)."""
    return f"/dags/{dag_id}/dagRuns", {"limit": str(limit), "order_by": "-run_after"}


def run_row(run: dict) -> dict:
    """The fields ``m7etl status`` shows, from a REST ``DAGRunResponse`` or a CLI row."""
    return {"run_id": run.get("dag_run_id") or run.get("run_id"), "state": run.get("state"),
            "start_date": run.get("start_date"), "end_date": run.get("end_date"),
            "run_after": run.get("run_after")}


def newest_first(rows: list[dict], limit: int) -> list[dict]:
    return sorted(rows, key=lambda r: str(r.get("run_after") or r.get("start_date") or ""),
                  reverse=True)[:limit]


def list_runs_command(dag_id: str) -> str:
    return f"dags list-runs {shlex.quote(dag_id)} -o json"


def task_states_command(dag_id: str, run_id: str) -> str:
    return f"tasks states-for-dag-run {shlex.quote(dag_id)} {shlex.quote(run_id)} -o json"


# -- answers -------------------------------------------------------------------------------
def json_rows(stdout: str) -> list[dict]:
    """The list a ``-o json`` command printed; Airflow's log lines may come before it."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line == NO_DATA:
            return []
        if line.startswith("["):
            try:
                rows = json.loads(line)
            except ValueError:
                continue  # a log line: "[2025-05-01T...] {...} INFO - ..."
            if isinstance(rows, list):
                return rows
    raise ValueError(f"no JSON list in the output: {stdout.strip()[-200:]!r}")


def cli_value(out: CliOutput) -> str | None:
    """``variables get``: the value, or None when Airflow says it does not exist."""
    if out.ok:
        return "\n".join(x for x in out.stdout.splitlines() if not LOG_LINE.match(x)).strip("\n")
    if any("does not exist" in line for line in out.problems):
        return None
    raise AirflowError(f"`airflow {out.command}` failed: {out.last_problem()}",
                       detail="\n".join(out.problems),
                       hint="Check the caller's Airflow role (it needs to read variables).")


def tasks_of(instances: list[dict]) -> dict[str, str | None]:
    """Task id (``id[i]`` for a mapped instance) -> state, from REST rows (``map_index`` an
    int, -1 unmapped) or CLI rows (a text, "" unmapped, only when the run has mapped ones)."""
    tasks: dict[str, str | None] = {}
    for ti in instances:
        name, index = ti["task_id"], ti.get("map_index")
        index = int(index) if isinstance(index, str) and index.isdigit() else index
        if isinstance(index, int) and index >= 0:
            name = f"{name}[{index}]"
        tasks[name] = ti.get("state") or None
    return tasks


# -- the two routes ------------------------------------------------------------------------
class RestRoute:
    """Airflow's REST API through ``InvokeRestApi``."""

    name = REST

    def __init__(self, client, env_name: str):
        self.client = client
        self.env_name = env_name

    def get_variable(self, key: str) -> str | None:
        try:
            answer = rest_call(self.client, self.env_name, "GET", variable_path(key))
        except AirflowError as exc:
            if exc.status == 404:
                return None
            raise
        return (answer.body or {}).get("value")

    def set_variable(self, key: str, value: str, *, exists: bool) -> None:
        """PATCH an existing variable, POST a missing one (and the other way on a race)."""
        patch = ("PATCH", variable_path(key), 404)
        post = ("POST", "/variables", 409)
        first, second = (patch, post) if exists else (post, patch)
        try:
            rest_call(self.client, self.env_name, first[0], first[1], variable_body(key, value))
        except AirflowError as exc:
            if exc.status != first[2]:
                raise
            rest_call(self.client, self.env_name, second[0], second[1], variable_body(key, value))

    def trigger(self, dag_id: str, run_id: str, conf: dict,
                logical_date: str | None = None) -> TriggerResult:
        return trigger_rest(self.client, self.env_name, dag_id, conf, run_id, logical_date)

    def run_status(self, dag_id: str, run_id: str) -> RunStatus:
        try:
            run = rest_call(self.client, self.env_name, "GET", dag_run_path(dag_id, run_id)).body
            method, path, body = task_instances_request(dag_id, run_id)
            tis = rest_call(self.client, self.env_name, method, path, body).body
        except AirflowError as exc:
            if exc.status == 404:
                raise _no_run(self.env_name, dag_id, run_id, exc.detail) from None
            raise
        return RunStatus(dag_id, run_id, run["state"], tasks_of(tis.get("task_instances", [])))

    def recent_runs(self, dag_id: str, limit: int) -> list[dict]:
        path, query = recent_runs_request(dag_id, limit)
        body = rest_call(self.client, self.env_name, "GET", path, query=query).body or {}
        return newest_first([run_row(r) for r in body.get("dag_runs", [])], limit)


class CliRoute:
    """The Airflow CLI through a CLI token (one token reused while it is fresh)."""

    name = CLI_TOKEN

    def __init__(self, client, env_name: str, http: HttpPost | None = None,
                 web_url: str | None = None):
        self.client = client
        self.env_name = env_name
        self.http = http
        self.web_url = web_url
        self.tokens = CliTokens(client, env_name)

    def run(self, command: str, *, check: bool = True, hint: str | None = None) -> CliOutput:
        return cli_call(self.client, self.env_name, command, self.http, tokens=self.tokens,
                        web_url=self.web_url, check=check, hint=hint)

    def get_variable(self, key: str) -> str | None:
        return cli_value(self.run(variable_get_command(key), check=False))

    def set_variable(self, key: str, value: str, *, exists: bool) -> None:
        self.run(variable_set_command(key, value),
                 hint="Check the caller's Airflow role (it needs to write variables).")

    def trigger(self, dag_id: str, run_id: str, conf: dict,
                logical_date: str | None = None) -> TriggerResult:
        return trigger_cli(self.client, self.env_name, dag_id, conf, run_id, logical_date,
                           self.http, tokens=self.tokens, web_url=self.web_url)

    def run_status(self, dag_id: str, run_id: str) -> RunStatus:
        runs = self._rows(list_runs_command(dag_id))
        found = [r for r in runs if r.get("run_id") == run_id]
        if not found:
            raise _no_run(self.env_name, dag_id, run_id, f"{len(runs)} other run(s) listed")
        tasks = self._rows(task_states_command(dag_id, run_id))
        return RunStatus(dag_id, run_id, found[0]["state"], tasks_of(tasks))

    def recent_runs(self, dag_id: str, limit: int) -> list[dict]:
        return newest_first([run_row(r) for r in self._rows(list_runs_command(dag_id))], limit)

    def _rows(self, command: str) -> list[dict]:
        out = self.run(command, hint="Check that the DAG exists and is parsed (airflow dags "
                                     "list).")
        try:
            return json_rows(out.stdout)
        except ValueError as exc:
            raise MwaaError(f"`airflow {command}` on {self.env_name} printed no JSON ({exc}).",
                            hint="Retry; if it persists, read the web server logs.",
                            retryable=True) from None


def _no_run(env_name: str, dag_id: str, run_id: str, detail: str) -> MwaaError:
    return MwaaError(f"Airflow on {env_name} has no run {run_id} of {dag_id} ({detail}).",
                     hint="Check the run id (the Airflow UI's Runs page lists them).")


class Routes:
    """The routes to try, in order: the first usable one serves every later call."""

    def __init__(self, env_name: str, routes: list):
        self.env_name = env_name
        self.routes = routes
        self.index = 0
        self.skipped: list[str] = []

    @property
    def name(self) -> str:
        return self.routes[self.index].name

    @property
    def fallback_reason(self) -> str | None:
        return "; ".join(self.skipped) or None

    def call(self, operation: str, *args, **kwargs):
        while True:
            route = self.routes[self.index]
            try:
                return getattr(route, operation)(*args, **kwargs)
            except RouteUnavailable as exc:
                self.skipped.append(f"{route.name}: {exc.message}")
                if self.index + 1 < len(self.routes):
                    self.index += 1
                    continue
                if len(self.routes) == 1:
                    raise
                raise MwaaError(f"Neither route reaches Airflow on {self.env_name}: "
                                f"{self.fallback_reason}", hint=exc.hint,
                                retryable=exc.retryable) from None


@functools.cache
def _mwaa_config(local: bool):
    from botocore.config import Config

    # A few quick retries: a person is waiting, and InvokeRestApi gives up after 10 s anyway.
    # A local stand-in has no "env." host to prefix.
    return Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                  read_timeout=60, inject_host_prefix=not local)


def connect(clients, env_name: str, via: str = AUTO, *, web_url: str | None = None,
            http: HttpPost | None = None) -> Routes:
    """The routes of ``via`` (``auto``: the CLI token, then the REST API) to ``env_name``.

    ``clients`` is a :class:`m7etl.storage.aws.Clients`; ``web_url`` replaces the web
    server's ``https://<host>`` (a local stand-in).
    """
    if via not in VIA:
        raise MwaaError(f"Unknown MWAA route {via!r}.", hint=f"Use one of {', '.join(VIA)}.")
    local = bool(clients.endpoints.get("mwaa") or clients.endpoint_url
                 or os.environ.get("AWS_ENDPOINT_URL_MWAA") or os.environ.get("AWS_ENDPOINT_URL"))
    client = clients("mwaa", _mwaa_config(local))
    cli, rest = CliRoute(client, env_name, http, web_url), RestRoute(client, env_name)
    return Routes(env_name, {AUTO: [cli, rest], CLI_TOKEN: [cli], REST: [rest]}[via])
