"""``make dag-test``: the real DAG, run by ``airflow dags test``, on this machine, with no AWS.

S3, SNS, SQS, STS and Secrets Manager are a moto server; Lambda and Glue are the local
stand-ins (``m7etl.local.standins``) running the built zips (``m7etl package``) and the Glue
script, and Snowflake is fakesnow. The DAG's operators reach them all through the AWS
connection's endpoint settings (``AIRFLOW_CONN_AWS_DEFAULT``), as production reaches AWS.

The demo files (``m7etl sample --demo``) land in ``landing/`` and are filed into ``raw/`` as
the S3-event function files them, then the DAG runs with that function's conf. The demo set
holds files built to fail (one over the error threshold, one unreadable): the run must end
failed because of them and nothing else, so this script exits 0 when every task but
``finish`` succeeded, ``finish`` failed only for the gate, the execution log conserves
rows and the warehouse holds the loaded days. It prints the log's totals and the warehouse
counts.

    python scripts/dag_test.py [--day 20250501] [--work .work/dag-test]

Used by ``make dag-test`` and by ``tests/dags/test_dag.py`` (its building blocks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".work" / "dag-test"
WHEELS = ROOT / ".work" / "wheels"
DAG_ID = "m7_etl_pipeline"
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's
DAY = "20250501"
AIRFLOW = Path(sys.executable).with_name("airflow")
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}
# The template's function settings (RawToSilverFunction, SilverToGoldFunction).
FUNCTION_TIMEOUT = 900
POWERTOOLS = {"POWERTOOLS_METRICS_NAMESPACE": "M7Etl", "POWERTOOLS_LOG_LEVEL": "WARNING"}


# -- building blocks (the e2e tests use them too) ---------------------------------------
def build(out: Path) -> Path:
    """The Lambda zips, the layer and the Glue files, as ``m7etl package`` builds them
    (unchanged zips are not rewritten; the layer's wheels come from ``.work/wheels``)."""
    from m7etl.deploy.artefacts import build_all

    out.mkdir(parents=True, exist_ok=True)
    build_all(out, wheel_cache=WHEELS)
    return out


def airflow_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the ``airflow`` commands: their own home, this repo's dags/."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update(FAKE_CREDENTIALS)
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
                "AIRFLOW__M7ETL__GLUE_POLL_SECONDS": "2",
                # AWS config files of this machine never leak in.
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    env.update(extra or {})
    return env


def airflow_db(home: Path) -> float:
    """``airflow db migrate`` in ``home`` once; the seconds it took (0 when already done)."""
    if (home / "airflow.db").is_file():
        return 0.0
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    proc = subprocess.run([str(AIRFLOW), "db", "migrate"], env=airflow_env(home),
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"airflow db migrate failed in {home}:\n{proc.stdout[-3000:]}"
                           f"{proc.stderr[-3000:]}")
    return time.monotonic() - started


@dataclass
class Environment:
    """One pipeline environment in the sandbox: its names as the template gives them."""

    name: str
    moto: str
    lambda_endpoint: str
    glue_endpoint: str
    warehouse_dir: Path
    queue_url: str = ""

    @property
    def bucket(self) -> str:
        return f"m7-etl-data-solocco-{self.name}"

    @property
    def topic_arn(self) -> str:
        return f"arn:aws:sns:{REGION}:{ACCOUNT}:m7-etl-alerts-{self.name}"

    def connection(self) -> str:
        """``AIRFLOW_CONN_AWS_DEFAULT``: moto for everything, the stand-ins for Lambda and Glue."""
        return json.dumps({"conn_type": "aws", "extra": {
            "region_name": REGION, "endpoint_url": self.moto,
            "service_config": {"lambda": {"endpoint_url": self.lambda_endpoint},
                               "glue": {"endpoint_url": self.glue_endpoint}}}})

    def airflow_vars(self, variables: Mapping[str, str] | None = None) -> dict[str, str]:
        values = {"environment": self.name, **(variables or {})}
        env = {f"AIRFLOW_VAR_{k.upper()}": str(v) for k, v in values.items()}
        env["AIRFLOW_CONN_AWS_DEFAULT"] = self.connection()
        return env


class Sandbox:
    """moto, the Lambda and Glue stand-ins, and the built artefacts, for one or more
    environments (each with its own bucket, functions, job, topic and warehouse)."""

    def __init__(self, work: Path, build_dir: Path, moto_endpoint: str | None = None):
        self.work, self.build_dir = work, build_dir
        self._moto_endpoint = moto_endpoint
        self._stack = contextlib.ExitStack()
        self.moto = self.lambdas = self.glue = None

    def __enter__(self) -> Sandbox:
        from m7etl.local.standins.glue_jobs import GlueStandin
        from m7etl.local.standins.lambda_invoke import LambdaStandin

        os.environ.update({k: v for k, v in FAKE_CREDENTIALS.items() if k not in os.environ})
        if self._moto_endpoint is None:
            from moto.server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            self._stack.callback(server.stop)
            host, port = server.get_host_and_port()
            self._moto_endpoint = f"http://{host}:{port}"
        self.moto = self._moto_endpoint
        reach_moto = {"AWS_ENDPOINT_URL": self.moto, **FAKE_CREDENTIALS}
        self.lambdas = self._stack.enter_context(LambdaStandin(
            self.work / "lambda", region=REGION, env=reach_moto, log_dir=self.work / "lambda-logs"))
        # The job reads its contracts from m7etl_glue.zip itself (package resources), as on Glue.
        self.glue = GlueStandin(self.work / "glue", warehouse_dir=None, env=reach_moto)
        self._stack.enter_context(self.glue)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.moto, region_name=REGION)

    def environment(self, name: str | None = None, *, functions: Mapping[str, str] | None = None,
                    glue_script: Path | None = None) -> Environment:
        """Create an environment's resources: bucket, topic (with a queue to read alerts),
        the Snowflake secret, both functions and the Glue job. ``functions`` may replace a
        function's zip (``{"silver_to_gold": path}``), ``glue_script`` the job's script."""
        from m7etl.local.standins.glue_jobs import JobSpec
        from m7etl.local.standins.lambda_invoke import FunctionSpec

        name = name or "t" + uuid.uuid4().hex[:8]
        warehouse = self.work / "warehouse" / name
        env = Environment(name, self.moto, self.lambdas.endpoint, self.glue.endpoint, warehouse)
        self.client("s3").create_bucket(Bucket=env.bucket,
                                        CreateBucketConfiguration={"LocationConstraint": REGION})
        sns, sqs = self.client("sns"), self.client("sqs")
        topic = sns.create_topic(Name=f"m7-etl-alerts-{name}")["TopicArn"]
        env.queue_url = sqs.create_queue(QueueName=f"m7-etl-alerts-{name}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=env.queue_url, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs",
                      Endpoint=queue_arn["Attributes"]["QueueArn"])
        secret = f"m7-etl/snowflake-{name}"
        self.client("secretsmanager").create_secret(Name=secret,
                                                    SecretString='{"password": "local"}')
        layer = str(self.build_dir / "etl-dependencies.zip")
        zips = {"raw_to_silver": str(self.build_dir / "raw_to_silver.zip"),
                "silver_to_gold": str(self.build_dir / "silver_to_gold.zip"), **(functions or {})}
        for handler, extra in (("raw_to_silver", {"M7_ERROR_THRESHOLD": "5.0",
                                                  "M7_WARNING_THRESHOLD": "10.0"}),
                               ("silver_to_gold", {})):
            self.lambdas.register(FunctionSpec(
                name=f"m7-etl-{handler.replace('_', '-')}-{name}", code=str(zips[handler]),
                handler=f"{handler}.handler", layers=(layer,), timeout=FUNCTION_TIMEOUT,
                memory=2048, environment={"M7_ENVIRONMENT": name, "M7_DATA_BUCKET": env.bucket,
                                          "POWERTOOLS_SERVICE_NAME": handler, **POWERTOOLS,
                                          **extra}))
        self.glue.warehouse_dir = warehouse.resolve()
        self.glue.register(JobSpec(
            name=f"m7-etl-gold-to-snowflake-{name}",
            script=str(glue_script or self.build_dir / "glue" / "gold_to_snowflake.py"),
            default_arguments={
                "--environment": name, "--data_bucket": env.bucket,
                "--snowflake_account": "local", "--snowflake_user": "M7_ETL_LOADER",
                "--snowflake_role": "M7_ETL_LOADER", "--snowflake_warehouse": "M7_ETL_WH",
                "--snowflake_database": "M7_ETL", "--snowflake_schema": "GOLD",
                "--snowflake_secret_id": secret,
                "--extra-py-files": str(self.build_dir / "glue" / "m7etl_glue.zip")},
            max_concurrent_runs=4, timeout=60))
        return env


