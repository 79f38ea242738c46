"""A local stand-in for Amazon MWAA (moto has none), for tests and the local stack.

One threaded HTTP server on 127.0.0.1 speaks both routes into Airflow:

* MWAA's control plane as boto3 calls it (rest-json, botocore's ``mwaa/2020-07-01``):
  ``POST /restapi/{Name}`` (InvokeRestApi), ``POST /clitoken/{Name}`` (CreateCliToken),
  ``GET /environments/{Name}`` (GetEnvironment: ``env_status``, ``env_last_update``). Errors
  carry ``x-amzn-ErrorType`` and the modelled status and body: AccessDeniedException 403
  ``{"Message"}``, ResourceNotFoundException 404 / ValidationException 400 ``{"message"}``,
  RestApiClient/ServerException 400 ``{"RestApiStatusCode", "RestApiResponse"}``
  (tests/local/test_mwaa_standin.py checks them against the model).
* The web server's ``POST /aws_mwaa/cli``: a bearer CLI token (valid ``token_ttl`` = 60 s),
  the command line as the body, JSON ``{"stdout": b64, "stderr": b64}``: all AWS documents
  (nothing more is sent). An expired or unknown token gets 403 (assumed, not documented).

The CLI route: given ``airflow_home``, each command runs this Python's real ``airflow`` CLI
(its own SQLite DB and ``dags_folder``; one at a time, as MWAA advises; about 3 s each),
:func:`prepare_airflow_home` makes such a home once; without it, an emulation of m7etl's
commands printing what Airflow 3.0.6 prints.

The REST route emulates in memory the Airflow 3.0.6 routes m7etl calls (variables
GET/PATCH/POST, dagRuns POST/GET, taskInstances GET and the batch list) with the response
models' fields, status codes and ``detail`` texts of ``api_fastapi/core_api``. Not modelled:
auth and roles, query parameters and paging, DAG params, import errors, the 10 s timeout and
the 6 MB cap. With ``airflow_home`` the CLI route uses Airflow's DB and the REST route the
memory (they do not see each other); without it both share the memory.

Runs move only when told: each look at a run (REST ``GET``, CLI ``dags list-runs``) applies
its next ``progress`` step ``(run state, {task: state})``; :meth:`MwaaStandin.settle` sets
states. Switches: ``rest_mode`` (accept, unsupported, denied, refuse), ``token_mode`` (accept,
denied), ``cli_mode`` (accept, forbidden, fail), ``cli_warnings`` (GRAPHVIZ_WARNING); the
requests are kept in :attr:`requests`. ``python -m m7etl.local.standins.mwaa`` serves it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

DEFAULT_ENV = "m7-etl-mwaa-test"
DEFAULT_TASKS = ("raw_to_silver", "silver_to_gold", "gold_to_snowflake")
CLI_GROUPS = {"dags", "tasks", "variables", "connections", "pools", "version"}
READY = ".m7etl-standin-ready"
GRAPHVIZ_WARNING = (  # what Airflow 3.0.6's `dags` commands write to stderr without graphviz
    ".../airflow/cli/commands/dag_command.py:46 UserWarning: Could not import graphviz. Rendering "
    "graph to the graphical format will not be possible.\nYou might need to install the graphviz "
    "package and necessary system packages.\nRun `pip install graphviz` to attempt to install it.\n")
VARIABLE = re.compile(r"^/variables/(?P<key>.+)$")
DAG_RUNS = re.compile(r"^/dags/(?P<dag>[^/]+)/dagRuns$")
DAG_RUN = re.compile(r"^/dags/(?P<dag>[^/]+)/dagRuns/(?P<run>[^/]+)$")
TASKS = re.compile(r"^/dags/(?P<dag>[^/]+)/dagRuns/(?P<run>[^/]+)/taskInstances$")
TASKS_BATCH = "/dags/~/dagRuns/~/taskInstances/list"
NOT_ALLOWED = 405, {"detail": "Method Not Allowed"}
CONTROL = {("POST", "restapi"): "invoke_rest_api", ("POST", "clitoken"): "create_cli_token",
           ("GET", "environments"): "get_environment"}  # (method, path's first part) -> kind
SAMPLE_DAG = '''"""A stand-in DAG for the MWAA stand-in's Airflow: {dag_id}, tasks that do nothing."""
import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False):
    tasks = [EmptyOperator(task_id=t) for t in {tasks!r}]
    for up, down in zip(tasks, tasks[1:]):
        up >> down
