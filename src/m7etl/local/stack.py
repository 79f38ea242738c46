"""``make local-up`` / ``local-down`` / ``m7etl local status``: the local stack's processes.

Two processes on 127.0.0.1, detached from the terminal that started them, each with its pid
file and log under ``.work/local/``:

* ``moto``: :mod:`m7etl.local.moto.server` (S3, CloudFormation, IAM, Secrets Manager, SNS,
  SQS, EventBridge, CloudWatch, Logs, KMS, SSM, EC2, STS, Lambda and Glue really running
  the uploaded code), at the environment's ``endpoint_url``;
* ``mwaa``: :mod:`m7etl.local.standins.mwaa_runs` (MWAA's control plane, its CLI and REST
  routes into a real Airflow 3.0.6 that executes the triggered runs), at ``endpoints.mwaa``.

The ports come from the environment's table in ``m7etl.toml`` (``[local]``), so the commands
that use the stack and the stack itself cannot disagree. :func:`up` refuses to start twice
(naming the running pids) and starts from a clean state (moto keeps its state in memory: the
Airflow database, the DAG folder and the warehouse are reset with it, from a migrated
template kept in ``.work/local/cache/``); it waits, bounded, until each process answers, and
stops what it started when one does not. :func:`down` stops exactly the recorded processes
and their children (the pid file holds the pid and its start time, so a reused pid is never
signalled). :func:`status` tells running, stopped and died (with the end of its log).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from m7etl.exceptions import DeployError

LOCAL_DIR_ENV = "M7_LOCAL_DIR"  # where .work/local is, when not beside m7etl.toml
MOTO, MWAA = "moto", "mwaa"
SERVICES = (MWAA, MOTO)  # start order (both start at once; moto registers with MWAA later)
READY = {MOTO: "moto server on ", MWAA: "MWAA stand-in ("}  # the line each prints when it answers
START_TIMEOUT_S = {MOTO: 60.0, MWAA: 180.0}  # a first Airflow `db migrate` is in MWAA's
STOP_GRACE_S = 10.0
# What every process of the stack runs with: moto takes any key, and no credential of this
# machine (a profile, a real key) reaches the local stack or the code it runs.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}
LOCAL_HOSTS = ("127.0.0.1", "localhost")
RUNNING, STOPPED, DIED, STARTED = "running", "stopped", "died", "started"


@dataclass(frozen=True)
class Layout:
    """Where everything of one local stack lives, and its two ports."""

    root: Path
    moto_port: int
    mwaa_port: int
    region: str = "eu-west-1"

    def pid_file(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def port(self, name: str) -> int:
        return self.moto_port if name == MOTO else self.mwaa_port

    def endpoint(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    airflow_home = property(lambda self: self.root / "airflow")
    dags = property(lambda self: self.root / "dags")
    warehouse = property(lambda self: self.root / "warehouse")
    moto_work = property(lambda self: self.root / "moto")
    mwaa_work = property(lambda self: self.root / "mwaa")
    bucket_copy = property(lambda self: self.root / "bucket")
    template_home = property(lambda self: self.root / "cache" / "airflow-template")
    state_dirs = property(lambda self: (self.airflow_home, self.dags, self.warehouse,
                                        self.moto_work, self.mwaa_work))


@dataclass
class ServiceState:
    """One process of the stack as :func:`status` (or up/down) found it."""

    name: str
    state: str  # running, started, stopped, died
    port: int
    log: Path
    pid: int | None = None
    endpoint: str = ""
    detail: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "state": self.state, "pid": self.pid, "port": self.port,
                "endpoint": self.endpoint, "log": str(self.log), "detail": self.detail}


@dataclass
class Report:
    services: list[ServiceState] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"services": [s.to_dict() for s in self.services], "seconds": round(self.seconds, 1)}


# -- pure: where, what, which command ------------------------------------------------------------
def local_port(url: str | None, what: str, source: str) -> int:
    """The port of a local endpoint URL; the error names the setting when it is not one."""
    parsed = urlparse(url or "")
    if parsed.scheme != "http" or parsed.hostname not in LOCAL_HOSTS or not parsed.port:
        raise DeployError(
            f"{source}: {what} is {url!r}, not a local endpoint http://127.0.0.1:<port>.",
            hint=f"The local stack serves on 127.0.0.1 only: set {what} = "
                 "\"http://127.0.0.1:5100\" (see the [local] table of m7etl.toml).")
    return parsed.port


def layout_for(config, root: Path | None = None) -> Layout:
    """The layout of an environment whose ``endpoint_url`` (moto) and ``endpoints.mwaa`` (the
    stand-in) are local; ``root`` defaults to ``.work/local`` beside its m7etl.toml."""
    moto = local_port(config.endpoint_url, f"[{config.name}] endpoint_url", config.source)
    mwaa = local_port(config.endpoints.get("mwaa"), f"[{config.name}.endpoints] mwaa",
                      config.source)
    if moto == mwaa:
        raise DeployError(f"{config.source}: moto and the MWAA stand-in are both given port "
                          f"{moto}.", hint="Give [local.endpoints] mwaa another port.")
    return Layout(root or default_root(config.source), moto, mwaa, config.region)


def default_root(source: str) -> Path:
    if os.environ.get(LOCAL_DIR_ENV):
        return Path(os.environ[LOCAL_DIR_ENV]).resolve()
    config = Path(source)
    base = config.parent if config.is_file() else Path.cwd()
    return (base / ".work" / "local").resolve()


def command(layout: Layout, name: str) -> list[str]:
    """The command line of one process (this Python, a module of this package)."""
    if name == MOTO:
        return [sys.executable, "-m", "m7etl.local.moto.server", "--port", str(layout.moto_port),
                "--work-dir", str(layout.moto_work), "--warehouse-dir", str(layout.warehouse),
                "--mwaa-endpoint", layout.endpoint(MWAA)]
    return [sys.executable, "-m", "m7etl.local.standins.mwaa_runs", "--port",
            str(layout.mwaa_port), "--airflow-home", str(layout.airflow_home), "--dags",
            str(layout.dags), "--moto", layout.endpoint(MOTO), "--work", str(layout.mwaa_work),
            "--region", layout.region]


def environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The processes' environment: this one, without profiles or keys, with fake ones."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith(("AWS_", "AIRFLOW"))}
    return {**env, **FAKE_CREDENTIALS, "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "PYTHONUNBUFFERED": "1"}


# -- the pid files -------------------------------------------------------------------------------
def _read_pid(layout: Layout, name: str) -> dict | None:
    try:
        return json.loads(layout.pid_file(name).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _process(record: dict | None):
    """The live process a pid file names (same pid *and* start time), else None."""
    if not record:
        return None
    import psutil

    try:
        proc = psutil.Process(int(record["pid"]))
        if abs(proc.create_time() - float(record["created"])) > 1.0:
            return None  # the pid was reused by another program
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, ValueError):
        return None


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def _state(layout: Layout, name: str) -> ServiceState:
    record = _read_pid(layout, name)
    state = ServiceState(name, STOPPED, layout.port(name), layout.log_file(name),
                         endpoint=layout.endpoint(name))
    if record is None:
        return state
    state.pid = int(record.get("pid", 0)) or None
    if _process(record) is None:
        state.state, state.detail = DIED, _tail(layout.log_file(name))
        return state
    state.state = RUNNING
    if not _answers(layout.port(name)):
        state.detail = f"not answering on port {layout.port(name)}"
    return state


def _answers(port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout):
        return True
    return False


# -- up, down, status ----------------------------------------------------------------------------
def status(layout: Layout) -> Report:
    return Report([_state(layout, name) for name in SERVICES])


def up(layout: Layout, *, fresh: bool = True, timeout: float | None = None) -> Report:
    """Start both processes and wait until they answer; refuse when one already runs."""
    started_at = time.monotonic()
    states = status(layout)
    running = [s for s in states.services if s.state == RUNNING]
    if running:
        pids = ", ".join(f"{s.name} (pid {s.pid}, port {s.port})" for s in running)
        raise DeployError(f"The local stack in {layout.root} is already running: {pids}.",
                          hint="Use it as it is, or stop it first with make local-down "
                               "(m7etl local down).")
    for name in SERVICES:
        layout.pid_file(name).unlink(missing_ok=True)  # a died process's record
        if _answers(layout.port(name)):
            raise DeployError(f"Port {layout.port(name)} on 127.0.0.1 (the local {name}) is "
                              "taken by another program.",
                              hint="Stop that program, or give the local stack other ports in "
                                   "m7etl.toml ([local] endpoint_url, [local.endpoints]).")
    layout.root.mkdir(parents=True, exist_ok=True)
    if fresh:
        reset(layout)
    report = Report()
    try:
        for name in SERVICES:
            report.services.append(_start(layout, name))
        for service in report.services:
            _wait_ready(layout, service, timeout or START_TIMEOUT_S[service.name])
    except BaseException:
        down(layout)
        raise
    report.seconds = time.monotonic() - started_at
    return report


def reset(layout: Layout) -> None:
    """A clean state: moto's lives in memory, so the Airflow database (from the migrated
    template), the DAG folder and the warehouse start empty with it."""
    for folder in layout.state_dirs:
        shutil.rmtree(folder, ignore_errors=True)
    _template(layout)
    shutil.copytree(layout.template_home, layout.airflow_home)
    from m7etl.local.standins.mwaa import READY as AIRFLOW_READY

    layout.dags.mkdir(parents=True)
    (layout.airflow_home / AIRFLOW_READY).write_text(str(layout.dags.resolve()))


def _template(layout: Layout) -> None:
    """``airflow db migrate`` once per machine (kept in the cache), not at every up."""
    from m7etl.local.standins.mwaa import prepare_airflow_home

    home = layout.template_home
    empty = home.parent / "empty-dags"
    empty.mkdir(parents=True, exist_ok=True)
    try:
        prepare_airflow_home(home, empty.resolve())
    except (OSError, RuntimeError, FileNotFoundError) as exc:
        shutil.rmtree(home, ignore_errors=True)
        raise DeployError(f"The local Airflow database cannot be prepared in {home}: {exc}",
                          hint="Install the airflow extra (make install) and run again.") from None


def _start(layout: Layout, name: str) -> ServiceState:
    import psutil

    log = layout.log_file(name)
    with open(log, "wb") as out:
        proc = subprocess.Popen(command(layout, name), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=environment(), cwd=layout.root,
                                start_new_session=True)
    record = {"pid": proc.pid, "created": psutil.Process(proc.pid).create_time(),
              "port": layout.port(name), "command": command(layout, name)}
    layout.pid_file(name).write_text(json.dumps(record, indent=1))
    return ServiceState(name, STARTED, layout.port(name), log, proc.pid, layout.endpoint(name))


def _wait_ready(layout: Layout, service: ServiceState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    record = _read_pid(layout, service.name)
    while time.monotonic() < deadline:
        text = service.log.read_text(errors="replace") if service.log.is_file() else ""
        if READY[service.name] in text and _answers(service.port):
            service.state = RUNNING
            return
        if _process(record) is None:
            raise DeployError(f"The local {service.name} (pid {service.pid}) stopped while "
                              f"starting. The end of {service.log}:\n{_tail(service.log)}",
                              hint="Fix what the log says, then make local-up again.")
        time.sleep(0.2)
    raise DeployError(f"The local {service.name} (pid {service.pid}) did not answer on port "
                      f"{service.port} within {timeout:.0f} s. The end of {service.log}:\n"
                      f"{_tail(service.log)}", hint="Read its log, then make local-up again.",
                      retryable=True)


def down(layout: Layout, grace: float = STOP_GRACE_S) -> Report:
    """Stop exactly the processes the pid files name, and their children."""
    import psutil

    report = Report()
    for name in reversed(SERVICES):  # moto first: it registers nothing more with MWAA
        state = _state(layout, name)
        proc = _process(_read_pid(layout, name))
        if proc is not None:
            # SIGTERM to the process: it stops its own runs first. Then whatever of its tree
            # (taken before, children in their own sessions included) is left is killed.
            family = [proc, *_children(proc)]
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
            _, alive = psutil.wait_procs([proc], timeout=grace)
            if alive:  # it did not stop: its threads' stacks go to its log, for the report
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGUSR1)
                    time.sleep(0.5)
            left = [p for p in family if _alive(p)]
            for member in left:
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.kill()
            psutil.wait_procs(left, timeout=grace)
            state.state = STOPPED
            state.detail = f"killed after {grace:.0f} s" if alive else \
                ("stopped" if not left else f"stopped; {len(left)} child process(es) killed")
        elif state.state == DIED:
            state.detail = f"had died already. The end of its log:\n{state.detail}"
        layout.pid_file(name).unlink(missing_ok=True)
        report.services.append(state)
    report.services.reverse()
    return report


def _children(proc) -> list:
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        return proc.children(recursive=True)
    return []


def _alive(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