def seed_demo(sandbox: Sandbox, env: Environment, day: str, folder: Path,
              only: tuple[str, ...] = ()) -> list[str]:
    """The demo files uploaded to ``landing/`` and filed into ``raw/`` as the S3-event
    function files them; ``only``: keep these file names. The raw keys filed."""
    from m7etl.core.contracts import load_registry
    from m7etl.core.ingest import INGESTED, ingest
    from m7etl.devtools.sample.demo import write_demo_set
    from m7etl.storage import S3Storage

    registry = load_registry()
    folder.mkdir(parents=True, exist_ok=True)
    storage = S3Storage(env.bucket, client=sandbox.client("s3"))
    landing = []
    for manifest in write_demo_set(folder, day, registry=registry):
        name = Path(manifest.path).name
        if only and name not in only:
            continue
        storage.write_bytes(f"landing/{name}", Path(manifest.path).read_bytes())
        landing.append(f"landing/{name}")
    results = [ingest(storage, key, registry, day) for key in sorted(landing)]
    return sorted(r.target_key for r in results if r.status == INGESTED)


@dataclass
class DagRunResult:
    returncode: int
    output: str
    run_id: str | None
    states: dict[str, str] = field(default_factory=dict)  # task_id[map_index] -> state
    seconds: float = 0.0

    def failed(self) -> list[str]:
        return sorted(t for t, s in self.states.items() if s == "failed")