'''


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# -- the real Airflow CLI ------------------------------------------------------------------
def airflow_command() -> str | None:
    """This Python's ``airflow`` script, else the one on PATH; None when not installed."""
    here = Path(sys.executable).with_name("airflow")
    return str(here) if here.is_file() else shutil.which("airflow")


def airflow_env(home: Path, dags: Path) -> dict[str, str]:
    """Everything through environment variables, so a copied home needs no airflow.cfg edit."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "LANG": "C.UTF-8", "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs")}


def run_airflow(args: list[str], home: Path, dags: Path, timeout: float = 180
                ) -> subprocess.CompletedProcess:
    airflow = airflow_command()
    if airflow is None:
        raise FileNotFoundError("the airflow command is not installed (pip install -e '.[airflow]')")
    return subprocess.run([airflow, *args], env=airflow_env(home, dags), capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=home)


def prepare_airflow_home(home: Path, dags: Path) -> bool:
    """``airflow db migrate`` then ``airflow dags reserialize`` (the DAGs into the DB), once:
    True when it did the work, False when the home was ready."""
    marker = home / READY
    if marker.is_file() and marker.read_text() == str(dags):
        return False
    home.mkdir(parents=True, exist_ok=True)
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        done = run_airflow(args, home, dags, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed in {home}:\n{done.stderr[-2000:]}")
    marker.write_text(str(dags))
    return True


def clone_airflow_home(template: Path, home: Path) -> Path:
    """A fresh home with a copy of a prepared one's DB (same dags folder): a test's own Airflow."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template / "airflow.db", home / "airflow.db")
    shutil.copy2(template / READY, home / READY)
    return home


def shared_airflow_home(base: Path) -> tuple[Path, Path]:
    """``(home, dags)`` prepared once under ``base`` (a session's temporary folder)."""
    dags = base / "mwaa-standin-dags"
    if not (dags / "m7_etl_pipeline.py").is_file():
        dags.mkdir(parents=True, exist_ok=True)
        (dags / "m7_etl_pipeline.py").write_text(SAMPLE_DAG.format(
            dag_id="m7_etl_pipeline", tasks=list(DEFAULT_TASKS)), encoding="utf-8")
    home = base / "mwaa-standin-airflow"
    prepare_airflow_home(home, dags)
    return home, dags


@dataclass
class Recorded:
    kind: str  # a CONTROL kind or "cli"
    path: str
    headers: dict
    body: object  # parsed JSON for the control plane, text for the CLI
    url: str | None = None


@dataclass
class MwaaStandin:
    env_name: str = DEFAULT_ENV
    dags: set[str] = field(default_factory=lambda: {"m7_etl_pipeline"})
    tasks: tuple[str, ...] = DEFAULT_TASKS  # the emulated DAGs' tasks
    rest_mode: str = "accept"
    token_mode: str = "accept"
    cli_mode: str = "accept"
    cli_warnings: bool = False
    env_status: str = "AVAILABLE"  # GetEnvironment's Status, and its LastUpdate below
    env_last_update: dict = field(default_factory=lambda: {"Status": "SUCCESS"})
    token_ttl: float = 60.0
    refusal: tuple[int, dict] = (400, {"detail": "conf is not a valid JSON object"})
    airflow_home: Path | None = None
    dags_folder: Path | None = None
    progress: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    runs: dict[tuple[str, str], dict] = field(default_factory=dict)
    task_states: dict[tuple[str, str], dict[str, str | None]] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)
    cli_urls: list[str] = field(default_factory=list)
    steps: dict[tuple[str, str], int] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, port: int = 0) -> MwaaStandin:
        standin = self

        class Handler(_Handler):
            owner = standin

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    host = property(lambda self: f"127.0.0.1:{self.server.server_address[1]}")
    endpoint = property(lambda self: f"http://{self.host}")

    def client(self):
        """A boto3 MWAA client aimed at the stand-in (made by m7etl.storage.aws)."""
        import boto3
        from botocore.config import Config

        from m7etl.storage.aws import client

        session = boto3.session.Session(aws_access_key_id="testing",
                                        aws_secret_access_key="testing", region_name="eu-west-1")
        return client("mwaa", session, endpoint_url=self.endpoint,
                      config=Config(inject_host_prefix=False, retries={"max_attempts": 1}))

    def http(self, url: str, *, headers: dict[str, str], body: bytes,
             timeout: float) -> tuple[int, bytes]:
        """An ``HttpPost`` reaching the web server endpoint (https terminated here)."""
        self.cli_urls.append(url)
        request = urllib.request.Request(url.replace("https://", "http://", 1), data=body,
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def of_kind(self, kind: str) -> list[Recorded]:
        return [r for r in self.requests if r.kind == kind]

    # -- Airflow's side: runs ----------------------------------------------------------
    def start_run(self, dag_id: str, run_id: str, conf: dict, logical_date,
                  triggered_by: str = "rest_api") -> tuple[int, dict]:
        with self.lock:
            if dag_id not in self.dags:
                return 404, {"detail": f"DAG with dag_id: '{dag_id}' not found"}
            if (dag_id, run_id) in self.runs:
                return 409, {"detail": {  # the IntegrityError handler's answer
                    "reason": "Unique constraint violation", "statement": "INSERT INTO dag_run ...",
                    "orig_error": "UNIQUE constraint failed: dag_run.dag_id, dag_run.run_id",
                    "message": "Serious error when handling your request. Check logs for more "
                               f"details - ... look for ID {secrets.token_hex(4)}"}}
            stamp = now_iso()
            run = {"dag_run_id": run_id, "dag_id": dag_id, "logical_date": logical_date,
                   "queued_at": stamp, "start_date": None, "end_date": None,
                   "data_interval_start": None, "data_interval_end": None, "run_after": stamp,
                   "last_scheduling_decision": None, "run_type": "manual", "state": "queued",
                   "triggered_by": triggered_by, "conf": conf, "note": None, "dag_versions": [],
                   "bundle_version": None}
            self.runs[(dag_id, run_id)] = run
            self.task_states[(dag_id, run_id)] = dict.fromkeys(self.tasks)
            return 200, run

    def settle(self, dag_id: str, run_id: str, state: str | None = None,
               tasks: dict[str, str] | None = None) -> None:
        """Set a run's state and its tasks' (what the scheduler and workers would do)."""
        with self.lock:
            if self.airflow_home is not None:
                return self._settle_db(dag_id, run_id, state, tasks or {})
            run = self.runs[(dag_id, run_id)]
            if state:
                run["state"] = state
                run["start_date"] = run["start_date"] or now_iso()
                run["end_date"] = now_iso() if state in ("success", "failed") else None
            self.task_states[(dag_id, run_id)].update(tasks or {})

    def advance(self, dag_id: str, run_id: str) -> None:
        """One look at a run: apply its next ``progress`` step, if any is left."""
        with self.lock:
            step = self.steps.get((dag_id, run_id), 0)
            if step < len(self.progress):
                self.steps[(dag_id, run_id)] = step + 1
                self.settle(dag_id, run_id, *self.progress[step])

    def _settle_db(self, dag_id: str, run_id: str, state: str | None, tasks: dict) -> None:
        with contextlib.closing(sqlite3.connect(self.airflow_home / "airflow.db")) as db, db:
            if state:
                db.execute("UPDATE dag_run SET state = ? WHERE dag_id = ? AND run_id = ?",
                           (state, dag_id, run_id))
            for task_id, task_state in tasks.items():
                db.execute("UPDATE task_instance SET state = ? WHERE dag_id = ? AND run_id = ? "
                           "AND task_id = ?", (task_state, dag_id, run_id, task_id))

    def _db_run_ids(self, dag_id: str) -> list[str]:
        with contextlib.closing(sqlite3.connect(self.airflow_home / "airflow.db")) as db:
            return [r[0] for r in db.execute("SELECT run_id FROM dag_run WHERE dag_id = ?",
                                             (dag_id,))]

    def _task_doc(self, dag_id: str, run_id: str, task_id: str, state: str | None) -> dict:
        """Airflow 3.0.6's ``TaskInstanceResponse`` (every field, most of them empty)."""
        run = self.runs[(dag_id, run_id)]
        empty = ("start_date", "end_date", "duration", "hostname", "unixname", "queued_when",
                 "scheduled_when", "pid", "executor", "note", "rendered_map_index", "trigger",
                 "triggerer_job", "dag_version")
        return {**dict.fromkeys(empty), "id": secrets.token_hex(16), "task_id": task_id,
                "dag_id": dag_id, "dag_run_id": run_id, "map_index": -1,
                "logical_date": run["logical_date"], "run_after": run["run_after"],
                "state": state, "try_number": 1 if state else 0, "max_tries": 0,
                "task_display_name": task_id, "pool": "default_pool", "pool_slots": 1,
                "queue": "default", "priority_weight": 1, "operator": "EmptyOperator",
                "executor_config": "{}", "rendered_fields": {}}

    # -- Airflow's side: the REST API (routes/public/*.py of Airflow 3.0.6) ----------------
    def airflow_rest(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        body = body if isinstance(body, dict) else {}
        if match := VARIABLE.match(path):
            return self._variable(method, unquote(match.group("key")), body)
        if path == "/variables":
            return self._post_variable(body) if method == "POST" else NOT_ALLOWED
        if (match := DAG_RUNS.match(path)) and method == "GET":
            runs = [r for (dag, _), r in self.runs.items() if dag == match.group("dag")]
            for run in runs:
                self.advance(match.group("dag"), run["dag_run_id"])
            return 200, {"dag_runs": runs, "total_entries": len(runs)}
        if match := DAG_RUNS.match(path):
            if method != "POST":
                return NOT_ALLOWED
            missing = _missing(body, ("logical_date",), ("dag_run_id", "logical_date", "conf",
                               "note", "run_after", "data_interval_start", "data_interval_end"))
            if missing:
                return missing
            run_id = body.get("dag_run_id") or f"manual__{now_iso()}"
            return self.start_run(match.group("dag"), run_id, body.get("conf") or {},
                                  body.get("logical_date"))
        if (match := DAG_RUN.match(path)) and method == "GET":
            key = (match.group("dag"), match.group("run"))
            self.advance(*key)
            if key not in self.runs:
                return 404, {"detail": f"The DagRun with dag_id: `{key[0]}` and run_id: "
                                       f"`{key[1]}` was not found"}
            return 200, self.runs[key]
        if (match := TASKS.match(path)) and method == "GET":
            dag_id, run_id = match.group("dag"), match.group("run")
            if dag_id not in self.dags:
                return 404, {"detail": f"DAG with dag_id: `{dag_id}` was not found"}
            if (dag_id, run_id) not in self.runs:
                return 404, {"detail": f"DagRun with run_id: `{run_id}` was not found"}
            return 200, self._tasks([(dag_id, run_id)])
        if path == TASKS_BATCH and method == "POST":
            keys = [k for k in self.runs if (not body.get("dag_ids") or k[0] in body["dag_ids"])
                    and (not body.get("dag_run_ids") or k[1] in body["dag_run_ids"])]
            return 200, self._tasks(keys)
        return 404, {"detail": "Not Found"}

    def _tasks(self, keys: list[tuple[str, str]]) -> dict:
        rows = [self._task_doc(*key, task, state) for key in keys
                for task, state in self.task_states.get(key, {}).items()]
        return {"task_instances": rows, "total_entries": len(rows)}

    def _variable(self, method: str, key: str, body: dict) -> tuple[int, Any]:
        not_found = 404, {"detail": f"The Variable with key: `{key}` was not found"}
        if method == "GET":
            return (200, _variable_doc(key, self.variables[key])) if key in self.variables \
                else not_found
        if method != "PATCH":
            return NOT_ALLOWED
        if missing := _missing(body, ("key", "value"), ("key", "value", "description")):
            return missing
        if body["key"] != key:
            return 400, {"detail": "Invalid body, key from request body doesn't match uri "
                                   "parameter"}
        if key not in self.variables:
            return not_found
        self.variables[key] = _stored(body["value"])
        return 200, _variable_doc(key, self.variables[key])

    def _post_variable(self, body: dict) -> tuple[int, Any]:
        if missing := _missing(body, ("key", "value"), ("key", "value", "description")):
            return missing
        if body["key"] in self.variables:
            return 409, {"detail": f"The Variable with key: `{body['key']}` already exists"}
        self.variables[body["key"]] = _stored(body["value"])
        return 201, _variable_doc(body["key"], self.variables[body["key"]])

    # -- Airflow's side: the CLI ---------------------------------------------------------
    def run_cli(self, text: str) -> tuple[str, str]:
        """``airflow <text>``: the real CLI with ``airflow_home``, else the emulation."""
        if self.cli_mode == "fail":
            return "", ("Traceback (most recent call last):\n  ...\n"
                        "airflow.exceptions.AirflowException: Dag is paused\n")
        try:
            args = shlex.split(text)
        except ValueError as exc:
            return "", f"airflow command error: {exc}\n"
        if not args or args[0] not in CLI_GROUPS:
            return "", f"airflow command error: {args[:1]} is not a command MWAA's CLI runs\n"
        with self.lock:
            if self.airflow_home is None:
                return self._emulate(args)
            if args[:2] == ["dags", "list-runs"] and len(args) > 2:
                for run_id in self._db_run_ids(args[2]):
                    self.advance(args[2], run_id)
            done = run_airflow(args, self.airflow_home, self.dags_folder or self.airflow_home)
            return done.stdout, done.stderr

    def _emulate(self, args: list[str]) -> tuple[str, str]:
        warn = GRAPHVIZ_WARNING if self.cli_warnings and args[0] == "dags" else ""
        opts = dict(zip(args[3::2], args[4::2], strict=False))
        if args[:2] == ["variables", "get"] and len(args) == 3:
            if args[2] in self.variables:
                return self.variables[args[2]] + "\n", ""
            return "", f"Variable {args[2]} does not exist\n"
        if args[:2] == ["variables", "set"] and len(args) == 4:
            self.variables[args[2]] = args[3]
            return f"Variable {args[2]} created\n", ""
        if args[:2] == ["dags", "trigger"] and len(args) >= 3:
            return self._emulate_trigger(args[2], opts, warn)
        if args[:2] == ["dags", "list-runs"] and len(args) >= 3:
            runs = [k for k in self.runs if k[0] == args[2]]
            for key in runs:
                self.advance(*key)
            rows = [{"dag_id": d, "run_id": r, "logical_date": "", **{k: self.runs[(d, r)][k] or ""
                     for k in ("state", "run_after", "start_date", "end_date")}} for d, r in runs]
            return (json.dumps(rows) if rows else "No data found") + "\n", warn
        if args[:2] == ["tasks", "states-for-dag-run"] and len(args) >= 4:
            key = (args[2], args[3])
            if key not in self.runs:
                return "", ("Traceback (most recent call last):\n  ...\nairflow.exceptions."
                            f"DagRunNotFound: DagRun for {key[0]} with run_id or logical_date "
                            f"of '{key[1]}' not found\n")
            rows = [{"dag_id": key[0], "logical_date": "", "task_id": t, "state": s,
                     "start_date": "", "end_date": ""} for t, s in self.task_states[key].items()]
            return json.dumps(rows) + "\n", ""
        return "", f"airflow command error: unsupported command {' '.join(args)!r}\n"

    def _emulate_trigger(self, dag_id: str, opts: dict, warn: str) -> tuple[str, str]:
        run_id = opts.get("--run-id") or opts.get("-r") or f"manual__{now_iso()}"
        conf = json.loads(opts.get("--conf") or opts.get("-c") or "{}")
        status, answer = self.start_run(dag_id, run_id, conf, opts.get("--logical-date"), "cli")
        if status == 404:
            return "", warn + ("Traceback (most recent call last):\n  ...\nairflow.exceptions."
                               f"DagNotFound: Dag id {dag_id} not found in DagModel\n")
        if status == 409:
            return "", warn + ("Traceback (most recent call last):\n  ...\nairflow.exceptions."
                               f"DagRunAlreadyExists: A DAG Run already exists for DAG {dag_id} "
                               f"with run id {run_id}\n")
        table = (f"conf | dag_id | dag_run_id | logical_date | run_type | state\n"
                 f"{conf} | {dag_id} | {run_id} | None | manual | {answer['state']}\n")
        return table, warn


def _missing(body: dict, required: tuple[str, ...], allowed: tuple[str, ...]
             ) -> tuple[int, dict] | None:
    """FastAPI's 422 for a StrictBaseModel body: missing fields and extra ones."""
    errors = [{"type": "missing", "loc": ["body", k], "msg": "Field required", "input": body}
              for k in required if k not in body]
    errors += [{"type": "extra_forbidden", "loc": ["body", k], "msg": "Extra inputs are not "
                "permitted", "input": body[k]} for k in body if k not in allowed]
    return (422, {"detail": errors}) if errors else None


def _stored(value: Any) -> str:
    """``Variable.set`` without serialize_json: ``str(value)``."""
    return value if isinstance(value, str) else str(value)


def _variable_doc(key: str, value: str) -> dict:
    return {"key": key, "value": value, "description": None, "is_encrypted": False}


class _Handler(BaseHTTPRequestHandler):
    owner: MwaaStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: dict | bytes, headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", secrets.token_hex(8))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _aws_error(self, status: int, code: str, body: dict) -> None:
        self._send(status, body, {"x-amzn-ErrorType": code})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        owner = self.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        if path == "/aws_mwaa/cli" and self.command == "POST":
            owner.requests.append(Recorded("cli", path, headers, raw.decode()))
            return self._cli(headers, raw.decode())
        match = re.fullmatch(r"/([a-z]+)/([^/]+)", path)
        kind = CONTROL.get((self.command, match.group(1))) if match else None
        if kind is None:
            return self._aws_error(404, "UnknownOperationException",
                                   {"message": "Unknown operation"})
        body = json.loads(raw) if raw else {}
        owner.requests.append(Recorded(kind, path, headers, body))
        if not headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            return self._aws_error(403, "AccessDeniedException",
                                   {"Message": "Missing SigV4 signature"})
        name = unquote(match.group(2))
        if name != owner.env_name:
            return self._aws_error(404, "ResourceNotFoundException",
                                   {"message": f"Environment {name} not found"})
        if kind == "get_environment":  # what identifies it, and the fields m7etl reads
            return self._send(200, {"Environment": {
                "Name": name, "Status": owner.env_status, "AirflowVersion": "3.0.6",
                "Arn": f"arn:aws:airflow:eu-west-1:123456789012:environment/{name}",
                "WebserverUrl": owner.host, "LastUpdate": owner.env_last_update}})
        if kind == "create_cli_token":
            return self._token()
        return self._rest(body)

    do_GET = do_POST  # GetEnvironment: no body, the same checks

    def _token(self) -> None:
        owner = self.owner
        if owner.token_mode == "denied":
            return self._aws_error(403, "AccessDeniedException", {
                "Message": "User is not authorized to perform: airflow:CreateCliToken"})
        token = secrets.token_urlsafe(24)
        owner.tokens[token] = time.monotonic()
        self._send(200, {"CliToken": token, "WebServerHostname": owner.host})

    def _rest(self, body: dict) -> None:
        owner = self.owner
        if owner.rest_mode == "unsupported":
            return self._aws_error(400, "ValidationException", {
                "message": "InvokeRestApi is not supported for this environment's Apache "
                           "Airflow version."})
        if owner.rest_mode == "denied":
            return self._aws_error(403, "AccessDeniedException", {
                "Message": "User is not authorized to perform: airflow:InvokeRestApi"})
        for key in ("Path", "Method"):
            if key not in body:
                return self._aws_error(400, "ValidationException",
                                       {"message": f"1 validation error: '{key}' is required"})
        if len(body["Path"]) > 64 or body["Method"] not in ("GET", "PUT", "POST", "PATCH",
                                                              "DELETE"):
            return self._aws_error(400, "ValidationException", {
                "message": "1 validation error detected: Path must have length less than or "
                           "equal to 64 and Method must be one of GET, PUT, POST, PATCH, DELETE"})
        if owner.rest_mode == "refuse":
            return self._airflow_error(*owner.refusal)
        status, answer = owner.airflow_rest(body["Method"], body["Path"], body.get("Body"))
        if status >= 400:
            return self._airflow_error(status, answer)
        self._send(200, {"RestApiStatusCode": status, "RestApiResponse": answer})

    def _airflow_error(self, status: int, detail: dict) -> None:
        code = "RestApiServerException" if status >= 500 else "RestApiClientException"
        self._aws_error(400, code, {"RestApiStatusCode": status, "RestApiResponse": detail})

    def _cli(self, headers: dict, text: str) -> None:
        owner = self.owner
        token = headers.get("authorization", "").removeprefix("Bearer ")
        issued = owner.tokens.get(token)
        if owner.cli_mode == "forbidden" or issued is None or \
                time.monotonic() - issued > owner.token_ttl:
            return self._send(403, b'{"message": "Forbidden"}')
        stdout, stderr = owner.run_cli(text)
        self._send(200, {"stdout": base64.b64encode(stdout.encode()).decode(),
                         "stderr": base64.b64encode(stderr.encode()).decode()})


# -- python -m m7etl.local.standins.mwaa -----------------------------------------------------
def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m7etl.local.standins.mwaa",
                                     description="Serve MWAA's two routes into a local Airflow.")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--airflow-home", required=True, help="the Airflow home (made if new)")
    parser.add_argument("--dags", required=True, help="the DAGs folder (dags/ of the checkout)")
    parser.add_argument("--env-name", default=DEFAULT_ENV, help="the MWAA environment's name")
    args = parser.parse_args(None if argv is None else list(argv))
    home, dags = Path(args.airflow_home).resolve(), Path(args.dags).resolve()
    try:
        prepare_airflow_home(home, dags)
    except (OSError, RuntimeError) as exc:
        print(f"mwaa stand-in: {exc}", file=sys.stderr)
        return 1
    standin = MwaaStandin(env_name=args.env_name, airflow_home=home, dags_folder=dags).start(
        args.port)
    print(f"MWAA stand-in ({args.env_name}, Airflow in {home}) on {standin.endpoint}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
