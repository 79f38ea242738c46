"""A local stand-in for AWS Glue jobs: StartJobRun runs the job's script on this machine.

moto has no Glue runtime, so ``make dag-test`` and the local stack run ``gold_to_snowflake``
here, over Glue's JSON 1.1 protocol (botocore's ``glue/2017-03-31`` model), with what
GlueJobOperator, its hook and its deferrable trigger call. A run is a process of this venv's
Python: Glue's ``sys.argv``, the unpacked ``--extra-py-files`` alone providing m7etl, and
(with a ``warehouse_dir``) a sitecustomize patching ``snowflake.connector`` with fakesnow -
a seam needing no change to ``m7etl.warehouse``. S3 and Secrets Manager are reached (moto)
through ``AWS_ENDPOINT_URL``. What both stand-ins share lives here too. See docs/local.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

from m7etl.exceptions import ConfigurationError

log = logging.getLogger("m7etl.local.standins.glue")

TARGET_PREFIX = "AWSGlue."
CONTENT_TYPE = "application/x-amz-json-1.1"
ACTIVE = ("STARTING", "RUNNING", "STOPPING")  # what MaxConcurrentRuns counts
LOG_GROUP = "/aws-glue/python-jobs"
DEFAULT_TIMEOUT = 2880  # minutes, Glue's default
NO_STAGE = ("", "none", "-")  # as m7etl.warehouse.job reads --snowflake_stage
JOB_KEYS = ("name", "script", "default_arguments", "extra_py_files", "max_concurrent_runs",
            "timeout")
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL on BatchStopJobRun

# Imported by the run's interpreter (first on PYTHONPATH), before the script.
SITECUSTOMIZE = '''# Written by m7etl's Glue stand-in: Glue's sys.path, and fakesnow for Snowflake.
import os, sys
_bundles = [p for p in os.environ.get("M7_GLUE_EXTRA_PY_FILES", "").split(os.pathsep) if p]
# Glue puts only --extra-py-files on the path: hide any other m7etl (the editable source tree).
sys.path[:] = [p for p in sys.path
               if p in _bundles or not os.path.isdir(os.path.join(p or ".", "m7etl"))]
if os.environ.get("M7_GLUE_FAKESNOW_DB"):
    import atexit, fakesnow
    _patch = fakesnow.patch(db_path=os.environ["M7_GLUE_FAKESNOW_DB"])
    _patch.__enter__()
    atexit.register(_patch.__exit__, None, None, None)  # closes DuckDB: the file is complete
'''


# -- shared by the stand-ins ------------------------------------------------------------------
class HttpStandin:
    """A threaded HTTP server on 127.0.0.1 answered by ``handler_class`` (a subclass sets it)."""

    handler_class: type[BaseHTTPRequestHandler]
    _server: ThreadingHTTPServer | None = None

    def start(self, port: int = 0):
        class Handler(self.handler_class):
            standin = self

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        return self if self._server else self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def serve(standin: HttpStandin, port: int, what: str) -> int:
    """Start, say where on stdout (scripts wait for that line), serve until SIGTERM or ^C."""
    standin.start(port)
    print(f"{what} on {standin.endpoint}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    standin.stop()
    return 0


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal a process started with ``start_new_session`` and everything it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def s3_object(location: str, target: Path, client=None, env: Mapping[str, str] | None = None) -> Path:
    """Copy ``s3://bucket/key`` to ``target``; without a client, the endpoint is the stand-in's
    ``env`` AWS_ENDPOINT_URL(_S3), else boto3's own environment."""
    from botocore.exceptions import BotoCoreError, ClientError

    if client is None:
        from m7etl.storage.aws import client as make_client

        env = env or {}
        client = make_client("s3", endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or
                             env.get("AWS_ENDPOINT_URL"))
    parts = urlparse(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        client.download_file(parts.netloc, parts.path.lstrip("/"), str(target))
    except (ClientError, BotoCoreError) as exc:
        raise ConfigurationError(f"Cannot copy {location}: {str(exc).rstrip('.')}.",
                                 hint="Upload it first (m7etl upload) or give a local path.") from None
    return target


def check_keys(data: Mapping, keys: tuple[str, ...], required: tuple[str, ...], label: str,
               source: str) -> None:
    """A JSON spec has only ``keys`` and all of ``required`` (the error names them and the file)."""
    unknown = sorted(set(data) - set(keys))
    missing = [k for k in required if not data.get(k)]
    if unknown or missing:
        found = f"unknown key(s) {', '.join(unknown)}" if unknown else \
            f"missing key(s) {', '.join(missing)}"
        raise ConfigurationError(f"{label} {data.get('name', '?')!r} in {source}: {found}.",
                                 hint=f"The keys are {', '.join(keys)}.")


def place(location: str, base: Path | None) -> str:
    """A spec's path: s3:// and absolute ones as they are, relative ones under ``base``."""
    if location.startswith("s3://") or base is None or Path(location).is_absolute():
        return location
    return str((base / location).resolve())


# -- jobs and runs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class JobSpec:
    """A job definition: script and ``--extra-py-files`` are paths or ``s3://`` objects (read
    at each run start, as Glue does); ``extra_py_files`` defaults to the argument's value."""

    name: str
    script: str
    default_arguments: Mapping[str, str] = field(default_factory=dict)
    extra_py_files: tuple[str, ...] | None = None
    max_concurrent_runs: int = 1
    timeout: int = DEFAULT_TIMEOUT  # minutes
    role: str = "arn:aws:iam::123456789012:role/m7etl-local-standin"
    description: str = ""
    glue_version: str = "3.0"
    python_version: str = "3.9"
    max_capacity: float = 0.0625

    def check(self) -> JobSpec:
        for failed, what in ((not 1 <= len(self.name) <= 255, "the name is not 1-255 characters"),
                             (not self.script, "no script"), (self.timeout < 1, "timeout below 1"),
                             (self.max_concurrent_runs < 1, "MaxConcurrentRuns below 1"),
                             (any(not isinstance(v, str) for v in self.default_arguments.values()),
                              "argument values must be strings")):
            if failed:
                raise ConfigurationError(f"Glue job {self.name!r}: {what}.", hint="Fix the job.")
        return self

    def bundles(self) -> tuple[str, ...]:
        if self.extra_py_files is not None:
            return self.extra_py_files
        text = self.default_arguments.get("--extra-py-files", "")
        return tuple(p.strip() for p in text.split(",") if p.strip())

    @classmethod
    def from_dict(cls, data: Mapping, base: Path | None = None, source: str = "") -> JobSpec:
        """A job from JSON (keys: JOB_KEYS); relative paths are relative to ``base``."""
        check_keys(data, JOB_KEYS, ("name", "script"), "Glue job", source)
        extra = data.get("extra_py_files")
        return cls(data["name"], place(data["script"], base), dict(data.get("default_arguments") or {}),
                   None if extra is None else tuple(place(p, base) for p in extra),
                   int(data.get("max_concurrent_runs", 1)),
                   int(data.get("timeout", DEFAULT_TIMEOUT))).check()

    @classmethod
    def from_api(cls, name: str, job: Mapping) -> JobSpec:
        """From CreateJob's request or UpdateJob's JobUpdate."""
        command = job.get("Command") or {}
        return cls(name, command.get("ScriptLocation", ""), dict(job.get("DefaultArguments") or {}),
                   None, int((job.get("ExecutionProperty") or {}).get("MaxConcurrentRuns", 1)),
                   int(job.get("Timeout") or DEFAULT_TIMEOUT), job.get("Role", cls.role),
                   job.get("Description", ""), job.get("GlueVersion", "3.0"),
                   command.get("PythonVersion", "3.9"), float(job.get("MaxCapacity") or 0.0625)
                   ).check()

    def to_api(self, created: float, modified: float) -> dict:
        """GetJob's ``Job``."""
        return {"Name": self.name, "JobMode": "SCRIPT", "Description": self.description,
                "Role": self.role, "CreatedOn": created, "LastModifiedOn": modified,
                "ExecutionProperty": {"MaxConcurrentRuns": self.max_concurrent_runs},
                "Command": {"Name": "pythonshell", "ScriptLocation": self.script,
                            "PythonVersion": self.python_version},
                "DefaultArguments": dict(self.default_arguments), "MaxRetries": 0,
                "AllocatedCapacity": 0, "Timeout": self.timeout, "MaxCapacity": self.max_capacity,
                "GlueVersion": self.glue_version}


def load_jobs(path: str | Path) -> list[JobSpec]:
    """Jobs from a JSON file: a list of jobs, or ``{"jobs": [...]}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"Cannot read the jobs file {path}: {exc}.",
                                 hint="Give a JSON list of jobs (docs/local.md).") from None
    items = data.get("jobs", []) if isinstance(data, dict) else data
    return [JobSpec.from_dict(item, path.parent, str(path)) for item in items]


@dataclass
class JobRun:
    """One run; ``folder`` holds ``output.log`` and ``error.log`` (Glue's two log streams)."""

    id: str
    job_name: str
    arguments: dict[str, str]
    timeout: int
    folder: Path
    state: str = "STARTING"
    started_on: float = field(default_factory=time.time)
    last_modified: float = field(default_factory=time.time)
    completed_on: float | None = None
    error_message: str | None = None
    execution_time: int = 0
    previous_run_id: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    stop_requested: bool = False

    def to_api(self, spec: JobSpec) -> dict:
        """GetJobRun's ``JobRun``."""
        run = {"Id": self.id, "Attempt": 0, "JobName": self.job_name, "JobMode": "SCRIPT",
               "StartedOn": self.started_on, "LastModifiedOn": self.last_modified,
               "JobRunState": self.state, "Arguments": dict(self.arguments), "PredecessorRuns": [],
               "AllocatedCapacity": 0, "ExecutionTime": self.execution_time,
               "Timeout": self.timeout, "MaxCapacity": spec.max_capacity,
               "LogGroupName": LOG_GROUP, "GlueVersion": spec.glue_version}
        optional = {"CompletedOn": self.completed_on, "ErrorMessage": self.error_message,
                    "PreviousRunId": self.previous_run_id}
        return run | {k: v for k, v in optional.items() if v is not None}

    def output(self, stream: str = "output") -> str:
        path = self.folder / f"{stream}.log"
        return path.read_text(errors="replace") if path.is_file() else ""


class GlueError(Exception):
    """A modelled Glue error: its code (``__type``), message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def error_message(returncode: int, stdout: str, stderr: str) -> str:
    """Why a run failed: the last line of stderr (an exception's summary), else the job's last
    ERROR line (m7etl's job logs to stdout), else the exit code."""
    for lines in ([x for x in stderr.splitlines() if x.strip()],
                  [x for x in stdout.splitlines() if " ERROR " in x]):
        if lines:
            return lines[-1].strip()[:2048]
    return f"Command failed with exit code {returncode}"


# -- the stand-in -----------------------------------------------------------------------------
class GlueStandin(HttpStandin):
    """Glue's job API for registered jobs. ``warehouse_dir``: the fakesnow warehouse runs load
    into (None: the connector is left alone); ``env`` adds variables to every run (e.g.
    ``{"AWS_ENDPOINT_URL": moto}``); ``timeout_unit`` is the seconds in a timeout "minute"
    (60; tests shorten it)."""

    def __init__(self, cache_dir: str | Path, *, warehouse_dir: str | Path | None = None,
                 env: Mapping[str, str] | None = None, python: str | None = None,
                 s3_client=None, timeout_unit: float = 60.0):
        self.cache_dir = Path(cache_dir)
        self.warehouse_dir = Path(warehouse_dir).resolve() if warehouse_dir else None
        self.env = dict(env or {})
        self.python = python or sys.executable
        self.s3_client = s3_client
        self.timeout_unit = timeout_unit
        self.jobs: dict[str, JobSpec] = {}
        self.created: dict[str, tuple[float, float]] = {}
        self.runs: dict[str, JobRun] = {}
        self.handler_class = _GlueHandler
        self._lock = threading.Lock()
        self._warehouse = threading.Lock()  # DuckDB lets one process write the file at a time

    def register(self, spec: JobSpec) -> JobSpec:
        """Add or replace a job (local script and bundle paths must exist)."""
        spec.check()
        for location in (spec.script, *spec.bundles()):
            if not location.startswith("s3://") and not Path(location).is_file():
                raise ConfigurationError(f"Glue job {spec.name}: {location} does not exist.",
                                         hint="Build it with `m7etl package` (build/glue/).")
        now = time.time()
        self.created[spec.name] = (self.created.get(spec.name, (now, now))[0], now)
        self.jobs[spec.name] = spec
        return spec

    def job(self, name: str) -> JobSpec:
        if name not in self.jobs:
            raise GlueError("EntityNotFoundException", f"Job {name} not found.")
        return self.jobs[name]

    def run(self, name: str, run_id: str) -> JobRun:
        run = self.runs.get(run_id)
        if run is None or run.job_name != name:
            raise GlueError("EntityNotFoundException", f"Job run {run_id} not found.")
        return run

    def start_run(self, name: str, arguments: Mapping[str, str] | None = None,
                  timeout: int | None = None, previous: str | None = None) -> JobRun:
        """StartJobRun: a new run in STARTING, executed by a thread."""
        spec = self.job(name)
        with self._lock:
            active = [r for r in self.runs.values() if r.job_name == name and r.state in ACTIVE]
            if len(active) >= spec.max_concurrent_runs:
                raise GlueError("ConcurrentRunsExceededException",
                                f"Concurrent runs exceeded for {name}")
            run_id = "jr_" + secrets.token_hex(32)
            run = JobRun(run_id, name, dict(arguments or {}), timeout or spec.timeout,
                         self.cache_dir / "runs" / run_id, previous_run_id=previous)
            self.runs[run_id] = run
        threading.Thread(target=self._execute, args=(spec, run), daemon=True).start()
        return run

    def stop_run(self, name: str, run_id: str) -> None:
        run = self.run(name, run_id)
        with self._lock:
            if run.state not in ACTIVE:
                raise GlueError("InvalidInputException",
                                f"Job run {run_id} is {run.state}: it cannot be stopped.")
            run.stop_requested, run.state, run.last_modified = True, "STOPPING", time.time()
            if run.process is not None:
                kill_group(run.process, signal.SIGTERM)

    def argv(self, spec: JobSpec, run: JobRun, script: Path) -> list[str]:
        merged = {**spec.default_arguments, **run.arguments}
        argv = [str(script), "--JOB_NAME", spec.name, "--JOB_RUN_ID", run.id]
        return argv + [item for pair in merged.items() for item in pair]

    def environment(self, bundles: list[str]) -> dict[str, str]:
        site = self.cache_dir / "site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(site), *bundles]),
               "M7_GLUE_EXTRA_PY_FILES": os.pathsep.join(bundles)}
        if self.warehouse_dir:
            self.warehouse_dir.mkdir(parents=True, exist_ok=True)
            env["M7_GLUE_FAKESNOW_DB"] = str(self.warehouse_dir)
        return env

    def _fetch(self, location: str, folder: Path) -> Path:
        if not location.startswith("s3://"):
            return Path(location).resolve()
        return s3_object(location, folder / "code" / Path(urlparse(location).path).name,
                         self.s3_client, self.env)

    def _bundle(self, path: Path, folder: Path) -> Path:
        """A .zip unpacked for the run, as the project's bundle test runs it (the contracts are
        read from a datasets/ folder on the file system)."""
        if path.suffix != ".zip":
            return path
        target = folder / "extra-py-files" / path.stem
        try:
            with zipfile.ZipFile(path) as zf:
                zf.extractall(target)
        except zipfile.BadZipFile:
            raise ConfigurationError(f"{path} is not a zip file.",
                                     hint="Rebuild it with `m7etl package`.") from None
        return target

    def _execute(self, spec: JobSpec, run: JobRun) -> None:
        run.folder.mkdir(parents=True, exist_ok=True)
        try:
            script = self._fetch(spec.script, run.folder)
            bundles = [str(self._bundle(self._fetch(p, run.folder), run.folder))
                       for p in spec.bundles()]
            merged = {**spec.default_arguments, **run.arguments}
            if self.warehouse_dir and merged.get("--snowflake_stage", "").strip().lower() not in NO_STAGE:
                log.warning("Glue run %s: --snowflake_stage is set, but fakesnow cannot COPY "
                            "from s3://; give no stage (the write_pandas path)", run.id)
            lock = self._warehouse if self.warehouse_dir else contextlib.nullcontext()
            with lock, (run.folder / "output.log").open("wb") as out, \
                    (run.folder / "error.log").open("wb") as err:
                if run.stop_requested:
                    return self._end(run, "STOPPED", None)
                started = time.monotonic()
                with self._lock:
                    run.process = subprocess.Popen(
                        [self.python, *self.argv(spec, run, script)], stdout=out, stderr=err,
                        stdin=subprocess.DEVNULL, cwd=run.folder, env=self.environment(bundles),
                        start_new_session=True)
                    if run.stop_requested:  # stopped while it was being started
                        kill_group(run.process, signal.SIGTERM)
                    else:
                        run.state, run.last_modified = "RUNNING", time.time()
                state = self._wait(run, run.timeout * self.timeout_unit)
                run.execution_time = round(time.monotonic() - started)
        except Exception as exc:  # a run always ends (none stays STARTING): the log has why
            if not isinstance(exc, ConfigurationError):
                log.exception("Glue run %s failed in the stand-in", run.id)
            return self._end(run, "FAILED", str(exc))
        message = None
        if state == "FAILED":
            message = error_message(run.process.returncode, run.output(), run.output("error"))
        elif state == "TIMEOUT":
            message = f"Job run timed out after {run.timeout} minute(s)."
        self._end(run, state, message)

    def _wait(self, run: JobRun, seconds: float) -> str:
        """The run's end state: its exit, the timeout, or a stop (SIGKILL after the grace)."""
        proc, deadline, kill_at = run.process, time.monotonic() + seconds, None
        while proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
            now = time.monotonic()
            if run.stop_requested:
                kill_at = kill_at or now + STOP_GRACE
            if now >= (kill_at or deadline):
                kill_group(proc)
                proc.wait()
                return "STOPPED" if run.stop_requested else "TIMEOUT"
        kill_group(proc)  # what the script started and left behind
        if run.stop_requested:
            return "STOPPED"
        return "SUCCEEDED" if proc.returncode == 0 else "FAILED"

    def _end(self, run: JobRun, state: str, message: str | None) -> None:
        with self._lock:
            run.state, run.error_message = state, message
            run.completed_on = run.last_modified = time.time()
        log.info("glue run %s of %s: %s in %d s%s", run.id[:11], run.job_name, state,
                 run.execution_time, f" ({message})" if message else "")

    def stop(self) -> None:
        super().stop()
        for run in list(self.runs.values()):
            if run.process is not None and run.state in ACTIVE:
                kill_group(run.process)

    # -- the operations ---------------------------------------------------------------------
    def call(self, operation: str, body: Mapping) -> dict:
        """Answer one JSON 1.1 request (raises GlueError for the modelled errors)."""
        def required(*names: str) -> list:
            missing = [n for n in names if not body.get(n)]
            if missing:
                raise GlueError("InvalidInputException", f"{', '.join(missing)} is required.")
            return [body[n] for n in names]

        if operation == "GetJob":
            (name,) = required("JobName")
            return {"Job": self.job(name).to_api(*self.created[name])}
        if operation == "GetJobs":
            return {"Jobs": [s.to_api(*self.created[n]) for n, s in self.jobs.items()]}
        if operation == "CreateJob":
            name, _role, _command = required("Name", "Role", "Command")
            if name in self.jobs:
                raise GlueError("AlreadyExistsException", f"Job {name} already exists.")
            self.register(JobSpec.from_api(name, body))
            return {"Name": name}
        if operation == "UpdateJob":
            name, update = required("JobName", "JobUpdate")
            self.job(name)
            self.register(JobSpec.from_api(name, update))
            return {"JobName": name}
        if operation == "StartJobRun":
            (name,) = required("JobName")
            run = self.start_run(name, body.get("Arguments"), body.get("Timeout"), body.get("JobRunId"))
            return {"JobRunId": run.id}
        if operation == "GetJobRun":
            name, run_id = required("JobName", "RunId")
            return {"JobRun": self.run(name, run_id).to_api(self.job(name))}
        if operation == "GetJobRuns":
            (name,) = required("JobName")
            spec = self.job(name)
            runs = sorted((r for r in self.runs.values() if r.job_name == name),
                          key=lambda r: r.started_on, reverse=True)  # newest first, as Glue
            start, size = int(body.get("NextToken") or 0), int(body.get("MaxResults") or 100)
            page = {"JobRuns": [r.to_api(spec) for r in runs[start:start + size]]}
            return page | ({"NextToken": str(start + size)} if start + size < len(runs) else {})
        if operation == "BatchStopJobRun":
            name, run_ids = required("JobName", "JobRunIds")
            done, errors = [], []
            for run_id in run_ids:
                try:
                    self.stop_run(name, run_id)
                    done.append({"JobName": name, "JobRunId": run_id})
                except GlueError as exc:
                    errors.append({"JobName": name, "JobRunId": run_id, "ErrorDetail": {
                        "ErrorCode": exc.code, "ErrorMessage": exc.message}})
            return {"SuccessfulSubmissions": done, "Errors": errors}
        raise GlueError("UnknownOperationException", f"Operation {operation} is not served by "
                        "the Glue stand-in (docs/local.md).")


class _GlueHandler(BaseHTTPRequestHandler):
    standin: GlueStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:  # runs are logged instead
        pass

    def _send(self, status: int, doc: Mapping, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        for item in {"Content-Type": CONTENT_TYPE, "Content-Length": str(len(body)),
                     "x-amzn-RequestId": secrets.token_hex(16), **(headers or {})}.items():
            self.send_header(*item)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        try:
            if not re.match(rf"^{re.escape(TARGET_PREFIX)}\w+$", target):
                raise GlueError("UnknownOperationException", f"Unknown target {target!r}.")
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise GlueError("SerializationException", "The request is not JSON.") from None
            answer = self.standin.call(target[len(TARGET_PREFIX):], body)
        except GlueError as exc:
            return self._send(exc.status, {"__type": exc.code, "Message": exc.message},
                              {"x-amzn-ErrorType": exc.code})
        except ConfigurationError as exc:
            return self._send(400, {"__type": "InvalidInputException", "Message": str(exc)},
                              {"x-amzn-ErrorType": "InvalidInputException"})
        except Exception as exc:  # answer, never drop the connection: boto would retry it
            log.exception("Glue %s failed in the stand-in", target)
            return self._send(500, {"__type": "InternalServiceException", "Message": str(exc)},
                              {"x-amzn-ErrorType": "InternalServiceException"})
        self._send(200, answer)


# -- python -m m7etl.local.standins.glue_jobs -------------------------------------------------
def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m7etl.local.standins.glue_jobs",
                                     description="Serve Glue's job API on 127.0.0.1; runs are local.")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--jobs", action="append", default=[], metavar="FILE",
                        help="JSON file of jobs (repeatable; see docs/local.md)")
    parser.add_argument("--warehouse-dir", help="the fakesnow warehouse runs load into")
    parser.add_argument("--cache-dir", default=".work/standins/glue", help="runs' files and logs")
    args = parser.parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    standin = GlueStandin(args.cache_dir, warehouse_dir=args.warehouse_dir)
    try:
        for spec in [s for path in args.jobs for s in load_jobs(path)]:
            standin.register(spec)
        return serve(standin, args.port, f"Glue stand-in ({', '.join(standin.jobs)})")
    except (ConfigurationError, OSError) as exc:
        print(f"glue stand-in: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