def task_states(home: Path, run_id: str) -> dict[str, str]:
    """The run's task states from the sandbox's own metadata database (``task[i]`` for
    mapped instances); read directly: one query instead of an ``airflow`` process."""
    with contextlib.closing(sqlite3.connect(home / "airflow.db")) as db:
        rows = db.execute("SELECT task_id, map_index, state FROM task_instance "
                          "WHERE dag_id = ? AND run_id = ?", (DAG_ID, run_id)).fetchall()
    return {(t if i < 0 else f"{t}[{i}]"): s for t, i, s in rows}


def xcom(home: Path, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1):
    """One XCom of a run, from the sandbox's metadata database (None when absent)."""
    with contextlib.closing(sqlite3.connect(home / "airflow.db")) as db:
        row = db.execute("SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? "
                         "AND key = ? AND map_index = ?",
                         (DAG_ID, run_id, task_id, key, map_index)).fetchone()
    if row is None or row[0] is None:
        return None
    value = row[0].decode() if isinstance(row[0], bytes) else row[0]
    return json.loads(value)


def run_dag(home: Path, env: Environment, conf: Mapping | None = None, *,
            variables: Mapping[str, str] | None = None, log_file: Path | None = None,
            logical_date: str | None = None) -> DagRunResult:
    """``airflow dags test m7_etl_pipeline`` for ``env`` (its variables and connection)."""
    command = [str(AIRFLOW), "dags", "test", DAG_ID]
    if logical_date:
        command.append(logical_date)
    if conf is not None:
        command += ["--conf", json.dumps(conf)]
    started = time.monotonic()
    proc = subprocess.run(command, env=airflow_env(home, env.airflow_vars(variables)),
                          capture_output=True, text=True, check=False, cwd=ROOT)
    output = proc.stdout + proc.stderr
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(output)
    found = re.search(rf"DagRun Finished: dag_id={DAG_ID}, .*?run_id=([^,\s]+)", output)
    run_id = found.group(1) if found else None
    states = task_states(home, run_id) if run_id else {}
    return DagRunResult(proc.returncode, output, run_id, states, time.monotonic() - started)


def alerts(sandbox: Sandbox, env: Environment) -> list[dict]:
    """The SNS messages published to the environment's topic ({"Subject", "Message"})."""
    sqs = sandbox.client("sqs")
    found = []
    while True:
        got = sqs.receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not got.get("Messages"):
            return found
        for m in got["Messages"]:
            body = json.loads(m["Body"])
            found.append({"Subject": body.get("Subject"), "Message": body.get("Message")})
            sqs.delete_message(QueueUrl=env.queue_url, ReceiptHandle=m["ReceiptHandle"])


