"""The Airflow CLI of the MWAA stand-in, one command at a time, in about a tenth of the time.

A fresh ``airflow`` process spends 3-4 s importing Airflow before it runs a 0.1 s command, and
``m7etl set-variables`` sends eight of them. :class:`AirflowCli` keeps one *warm* process that
has imported Airflow's CLI once and forks a child per command: the child reopens the
database, runs the command exactly as ``airflow <args>`` does (``cli_parser.get_parser()``,
``args.func(args)``), its stdout and stderr going to files the parent reads. Nothing of one
command survives into the next (each is a new process image of the same warm parent).
When the warm process cannot start (or ``warm=False``), each command is a plain ``airflow``
subprocess, with the same environment.

The environment (``environ``) is fixed for the warm process's life: setting it restarts it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from m7etl.local.standins.mwaa import airflow_command, airflow_env

COMMAND_TIMEOUT_S = 180

# The warm process: imports the CLI once, then one JSON line in -> fork -> one JSON line out.
WORKER = r'''
import json, os, sys
from airflow import configuration
from airflow.cli import cli_parser
# Not dag_command: importing it warns about graphviz on stderr, as each real `airflow dags`
# command does on MWAA; the child imports it, so the warning stays where Airflow puts it.
from airflow.cli.commands import connection_command, variable_command  # noqa: F401
configuration.write_default_airflow_configuration_if_needed()
parser = cli_parser.get_parser()
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    out, err = request["stdout"], request["stderr"]
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            with open(out, "wb") as o, open(err, "wb") as e:
                os.dup2(o.fileno(), 1)
                os.dup2(e.fileno(), 2)
            from airflow import settings
            settings.dispose_orm()
            settings.configure_orm()
            args = parser.parse_args(request["args"])
            args.func(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, (int, type(None))):
                print(exc.code, file=sys.stderr)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)
'''


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


class AirflowCli:
    """``airflow <args>`` in ``home`` with the DAG folder ``dags`` and ``environ`` on top."""

    def __init__(self, home: Path, dags: Path, environ: dict[str, str] | None = None, *,
                 warm: bool = True):
        self.home, self.dags = Path(home), Path(dags)
        self._environ = dict(environ or {})
        self.warm = warm and hasattr(os, "fork")
        self._worker: subprocess.Popen | None = None
        self._lock = threading.RLock()

    @property
    def environ(self) -> dict[str, str]:
        return self._environ

    @environ.setter
    def environ(self, value: dict[str, str]) -> None:
        with self._lock:
            self._environ = dict(value)
            self._stop_worker()

    def environment(self) -> dict[str, str]:
        return {**airflow_env(self.home, self.dags), **self._environ}

    def run(self, args: list[str], timeout: float = COMMAND_TIMEOUT_S) -> Done:
        with self._lock:
            if self.warm and self._ensure_worker():
                done = self._run_warm(args, timeout)
                if done is not None:
                    return done
            return self._run_cold(args, timeout)

    def close(self) -> None:
        with self._lock:
            self._stop_worker()

    # -- a plain subprocess ----------------------------------------------------------------
    def _run_cold(self, args: list[str], timeout: float) -> Done:
        airflow = airflow_command()
        if airflow is None:
            return Done(127, "", "the airflow command is not installed\n")
        try:
            proc = subprocess.run([airflow, *args], env=self.environment(), capture_output=True,
                                  text=True, timeout=timeout, check=False, cwd=self.home)
        except subprocess.TimeoutExpired:
            return Done(124, "", f"airflow {' '.join(args[:2])} timed out after {timeout:.0f} s\n")
        return Done(proc.returncode, proc.stdout, proc.stderr)

    # -- the warm process ------------------------------------------------------------------
    def _ensure_worker(self) -> bool:
        if self._worker is not None and self._worker.poll() is None:
            return True
        self._worker = None
        self.home.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", WORKER], env=self.environment(),
                                cwd=self.home, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        ready = proc.stdout.readline().strip()
        if ready != "ready":
            proc.kill()
            proc.wait()
            self.warm = False  # plain subprocesses from now on
            return False
        self._worker = proc
        return True

    def _run_warm(self, args: list[str], timeout: float) -> Done | None:
        with tempfile.TemporaryDirectory(prefix="airflow-cli-") as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            request = {"args": list(args), "stdout": str(out), "stderr": str(err)}
            try:
                self._worker.stdin.write(json.dumps(request) + "\n")
                self._worker.stdin.flush()
                answer = _readline(self._worker, timeout)
            except (OSError, ValueError):
                answer = None
            if answer is None:
                self._stop_worker()
                return None
            read = lambda p: p.read_text(errors="replace") if p.is_file() else ""  # noqa: E731
            return Done(int(json.loads(answer)["returncode"]), read(out), read(err))

    def _stop_worker(self) -> None:
        proc, self._worker = self._worker, None
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the worker and a hung command's child
            proc.wait()


def _readline(proc: subprocess.Popen, timeout: float) -> str | None:
    """One line from the worker within ``timeout`` (None: it hung or died)."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box and box[0] else None
