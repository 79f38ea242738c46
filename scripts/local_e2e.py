"""``make local-e2e``: the deployment guide's steps 1 to 6 on this machine, with no AWS account.

Starts the local stack (``m7etl.local.stack``: moto and the MWAA stand-in), then, with the
same commands a data engineer types against AWS (``--env local``):

1. the prerequisites: the VPC exports (a small "network" stack exporting ``VPC``,
   ``PrivateSubnet1``, ``PrivateSubnet2``, as an existing stack would) and both buckets
   (the code bucket versioned, public access blocked);
2. ``m7etl deploy --env local --yes``: build, upload, the real template through a change
   set, the Airflow variables and the S3 notifications; then again, which must report no
   changes and upload nothing;
3. the demo's good files put into ``landing/`` through the S3 API: the S3-event function
   files them and triggers the DAG, ``m7etl trigger --follow`` follows the first run to
   its end, every triggered run must succeed, then ``m7etl status --env local``;
4. the execution log's totals and the warehouse counts printed, the data bucket copied to
   ``.work/local/bucket/`` for inspection.

``--failure-path`` adds the guide's troubleshooting case: a file over the error threshold
makes the run fail and the stack's AlertTopic receive the message (read through an SQS
queue subscribed to it). Every step prints what it does and how long it took; any failure
exits 1, and the stack is always stopped (``--keep`` leaves it running for a look).

    python scripts/local_e2e.py [--config m7etl.toml] [--env local] [--day 20250501]
                                [--root .work/local] [--failure-path] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY = "20250501"
PASSWORD = "local-e2e-not-a-secret"  # fakesnow takes any; $M7_SNOWFLAKE_PASSWORD, never a flag
GOOD = ("Device_{day}.csv", "EPG_{day}.csv", "Viewing_{day}.csv.gz")  # pass the quality gate
OVER_THRESHOLD = "Channel_{day}.csv"  # the demo's file with 20% faults: above 5%
RUN_TIMEOUT_S = 300.0
TERMINAL = ("success", "failed")


class E2EFailure(Exception):
    """A step did not end as the guide says it should."""


@dataclass
class Result:
    """What the run found, for the report and the tests."""

    seconds: dict[str, float] = field(default_factory=dict)
    deploys: list[dict] = field(default_factory=list)  # the two deploys' JSON documents
    runs: list[dict] = field(default_factory=list)  # the triggered runs at the end
    followed: int | None = None  # m7etl trigger --follow's exit code
    log: dict | None = None  # logs/pipeline_execution_<day>.json
    counts: dict[str, int] = field(default_factory=dict)  # warehouse table -> rows
    outputs: dict[str, str] = field(default_factory=dict)  # the stack's outputs
    alerts: list[dict] = field(default_factory=list)
    failed_run: dict | None = None
    manifests: dict = field(default_factory=dict)  # demo file name -> its SampleManifest
    problems: list[str] = field(default_factory=list)  # expectations not met, not fatal


class LocalE2E:
    """The local stack up for the duration of a ``with``, and the guide's steps on it."""

    def __init__(self, config_path: Path, env: str = "local", day: str = DAY,
                 root: Path | None = None, say: Callable[[str], None] = print, keep: bool = False):
        from m7etl.deploy.config import load_env
        from m7etl.local.stack import layout_for

        self.config_path = config_path.resolve()
        self.config = load_env(env, self.config_path)
        self.layout = layout_for(self.config, root.resolve() if root else None)
        self.day, self.say, self.keep = day, say, keep
        self.result = Result()
        self.queue_url: str | None = None

    # -- the stack around it -------------------------------------------------------------
    def __enter__(self) -> LocalE2E:
        from m7etl.local.stack import up

        with self.step("local-up: moto and the MWAA stand-in"):
            report = up(self.layout)
            for s in report.services:
                self.say(f"    {s.name:<5} pid {s.pid:<7} {s.endpoint}  log {s.log}")
        return self

    def __exit__(self, *exc) -> None:
        from m7etl.local.stack import down

        if self.keep:
            self.say(f"--keep: the local stack stays up (make local-down stops it); its files "
                     f"are in {self.layout.root}")
            return
        with self.step("local-down"):
            for s in down(self.layout).services:
                self.say(f"    {s.name:<5} {s.detail or s.state}")

    def problem(self, text: str) -> None:
        """An expectation not met that does not stop the next steps (reported at the end)."""
        self.result.problems.append(text)
        self.say(f"    NOT AS EXPECTED: {text}")

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.say(f"==> {title}")
        started = time.monotonic()
        try:
            yield
        finally:
            seconds = time.monotonic() - started
            self.result.seconds[title] = round(seconds, 1)
            self.say(f"    ({seconds:.1f} s)")

    # -- clients and commands ------------------------------------------------------------
    def environ(self, password: bool = False) -> dict[str, str]:
        """The CLI's environment: this file's config, fake keys; the password variable only
        for the first deploy (set later, it would be sent again: a rotation)."""
        from m7etl.local.stack import environment

        env = {**environment(), "M7ETL_CONFIG": str(self.config_path), "COLUMNS": "120"}
        return {**env, "M7_SNOWFLAKE_PASSWORD": PASSWORD} if password else env

    def client(self, service: str):
        import boto3

        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing",
            region_name=self.config.region).client(service, endpoint_url=self.config.endpoint_url)

    def m7etl(self, *args: str, check: bool = True, show: bool = True,
              timeout: float = 900) -> subprocess.CompletedProcess:
        """``m7etl <args> --env <env>`` as a user runs it; its output shown as it goes."""
        command = [str(Path(sys.executable).with_name("m7etl")), *args, "--env", self.config.name]
        self.say("    $ m7etl " + " ".join([*args, "--env", self.config.name]))
        proc = subprocess.Popen(command, env=self.environ(), cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if show:
                self.say("      " + line.rstrip("\n"))
        proc.wait(timeout=timeout)
        done = subprocess.CompletedProcess(command, proc.returncode, "".join(lines), "")
        if check and proc.returncode != 0:
            raise E2EFailure(f"m7etl {' '.join(args)} exited {proc.returncode}")
        return done

    def m7etl_json(self, *args: str, password: bool = False) -> tuple[int, dict]:
        """The same with ``--output json``: the exit code and the document (stdout)."""
        command = [str(Path(sys.executable).with_name("m7etl")), *args, "--env",
                   self.config.name, "--output", "json"]
        self.say("    $ m7etl " + " ".join(command[1:]))
        proc = subprocess.run(command, env=self.environ(password), cwd=ROOT, text=True,
                              capture_output=True, check=False, timeout=900)
        for line in proc.stderr.splitlines():
            self.say("      " + line)
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            raise E2EFailure(f"m7etl {' '.join(args)} exited {proc.returncode} with no JSON "
                             f"document: {proc.stdout[-500:]}") from None

    # -- 1. the prerequisites --------------------------------------------------------------
    def prerequisites(self) -> None:
        from m7etl.local.prerequisites import NETWORK_STACK, create_prerequisites, local_clients

        with self.step(f"prerequisites: the VPC exports (stack {NETWORK_STACK}) and both buckets"):
            for line in create_prerequisites(self.config, local_clients(self.config)):
                self.say(f"    {line}")

    # -- 2. deploy, twice ------------------------------------------------------------------
    def deploy(self) -> None:
        with self.step("m7etl deploy --env local --yes (upload, stack, variables, notifications)"):
            code, doc = self.m7etl_json("deploy", "--yes", password=True)
            self.result.deploys.append(doc)
            if code != 0:
                raise E2EFailure(f"the first deploy exited {code} ({doc.get('outcome')})")
            self.result.outputs = doc.get("outputs") or {}
            for key in sorted(self.result.outputs):
                self.say(f"    output {key} = {self.result.outputs[key]}")
        with self.step("m7etl deploy --env local --yes, again: no changes, nothing uploaded"):
            code, doc = self.m7etl_json("deploy", "--yes")
            self.result.deploys.append(doc)
            upload = doc.get("upload") or {}
            uploaded = upload.get("uploaded")  # a count
            if code != 0 or doc.get("outcome") != "no changes" or uploaded != 0:
                # Not fatal: the stack is still the first deploy's, the pipeline can run on it.
                self.problem(f"the second deploy exited {code}, outcome {doc.get('outcome')!r}, "
                             f"uploaded {uploaded} file(s); expected 0, 'no changes', 0")
            self.say(f"    {uploaded} uploaded, {upload.get('skipped')} unchanged; "
                     f"outcome {doc.get('outcome')!r}")

    # -- 3. files land, the DAG runs -------------------------------------------------------
    def demo_files(self) -> dict:
        """``m7etl sample --demo``'s files of the day: name -> manifest (rows, faults...)."""
        from m7etl.devtools.sample.demo import write_demo_set

        if not self.result.manifests:
            folder = self.layout.root / "demo" / self.day
            shutil.rmtree(folder, ignore_errors=True)
            self.result.manifests = {Path(m.path).name: m
                                     for m in write_demo_set(folder, self.day)}
        return self.result.manifests

    def land(self, names: list[str]) -> list[str]:
        """PUT the demo files of these names into landing/ (the S3 API, like a producer)."""
        files = {name: Path(m.path) for name, m in self.demo_files().items()}
        s3, keys = self.client("s3"), []
        for name in names:
            key = f"landing/{name}"
            s3.put_object(Bucket=self.config.data_bucket, Key=key, Body=files[name].read_bytes())
            keys.append(key)
            self.say(f"    PUT s3://{self.config.data_bucket}/{key} ({files[name].stat().st_size} "
                     "bytes)")
        return keys

    def routes(self):
        from m7etl.orchestration.airflow_api import connect
        from m7etl.storage.aws import Clients

        clients = Clients(region=self.config.region, endpoint_url=self.config.endpoint_url,
                          endpoints=self.config.endpoints)
        with _fake_keys():
            return connect(clients, self.config.mwaa_environment, "rest-api")

    def runs(self) -> list[dict]:
        with _fake_keys():
            return self.routes().call("recent_runs", self.config.dag_id, 100)

    def wait_runs(self, count: int, timeout: float = RUN_TIMEOUT_S) -> list[dict]:
        """Until ``count`` runs exist and none is queued or running; the runs."""
        deadline, runs = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            runs = self.runs()
            if len(runs) >= count and all(r["state"] in TERMINAL for r in runs):
                return runs
            time.sleep(1.0)
        raise E2EFailure(f"{count} run(s) expected to end within {timeout:.0f} s; found "
                         + (", ".join(f"{r['run_id']} {r['state']}" for r in runs) or "none")
                         + f" (the stand-in's log: {self.layout.log_file('mwaa')})")

    def first_new_run(self, known: set[str], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = [r for r in self.runs() if r["run_id"] not in known]
            if new:
                return sorted(new, key=lambda r: str(r.get("run_after")))[0]["run_id"]
            time.sleep(0.5)
        raise E2EFailure(f"no DAG run was triggered within {timeout:.0f} s of the upload (the "
                         f"S3-event function's log is under {self.layout.moto_work}; moto's "
                         f"log: {self.layout.log_file('moto')})")

    def pipeline(self) -> None:
        names = [n.format(day=self.day) for n in GOOD]
        with self.step(f"the demo's good files into landing/: {', '.join(names)}"):
            self.land(names)
        with self.step("the S3-event function triggers the DAG; m7etl trigger --follow"):
            run_id = self.first_new_run(set())
            self.say(f"    first run: {run_id}")
            self.result.followed = self.m7etl("trigger", "--follow", run_id, "--poll-interval",
                                              "2", check=False).returncode
        with self.step(f"every triggered run ends ({len(names)} files, one run each)"):
            self.result.runs = self.wait_runs(len(names))
            for run in self.result.runs:
                self.say(f"    {run['run_id']:<48} {run['state']}")
            bad = [r["run_id"] for r in self.result.runs if r["state"] != "success"]
            if self.result.followed != 0 or bad:
                raise E2EFailure(f"run(s) failed: {', '.join(bad) or 'the followed one'} (their "
                                 f"logs: {self.layout.mwaa_work / 'runs'})")
        with self.step("m7etl status --env local"):
            code = self.m7etl("status", check=False).returncode
            if code != 0:  # the stack's state (exit 2: failed or rolled back): not fatal
                self.problem(f"m7etl status exited {code}")

    # -- 4. what the pipeline produced -----------------------------------------------------
    def report(self) -> None:
        with self.step(f"the execution log of {self.day} and the warehouse"):
            self.result.log = self.execution_log()
            if self.result.log is None:
                raise E2EFailure(f"no logs/pipeline_execution_{self.day}.json in "
                                 f"{self.config.data_bucket}")
            t = self.result.log["totals"]
            self.say(f"    {t['files']} files, {t['rows_read']} rows read = {t['rows_valid']} "
                     f"valid + {t['rows_rejected']} rejected ({t['rows_warned']} warned); "
                     f"{t['files_ok']} ok, {t['files_failed_threshold']} over the error "
                     f"threshold, {t['files_quarantined']} quarantined")
            self.result.counts = self.warehouse_counts()
            self.say("    warehouse " + (", ".join(f"{k} {v}" for k, v in
                                                   sorted(self.result.counts.items())) or "empty"))
            problems = self.problems()
            if problems:
                raise E2EFailure("; ".join(problems))
        with self.step(f"the data bucket copied to {self.layout.bucket_copy}"):
            self.say(f"    {self.copy_bucket()} objects")

    def execution_log(self) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client("s3").get_object(
                Bucket=self.config.data_bucket, Key=f"logs/pipeline_execution_{self.day}.json")
        except ClientError:
            return None
        return json.loads(body["Body"].read())

    def warehouse_counts(self) -> dict[str, int]:
        from m7etl.core.contracts import load_registry
        from m7etl.local.warehouse import local_connection
        from m7etl.warehouse.loader import table_counts

        counts: dict[str, int] = {}
        if not self.layout.warehouse.is_dir():
            return counts
        with local_connection(self.layout.warehouse) as conn:
            for contract in load_registry():
                with contextlib.suppress(Exception):  # a table never loaded does not exist
                    counts.update(table_counts(conn, [contract]))
        return counts

    def problems(self) -> list[str]:
        """What is wrong with the successful path's outcome ([] when all is well)."""
        log, found = self.result.log or {}, []
        files = log.get("files", [])
        if len(files) != len(GOOD):
            found.append(f"the log has {len(files)} file(s), {len(GOOD)} landed")
        found += [f"{f['source_key']}: status {f['status']}" for f in files if f["status"] != "ok"]
        found += [f"{f['source_key']}: rows_read {f['rows_read']} != {f['rows_valid']} valid + "
                  f"{f['rows_rejected']} rejected" for f in files
                  if f["rows_read"] != f["rows_valid"] + f["rows_rejected"]]
        loaded = {g["dataset"].upper() for g in log.get("gold", []) if g["status"] == "ok"}
        if not loaded:
            found.append("no gold dataset was built")
        found += [f"warehouse table {t} is empty" for t in sorted(loaded)
                  if not self.result.counts.get(t)]
        return found

    def copy_bucket(self) -> int:
        target = self.layout.bucket_copy
        shutil.rmtree(target, ignore_errors=True)
        s3, count = self.client("s3"), 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.config.data_bucket):
            for obj in page.get("Contents", []):
                path = target / obj["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(self.config.data_bucket, obj["Key"], str(path))
                count += 1
        return count

    # -- the failure path ------------------------------------------------------------------
    def subscribe_alerts(self) -> str:
        """An SQS queue subscribed to the stack's AlertTopic (how the test reads alerts)."""
        sqs, sns = self.client("sqs"), self.client("sns")
        self.queue_url = sqs.create_queue(QueueName=f"m7-e2e-alerts-{self.config.name}")[
            "QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=self.result.outputs["AlertTopicArn"], Protocol="sqs",
                      Endpoint=arn["Attributes"]["QueueArn"])
        return self.queue_url

    def read_alerts(self, wait: float = 10.0) -> list[dict]:
        sqs, found = self.client("sqs"), []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not found:
            got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                      WaitTimeSeconds=1)
            for m in got.get("Messages", []):
                body = json.loads(m["Body"])
                found.append({"Subject": body.get("Subject"), "Message": body.get("Message")})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return found

    def failure_path(self) -> None:
        name = OVER_THRESHOLD.format(day=self.day)
        with self.step(f"failure path: {name} (20% bad rows, error threshold 5%) into landing/"):
            self.subscribe_alerts()
            known = {r["run_id"] for r in self.runs()}
            self.land([name])
            run_id = self.first_new_run(known)
            runs = [r for r in self.wait_runs(len(known) + 1) if r["run_id"] == run_id]
            self.result.failed_run = runs[0] if runs else None
            self.say(f"    run {run_id}: {runs[0]['state'] if runs else '?'}")
            self.result.alerts = self.read_alerts()
            for alert in self.result.alerts:
                self.say(f"    alert: {alert['Subject']}\n      " +
                         alert["Message"].replace("\n", "\n      "))
            if not runs or runs[0]["state"] != "failed":
                raise E2EFailure(f"the run of {name} did not fail")
            if not any(name in (a["Message"] or "") for a in self.result.alerts):
                raise E2EFailure(f"AlertTopic received no message naming {name}")


@contextlib.contextmanager
def _fake_keys() -> Iterator[None]:
    """moto's keys for this process's own clients, whatever the machine has configured."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_SESSION_TOKEN="testing")
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(e2e: LocalE2E, *, failure_path: bool = False) -> None:
    """Every step in the guide's order, on a stack that is up."""
    e2e.prerequisites()
    e2e.deploy()
    e2e.pipeline()
    e2e.report()
    if failure_path:
        e2e.failure_path()
    if e2e.result.problems:
        raise E2EFailure("; ".join(e2e.result.problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "m7etl.toml",
                        help="the m7etl.toml with the environment's local endpoints")
    parser.add_argument("--env", default="local", help="the environment (default local)")
    parser.add_argument("--day", default=DAY, help="the demo files' day (YYYYMMDD)")
    parser.add_argument("--root", type=Path, help="the stack's folder (default .work/local)")
    parser.add_argument("--failure-path", action="store_true",
                        help="then a file over the error threshold: the run fails, the alert")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args(argv)
    from m7etl.exceptions import M7Error

    started = time.monotonic()
    try:
        with LocalE2E(args.config, args.env, args.day, args.root, keep=args.keep) as e2e:
            run(e2e, failure_path=args.failure_path)
    except (E2EFailure, M7Error) as exc:
        print(f"LOCAL E2E FAILED after {time.monotonic() - started:.0f} s: {exc}", flush=True)
        return 1
    print(f"Local e2e passed in {time.monotonic() - started:.0f} s: the guide's steps 1 to 6 on "
          f"the local stack.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