def execution_log(sandbox: Sandbox, env: Environment, day: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        body = sandbox.client("s3").get_object(Bucket=env.bucket,
                                               Key=f"logs/pipeline_execution_{day}.json")["Body"]
    except ClientError:
        return None
    return json.loads(body.read())


def warehouse_counts(env: Environment) -> dict[str, int]:
    from m7etl.core.contracts import load_registry
    from m7etl.local.warehouse import local_connection
    from m7etl.warehouse.loader import table_counts

    if not env.warehouse_dir.is_dir():
        return {}
    counts = {}
    with local_connection(env.warehouse_dir) as conn:
        for contract in load_registry():
            with contextlib.suppress(Exception):  # a table never loaded does not exist
                counts.update(table_counts(conn, [contract]))
    return counts


def conservation_errors(log: Mapping) -> list[str]:
    """Rows lost or invented in the log: per file and in the totals."""
    errors = [f"{f['source_key']}: rows_read {f['rows_read']} != valid {f['rows_valid']} + "
              f"rejected {f['rows_rejected']}" for f in log.get("files", [])
              if f["rows_read"] != f["rows_valid"] + f["rows_rejected"]]
    t = log.get("totals", {})
    for name in ("rows_read", "rows_valid", "rows_rejected"):
        if t.get(name) != sum(f[name] for f in log.get("files", [])):
            errors.append(f"totals.{name} {t.get(name)} is not the sum over files")
    return errors


# -- make dag-test ----------------------------------------------------------------------
def judge(result: DagRunResult, log: dict | None, counts: Mapping[str, int]) -> list[str]:
    """What is wrong with a demo run; [] when it ended as the demo set means it to."""
    problems = []
    unexpected = [t for t in result.failed() if t != "finish"]
    if unexpected:
        problems.append(f"task(s) failed: {', '.join(unexpected)}")
    if log is None:
        problems.append("no execution log was written")
        return problems
    problems += conservation_errors(log)
    gate_failed = [f for f in log["files"] if f["status"] != "ok"]
    if gate_failed and result.states.get("finish") != "failed":
        problems.append("files failed the gate but the run did not end failed")
    loaded = {g["dataset"].upper() for g in log["gold"] if g["status"] == "ok"}
    empty = sorted(t for t in loaded if not counts.get(t))
    if empty:
        problems.append(f"warehouse table(s) empty after the load: {', '.join(empty)}")
    return problems


def print_report(result: DagRunResult, log: dict | None, counts: Mapping[str, int],
                 sent: list[dict], log_file: Path) -> None:
    print(f"airflow dags test {DAG_ID}: exit {result.returncode} in {result.seconds:.0f} s "
          f"(run {result.run_id}; full output in {log_file})")
    for task, state in sorted(result.states.items()):
        print(f"  {task:<28} {state}")
    if log:
        t = log["totals"]
        print(f"Execution log {log['day']} ({len(log.get('runs', []))} run(s)): {t['files']} files, "
              f"{t['rows_read']} rows read = {t['rows_valid']} valid + {t['rows_rejected']} "
              f"rejected ({t['rows_warned']} warned); {t['files_ok']} ok, "
              f"{t['files_failed_threshold']} over the error threshold, "
              f"{t['files_quarantined']} quarantined")
        for f in log["files"]:
            print(f"  {f['source_key']:<44} {f['status']:<17} {f['rows_read']:>6} read "
                  f"{f['rows_rejected']:>5} rejected")
    print("Warehouse: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty"))
    for alert in sent:
        print(f"Alert: {alert['Subject']}\n  " + alert["Message"].replace("\n", "\n  "))


def quiet() -> None:
    """moto's server logs every request; the report is what matters here."""
    import logging

    for name in ("werkzeug", "m7etl.local.standins.lambda", "m7etl.local.standins.glue"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--day", default=DAY, help="the demo files' day (YYYYMMDD)")
    parser.add_argument("--work", type=Path, default=WORK, help="the sandbox's folder")
    args = parser.parse_args(argv)
    import shutil

    from m7etl.orchestration.runs import run_conf

    quiet()
    work = args.work.resolve()
    home = work / "airflow"  # kept between runs: its database is migrated once
    shutil.rmtree(work / "warehouse", ignore_errors=True)  # moto's S3 starts empty too
    print(f"Building the artefacts into {work / 'build'} ...", flush=True)
    build_dir = build(work / "build")
    seconds = airflow_db(home)
    if seconds:
        print(f"airflow db migrate: {seconds:.1f} s")
    with Sandbox(work, build_dir) as sandbox:
        env = sandbox.environment("local")
        raw_keys = seed_demo(sandbox, env, args.day, work / "landing")
        print(f"{len(raw_keys)} demo file(s) filed into s3://{env.bucket}/raw/{args.day}/; "
              f"running the DAG ...", flush=True)
        log_file = work / "dags-test.log"
        result = run_dag(home, env, run_conf(args.day, raw_keys), log_file=log_file)
        log = execution_log(sandbox, env, args.day)
        counts = warehouse_counts(env)
        print_report(result, log, counts, alerts(sandbox, env), log_file)
    problems = judge(result, log, counts)
    if problems:
        print("NOT AS EXPECTED: " + "; ".join(problems))
        return 1
    print("As expected: every task ran; the run ended failed only because the demo's bad "
          "files failed the quality gate." if result.states.get("finish") == "failed"
          else "As expected: the run succeeded.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
