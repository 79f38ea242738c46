"""The MWAA stand-in of the local stack: its environment is created by the stack, and the
DAG runs it is asked for really run.

:class:`LocalMwaa` extends :class:`~m7etl.local.standins.mwaa.MwaaStandin` (the two routes
into a real Airflow 3.0.6) with what an environment does once CloudFormation made it:

* **The control plane.** ``CreateEnvironment`` / ``UpdateEnvironment`` / ``DeleteEnvironment``
  (``PUT`` / ``PATCH`` / ``DELETE /environments/{Name}``, botocore's shapes) register the one
  environment this stand-in serves; ``GetEnvironment`` answers what was registered
  (``SourceBucketArn``, ``DagS3Path``, ``AirflowConfigurationOptions``...), ``AVAILABLE`` at
  once, ``WebserverUrl`` this server. Before a create (or after a delete) every call about
  it is ``ResourceNotFoundException``, as in AWS before the stack.
* **The DAG folder** is the environment's ``s3://<source bucket>/<DagS3Path>/`` on the moto
  server, mirrored into ``dags_folder`` before every ``dags`` command, every triggered run
  and every few seconds (MWAA syncs it too), then ``airflow dags reserialize``: the deployed
  DAG (``m7etl upload``) is the one that runs, with the ``m7etl`` modules shipped beside it.
* **Runs.** A run queued in the Airflow database - by ``airflow dags trigger`` on the CLI
  route or by ``POST /dags/{dag}/dagRuns`` on the REST route, which now goes to the same
  database - is executed by a scheduler thread, one run at a time, oldest first, never for a
  paused DAG: ``mwaa_dagrun.py`` in a subprocess (``DAG.test``'s loop on that run, see
  there), its log in ``<work>/runs/``. The tasks reach AWS through the connection
  ``aws_default`` (moto's endpoint, in the database and so visible to ``GET
  /connections/aws_default``) and read the environment's ``AirflowConfigurationOptions`` as
  ``AIRFLOW__SECTION__KEY``, as on MWAA. The REST route's dagRuns, taskInstances,
  connections and variables (:mod:`~m7etl.local.standins.mwaa_rest`) and the CLI's
  ``list-runs`` / ``states-for-dag-run`` use that database, so every route sees the same run.

Not modelled: the schedule (no ``@daily`` run is created), parallel runs and
``max_active_runs`` beyond one run at a time, workers, pools and queues, the triggerer
(``DAG.test`` runs deferred triggers inline), requirements and plugins installs, startup
scripts, environment classes and the 20-40 minutes a create takes.

    python -m m7etl.local.standins.mwaa_runs --port P --airflow-home DIR --dags DIR \\
        --moto URL [--work DIR] [--region eu-west-1]
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from m7etl.local.standins.airflow_cli import AirflowCli
from m7etl.local.standins.mwaa import MwaaStandin, _Handler, prepare_airflow_home
from m7etl.local.standins.mwaa_rest import DatabaseRest

log = logging.getLogger("m7etl.local.standins.mwaa")
ACCOUNT = "123456789012"  # moto's default account
AIRFLOW_VERSION = "3.0.6"
RUNNER = Path(__file__).with_name("mwaa_dagrun.py")
ENVIRONMENT = re.compile(r"^/environments/(?P<name>[^/]+)$")
REQUIRED = ("ExecutionRoleArn", "SourceBucketArn", "DagS3Path", "NetworkConfiguration")
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}
RUN_TIMEOUT_S = 4 * 3600  # the DAG's dagrun_timeout
LOCAL_OPTIONS = {"m7etl.glue_poll_seconds": "2"}  # a local Glue run takes seconds, not minutes


def option_variables(options: dict[str, str]) -> dict[str, str]:
    """``AirflowConfigurationOptions`` as MWAA hands them to Airflow: ``a.b`` -> ``AIRFLOW__A__B``."""
    return {f"AIRFLOW__{k.split('.', 1)[0].upper()}__{k.split('.', 1)[1].upper()}": str(v)
            for k, v in options.items() if "." in k}


@dataclass
class LocalMwaa(DatabaseRest, MwaaStandin):
    moto_endpoint: str = ""
    region: str = "eu-west-1"
    work: Path | None = None  # run logs (runs/), the sitecustomize (site/)
    environment: dict[str, Any] | None = None  # the registered environment (GetEnvironment)
    sync_interval: float = 5.0
    tick: float = 0.5
    env_name: str = ""
    cli: AirflowCli | None = None
    executing: str | None = None  # the run id being executed
    _etags: dict[str, str] = field(default_factory=dict)
    _synced_at: float = 0.0
    _sync_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _process: subprocess.Popen | None = None
    _told_paused: set[str] = field(default_factory=set)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, port: int = 0) -> LocalMwaa:
        standin = self

        class Handler(_LocalHandler):
            owner = standin

        from http.server import ThreadingHTTPServer

        self.work = (self.work or self.airflow_home / "standin").resolve()
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        self.cli = self.cli or AirflowCli(self.airflow_home, self.dags_folder,
                                          self.airflow_environment())
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        threading.Thread(target=self._schedule, daemon=True, name="scheduler").start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        if self.cli:
            self.cli.close()
        super().stop()

    # -- the environment (the control plane) -----------------------------------------------
    def register(self, name: str, body: dict, *, update: bool = False) -> tuple[int, str, dict]:
        """Create or update the environment: ``(status, error code or "", answer)``."""
        with self.lock:
            if update:
                if self.environment is None or name != self.env_name:
                    return 404, "ResourceNotFoundException", {
                        "message": f"Environment {name} not found"}
                doc = {**self.environment, **_fields(body)}
            else:
                missing = [k for k in REQUIRED if k not in body]
                if missing:
                    return 400, "ValidationException", {
                        "message": f"Missing required parameter(s): {', '.join(missing)}"}
                if self.environment is not None:
                    return 400, "ValidationException", {
                        "message": f"This stand-in serves one environment and "
                                   f"{self.env_name} exists; delete it first"}
                doc = {"Name": name, "CreatedAt": time.time(), **_fields(body)}
            version = doc.get("AirflowVersion") or AIRFLOW_VERSION
            if version != AIRFLOW_VERSION:
                return 400, "ValidationException", {
                    "message": f"AirflowVersion {version}: the local stand-in runs Airflow "
                               f"{AIRFLOW_VERSION} only"}
            arn = f"arn:aws:airflow:{self.region}:{ACCOUNT}:environment/{name}"
            doc.update(Name=name, Arn=arn, Status="AVAILABLE", AirflowVersion=version,
                       WebserverUrl=self.host, LastUpdate={
                           "Status": "SUCCESS", "CreatedAt": time.time(),
                           "Source": "UPDATE" if update else "CREATE"})
            source = self.dag_source()
            self.environment, self.env_name = doc, name
            if not update or self.dag_source() != source:  # a new environment: no DAGs yet
                with self._sync_lock:
                    for child in self.dags_folder.iterdir():
                        shutil.rmtree(child) if child.is_dir() else child.unlink()
                    self._etags.clear()
            self._synced_at = 0.0
            if self.cli:
                self.cli.environ = self.airflow_environment()
        log.info("environment %s %s (DAGs from %s)", name, "updated" if update else "created",
                 self.dag_source())
        return 200, "", {"Arn": arn}

    def unregister(self, name: str) -> tuple[int, str, dict]:
        with self.lock:
            if self.environment is None or name != self.env_name:
                return 404, "ResourceNotFoundException", {"message": f"Environment {name} not found"}
            self.environment, self.env_name = None, ""
        log.info("environment %s deleted", name)
        return 200, "", {}

    def dag_source(self) -> tuple[str, str] | None:
        """``(bucket, prefix/)`` of the registered environment's DAG folder."""
        env = self.environment or {}
        bucket = str(env.get("SourceBucketArn") or "").rsplit(":", 1)[-1]
        if not bucket:
            return None
        return bucket, str(env.get("DagS3Path") or "dags").strip("/") + "/"

    def airflow_environment(self) -> dict[str, str]:
        """What every Airflow process of this environment gets besides ``airflow_env``."""
        site = self.work / "site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        options = {**LOCAL_OPTIONS, **((self.environment or {}).get(
            "AirflowConfigurationOptions") or {})}
        # MWAA puts the DAG folder on PYTHONPATH (the DAG imports the m7etl shipped there).
        return {"PYTHONPATH": os.pathsep.join([str(site), str(self.dags_folder)]),
                "M7_DAGS_FOLDER": str(self.dags_folder),
                **FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": self.region,
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                **option_variables(options)}

    def connection(self) -> dict:
        """``aws_default``: moto for every service, the region; no key (moto takes any)."""
        return {"conn_type": "aws", "extra": {"region_name": self.region,
                                              "endpoint_url": self.moto_endpoint}}

    def ensure_connection(self) -> None:
        """``aws_default`` in the database (what MWAA's execution role is): added once per
        moto endpoint, so ``m7etl doctor`` finds it through the REST API."""
        marker = self.airflow_home / ".m7etl-connection"
        wanted = json.dumps(self.connection(), sort_keys=True)
        if marker.is_file() and marker.read_text() == wanted:
            return
        self.cli.run(["connections", "delete", "aws_default"])
        done = self.cli.run(["connections", "add", "aws_default", "--conn-json", wanted])
        if done.returncode != 0:
            raise RuntimeError(f"airflow connections add aws_default failed: {done.stderr[-500:]}")
        marker.write_text(wanted)

    # -- the DAG folder --------------------------------------------------------------------
    def sync_dags(self, *, force: bool = False) -> bool:
        """Mirror the environment's S3 DAG folder; True when something changed (then the DAGs
        were reserialized). Quietly nothing before a create or while moto is not up."""
        source = self.dag_source()
        if source is None or not self.moto_endpoint:
            return False
        with self._sync_lock:
            if not force and time.monotonic() - self._synced_at < self.sync_interval:
                return False
            bucket, prefix = source
            try:
                s3 = self._s3()
                listing = {}
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                         Prefix=prefix):
                    listing.update({o["Key"][len(prefix):]: o["ETag"] for o in
                                    page.get("Contents", []) if not o["Key"].endswith("/")})
                changed = [k for k, tag in listing.items() if self._etags.get(k) != tag]
                for rel in changed:
                    target = self.dags_folder / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, prefix + rel, str(target))
            except Exception as exc:  # moto down, bucket gone: the folder stays as it was
                log.warning("DAG sync from s3://%s/%s failed: %s", bucket, prefix, exc)
                return False
            gone = [k for k in self._etags if k not in listing]
            for rel in gone:
                with contextlib.suppress(FileNotFoundError):
                    (self.dags_folder / rel).unlink()
            self._etags, self._synced_at = listing, time.monotonic()
            if not (changed or gone):
                return False
            done = self.cli.run(["dags", "reserialize"])
            log.info("DAG folder synced from s3://%s/%s: %d changed, %d removed%s", bucket,
                     prefix, len(changed), len(gone), "" if done.returncode == 0 else
                     f"; reserialize failed: {done.stderr.strip()[-300:]}")
            for row in self._rows("SELECT filename, stacktrace FROM import_error"):
                log.warning("DAG file %s does not import (Airflow's import error):\n%s",
                            row["filename"], row["stacktrace"].strip())
            return True

    def _s3(self):
        import boto3
        from botocore.config import Config

        from m7etl.storage.aws import client

        session = boto3.session.Session(aws_access_key_id="testing",
                                        aws_secret_access_key="testing", region_name=self.region)
        return client("s3", session, endpoint_url=self.moto_endpoint,
                      config=Config(retries={"max_attempts": 2}, connect_timeout=2))

    # -- the CLI route: the real Airflow CLI, the DAG folder synced first -------------------
    def run_cli(self, text: str) -> tuple[str, str]:
        import shlex

        from m7etl.local.standins.mwaa import CLI_GROUPS

        if self.cli_mode == "fail":
            return super().run_cli(text)
        try:
            args = shlex.split(text)
        except ValueError as exc:
            return "", f"airflow command error: {exc}\n"
        if not args or args[0] not in CLI_GROUPS:
            return "", f"airflow command error: {args[:1]} is not a command MWAA's CLI runs\n"
        if args[0] == "dags":
            self.sync_dags(force=args[1:2] == ["trigger"])
        done = self.cli.run(args)
        return done.stdout, done.stderr

    # -- the scheduler: one queued run at a time -------------------------------------------
    def next_queued(self) -> tuple[str, str] | None:
        """The oldest queued run of a DAG that is not paused (a paused DAG's runs wait, as
        the scheduler leaves them; said once per run in the log)."""
        rows = self._rows("SELECT r.dag_id, r.run_id, d.is_paused FROM dag_run r JOIN dag d ON "
                          "d.dag_id = r.dag_id WHERE r.state = 'queued' ORDER BY r.queued_at, r.id")
        for row in rows:
            if not row["is_paused"]:
                return row["dag_id"], row["run_id"]
            if row["run_id"] not in self._told_paused:
                self._told_paused.add(row["run_id"])
                log.info("run %s of %s waits: the DAG is paused (airflow dags unpause %s)",
                         row["run_id"], row["dag_id"], row["dag_id"])
        return None

    def _schedule(self) -> None:
        while not self._stopped.wait(self.tick):
            try:
                self.sync_dags()
                queued = self.next_queued() if self.environment else None
                if queued:
                    self.execute(*queued)
            except Exception:  # the loop must outlive one bad run; the log says what happened
                log.exception("scheduler loop")

    def execute(self, dag_id: str, run_id: str) -> str:
        """Run one queued run to its end in a subprocess; its final state."""
        self.sync_dags(force=True)
        logs = self.work / "runs" / dag_id
        logs.mkdir(parents=True, exist_ok=True)
        log_file = logs / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', run_id)}.log"
        self.executing = run_id
        started = time.monotonic()
        log.info("run %s of %s: started (log %s)", run_id, dag_id, log_file)
        with open(log_file, "wb") as out:
            self._process = subprocess.Popen(
                [sys.executable, str(RUNNER), dag_id, run_id], stdout=out,
                stderr=subprocess.STDOUT, env=self.cli.environment(), cwd=self.airflow_home,
                start_new_session=True)
            try:
                self._process.wait(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process, self.executing = None, None
        rows = self._rows("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?",
                          dag_id, run_id)
        state = rows[0]["state"] if rows else "missing"
        if state in ("queued", "running"):  # the process died under it: the run fails
            self._execute_sql("UPDATE dag_run SET state = 'failed', end_date = ? WHERE dag_id = "
                              "? AND run_id = ?", datetime.now(UTC).strftime(
                                  "%Y-%m-%d %H:%M:%S.%f"), dag_id, run_id)
            state = "failed"
        log.info("run %s of %s: %s in %.1f s", run_id, dag_id, state, time.monotonic() - started)
        return state


def _fields(body: dict) -> dict:
    """The environment's settings kept as given (GetEnvironment's members of the same name)."""
    return {k: v for k, v in body.items() if k not in ("Name", "Tags")}


SITECUSTOMIZE = '''# Written by m7etl's MWAA stand-in: MWAA has no m7etl installed, the DAG's m7etl
# modules come from the DAG folder (m7etl upload ships them there). Hide any other.
import os, sys
_dags = os.path.realpath(os.environ.get("M7_DAGS_FOLDER", ""))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") == _dags
               or not os.path.isdir(os.path.join(p or ".", "m7etl"))]
'''


class _LocalHandler(_Handler):
    owner: LocalMwaa

    def _signed(self) -> bool:
        if self.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            return True
        self._aws_error(403, "AccessDeniedException", {"Message": "Missing SigV4 signature"})
        return False

    def _environment(self) -> bool:
        """Create / Update / Delete / GetEnvironment; False when the path is not one."""
        match = ENVIRONMENT.fullmatch(self.path.split("?", 1)[0])
        if match is None:
            return False
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self._signed():
            return True
        name, owner = unquote(match.group("name")), self.owner
        if self.command == "GET":
            if owner.environment is None or name != owner.env_name:
                self._aws_error(404, "ResourceNotFoundException",
                                {"message": f"Environment {name} not found"})
            else:
                self._send(200, {"Environment": owner.environment})
            return True
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._aws_error(400, "ValidationException", {"message": "The body is not JSON"})
            return True
        if self.command == "DELETE":
            status, code, answer = owner.unregister(name)
        else:
            status, code, answer = owner.register(name, body, update=self.command == "PATCH")
        if code:
            self._aws_error(status, code, answer)
        else:
            self._send(status, answer)
        return True

    def do_GET(self) -> None:
        if not self._environment():
            super().do_POST()

    def do_PUT(self) -> None:
        if not self._environment():
            self._aws_error(404, "UnknownOperationException", {"message": "Unknown operation"})

    do_PATCH = do_DELETE = do_PUT


# -- python -m m7etl.local.standins.mwaa_runs --------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m7etl.local.standins.mwaa_runs",
                                     description="MWAA for the local stack: environments the "
                                                 "stack creates, DAG runs that really run.")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--airflow-home", required=True, help="the Airflow home (made if new)")
    parser.add_argument("--dags", required=True, help="the DAG folder (synced from S3)")
    parser.add_argument("--moto", required=True, help="the moto server's endpoint")
    parser.add_argument("--work", help="run logs and helper files (default: <home>/standin)")
    parser.add_argument("--region", default="eu-west-1", help="the region of the ARNs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format="%(asctime)s %(levelname)s %(message)s")
    home, dags = Path(args.airflow_home).resolve(), Path(args.dags).resolve()
    dags.mkdir(parents=True, exist_ok=True)
    standin = LocalMwaa(airflow_home=home, dags_folder=dags, moto_endpoint=args.moto,
                        region=args.region, work=Path(args.work) if args.work else None)
    try:
        prepare_airflow_home(home, dags)
        standin.start(args.port)
        standin.ensure_connection()
    except (OSError, RuntimeError) as exc:
        print(f"mwaa stand-in: {exc}", file=sys.stderr)
        standin.stop()
        return 1
    print(f"MWAA stand-in (Airflow {AIRFLOW_VERSION} in {home}) on {standin.endpoint}",
          flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # local-down's "where is it stuck"
    with contextlib.suppress(KeyboardInterrupt):
        # A timeout, not one long wait: the kernel may deliver SIGTERM to another thread, and
        # Python runs its handler only when the main thread wakes up.
        while not stopped.wait(0.5):
            pass
    log.info("stopping")
    standin.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
