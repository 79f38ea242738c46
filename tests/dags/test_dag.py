"""The m7_etl_pipeline DAG: its shape as Airflow parses it, its operators' failure rules, and
whole runs of ``airflow dags test`` against moto and the Lambda/Glue stand-ins.

Airflow runs in subprocesses with their own ``AIRFLOW_HOME`` (a session's temporary folder,
``airflow db migrate`` once), so this process never imports Airflow or writes ~/airflow.
The runs use ``scripts/dag_test.py``'s building blocks, as ``make dag-test`` does; each test
has its own environment name, hence its own bucket, functions, job, topic and warehouse.
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "m7_etl_pipeline.py"
DAY = "20250501"
SET_HINT = "Set it in Admin > Variables or with `m7etl set-variables`."


def _load_harness():
    spec = importlib.util.spec_from_file_location("m7_dag_test", ROOT / "scripts" / "dag_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


harness = _load_harness()

pytestmark = pytest.mark.skipif(not harness.AIRFLOW.is_file(),
                                reason=f"no airflow command at {harness.AIRFLOW} (make install)")


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    seconds = harness.airflow_db(home)
    print(f"\nairflow db migrate: {seconds:.1f} s")
    return home


def run_python(home: Path, code: str, *args: str) -> dict:
    """``code`` in a fresh interpreter with Airflow configured for ``home``; its last stdout
    line, a JSON document."""
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=harness.airflow_env(home), cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the DAG as Airflow parses it --------------------------------------------------------
FACTS = r"""
import json, sys
from airflow.models.dagbag import DagBag

bag = DagBag(sys.argv[1], include_examples=False)
dag = bag.get_dag("m7_etl_pipeline")
tasks = {}
for t in (dag.tasks if dag else []):
    cls = getattr(t, "operator_class", type(t))
    kw = dict(getattr(t, "partial_kwargs", {}) or {})
    def get(name):
        return kw[name] if name in kw else getattr(t, name, None)
    timeout = get("execution_timeout")
    tasks[t.task_id] = {
        "class": cls.__name__, "bases": [c.__name__ for c in cls.__mro__],
        "mapped": type(t).__name__ == "MappedOperator", "upstream": sorted(t.upstream_task_ids),
        "trigger_rule": str(get("trigger_rule")), "retries": get("retries"),
        "backoff": bool(get("retry_exponential_backoff")),
        "timeout_s": timeout.total_seconds() if timeout else None,
        "botocore_config": kw.get("botocore_config"), "aws_conn_id": get("aws_conn_id"),
        "invocation_type": kw.get("invocation_type"),
        "deferrable": getattr(t, "deferrable", None),
        "stop_on_kill": getattr(t, "stop_job_run_on_kill", None),
    }
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids), "tasks": tasks,
    "max_active_runs": dag.max_active_runs, "catchup": dag.catchup, "schedule": str(dag.schedule),
    "timetable": type(dag.timetable).__name__, "timetable_summary": dag.timetable.summary,
    "dagrun_timeout_s": dag.dagrun_timeout.total_seconds(),
    "parse_s": [s.duration.total_seconds() for s in bag.dagbag_stats],
}))
"""


@pytest.fixture(scope="session")
def facts(airflow_home):
    return run_python(airflow_home, FACTS, str(ROOT / "dags"))


def test_the_dag_imports_with_no_error(facts):
    assert facts["errors"] == {}
    assert facts["dag_ids"] == ["m7_etl_pipeline"]
    print(f"\nDagBag parse of dags/: {facts['parse_s']} s")


def test_tasks_and_their_order(facts):
    tasks = facts["tasks"]
    assert {t: v["upstream"] for t, v in tasks.items()} == {
        "plan": [],
        "raw_to_silver": ["plan"],
        "quality_gate": ["raw_to_silver"],
        "silver_to_gold": ["plan", "quality_gate"],
        "gold_to_snowflake": ["plan", "quality_gate", "silver_to_gold"],
        "write_execution_log": ["gold_to_snowflake", "raw_to_silver", "silver_to_gold"],
        "notify_failure": ["write_execution_log"],
        "finish": ["notify_failure"]}
    # Everything after the invocations runs whatever happened before it.
    assert {t for t, v in tasks.items() if v["trigger_rule"] == "all_done"} == {
        "quality_gate", "write_execution_log", "notify_failure", "finish"}


def test_the_production_operators(facts):
    tasks = facts["tasks"]
    for name in ("raw_to_silver", "silver_to_gold"):
        t = tasks[name]
        assert t["mapped"] and t["class"] == "PipelineLambdaOperator"
        assert "LambdaInvokeFunctionOperator" in t["bases"]
        assert t["invocation_type"] == "RequestResponse" and t["aws_conn_id"] == "aws_default"
        # Never invoked twice at once: no botocore retry, no read timeout before Lambda's 900 s.
        assert t["botocore_config"]["retries"] == {"max_attempts": 0}
        assert t["botocore_config"]["read_timeout"] >= 900
        assert t["retries"] == 2 and t["backoff"]
        assert t["timeout_s"] > t["botocore_config"]["read_timeout"]
    glue = tasks["gold_to_snowflake"]
    assert glue["class"] == "PipelineGlueJobOperator" and "GlueJobOperator" in glue["bases"]
    assert glue["deferrable"] is True and glue["stop_on_kill"] is True
    assert glue["aws_conn_id"] == "aws_default"


def test_every_task_has_a_timeout(facts):
    assert {t: v["timeout_s"] for t, v in facts["tasks"].items() if not v["timeout_s"]} == {}


def test_one_run_at_a_time_daily_no_catchup(facts):
    assert facts["max_active_runs"] == 1
    assert facts["catchup"] is False
    assert facts["schedule"] == "@daily"
    assert (facts["timetable"], facts["timetable_summary"]) == ("CronTriggerTimetable", "0 0 * * *")
    assert facts["dagrun_timeout_s"] == 4 * 3600


PARSE = r"""
import importlib.util, json, socket, sys, time
started = time.perf_counter()
import airflow.sdk  # the DAG processor has Airflow loaded already
from airflow.sdk import Variable
from airflow.models import Variable as ModelVariable

def refuse(what):
    def trap(*args, **kwargs):
        raise AssertionError(f"{what} at parse time")
    return trap

Variable.get = staticmethod(refuse("Variable.get"))
ModelVariable.get = classmethod(refuse("Variable.get"))
socket.socket.connect = refuse("a network connection")
socket.create_connection = refuse("a network connection")
before, loaded = time.perf_counter(), set(sys.modules)
spec = importlib.util.spec_from_file_location("m7_etl_pipeline", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
done = time.perf_counter()
new = set(sys.modules) - loaded
heavy = sorted(m for m in new if m.split(".")[0] in ("pyarrow", "pandas", "numpy", "yaml")
               or m.startswith(("m7etl.core.raw_to_silver", "m7etl.core.validate", "m7etl.core.gold",
                                "m7etl.core.contracts", "m7etl.deploy", "m7etl.cli", "m7etl.local")))
print(json.dumps({"dag_file_s": done - before, "with_airflow_s": done - started, "heavy": heavy,
                  "m7etl": sorted(m for m in new if m.startswith("m7etl"))}))
"""


def test_the_dag_file_imports_fast_with_no_variable_network_or_pyarrow(airflow_home):
    started = time.perf_counter()
    got = run_python(airflow_home, PARSE, str(DAG_FILE))
    wall = time.perf_counter() - started
    assert got["heavy"] == []
    # What the upload must ship under dags/m7etl/ for parsing (tasks import more, lazily).
    assert got["m7etl"] == [
        "m7etl", "m7etl.core", "m7etl.core.layout", "m7etl.exceptions", "m7etl.orchestration",
        "m7etl.orchestration.airflow_ops", "m7etl.orchestration.failures",
        "m7etl.orchestration.payloads", "m7etl.orchestration.settings"]
    print(f"\nDAG file import: {got['dag_file_s']:.2f} s after Airflow, {got['with_airflow_s']:.2f} s "
          f"with `import airflow.sdk`, {wall:.2f} s for the whole interpreter")


def test_what_the_upload_ships_with_the_dag_stays_light():
    """The import walker the upload uses, from the DAG file (lazy imports included)."""
    from m7etl.deploy.imports import module_graph

    graph = module_graph("m7_etl_pipeline", [ROOT / "dags", ROOT / "src"], what="the DAG")
    shipped = sorted(n for n in graph.files if n.startswith("m7etl"))
    assert shipped == [
        "m7etl", "m7etl.core", "m7etl.core.execution_log", "m7etl.core.layout", "m7etl.exceptions",
        "m7etl.orchestration", "m7etl.orchestration.airflow_ops", "m7etl.orchestration.failures",
        "m7etl.orchestration.gate", "m7etl.orchestration.payloads", "m7etl.orchestration.plan",
        "m7etl.orchestration.run_log", "m7etl.orchestration.settings", "m7etl.storage",
        "m7etl.storage.aws", "m7etl.storage.base", "m7etl.storage.errors", "m7etl.storage.local",
        "m7etl.storage.s3"]
    # pyarrow only behind TYPE_CHECKING and in storage methods the DAG never calls.
    assert sorted(graph.third_party) == ["airflow", "boto3", "botocore", "pyarrow"]


def test_requirements_follow_mwaas_rules():
    lines = (ROOT / "dags" / "requirements.txt").read_text().splitlines()
    assert lines[0] == ('--constraint "https://raw.githubusercontent.com/apache/airflow/'
                        'constraints-3.0.6/constraints-3.12.txt"')
    # Nothing beyond MWAA's image: the provider (with aiobotocore) and boto3 are in it.
    assert [x for x in lines[1:] if x.strip() and not x.startswith("#")] == []


# -- the operators' failure rules ----------------------------------------------------------
OPERATORS = r"""
import io, json
from botocore.exceptions import ClientError
from airflow.exceptions import AirflowFailException
from m7etl.orchestration.airflow_ops import (INVOKE_CONFIG, PipelineGlueJobOperator,
                                             PipelineLambdaOperator, RetryableTaskError)

class TI:
    def __init__(self):
        self.xcom = {}
    def xcom_push(self, key, value):
        self.xcom[key] = value

def outcome(call):
    ti = TI()
    try:
        value = call({"ti": ti})
        return {"result": value, "xcom": ti.xcom}
    except RetryableTaskError as exc:
        return {"raised": "retry", "message": str(exc), "xcom": ti.xcom}
    except AirflowFailException as exc:
        return {"raised": "fail", "message": str(exc), "xcom": ti.xcom}

class LambdaHook:
    def __init__(self, answer=None, error=None):
        self.answer, self.error = answer, error
    def invoke_lambda(self, **kwargs):
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "nope"}}, "Invoke")
        body, function_error = self.answer
        out = {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(body).encode()),
               "ResponseMetadata": {}}
        if function_error:
            out["FunctionError"] = "Unhandled"
        return out

def lam(hook):
    op = PipelineLambdaOperator(task_id="raw_to_silver", function_name="m7-etl-raw-to-silver-test",
                                payload=json.dumps({"key": "raw/20250501/Device_20250501.csv"}),
                                aws_conn_id=None, region_name="eu-west-1")
    op.__dict__["hook"] = hook
    return op

class GlueConn:
    def __init__(self, state, message=None):
        self.state, self.message = state, message
    def get_job(self, JobName):
        raise ClientError({"Error": {"Code": "EntityNotFoundException", "Message": "not found"}},
                          "GetJob")
    def get_job_run(self, JobName, RunId):
        return {"JobRun": {"JobName": JobName, "Id": RunId, "JobRunState": self.state,
                           "ErrorMessage": self.message}}

class GlueHook:
    def __init__(self, conn):
        self.conn = conn

def glue(state, message=None):
    op = PipelineGlueJobOperator(task_id="gold_to_snowflake", job_name="m7-etl-gold-to-snowflake-test",
                                 aws_conn_id=None, region_name="eu-west-1", deferrable=True)
    op.__dict__["hook"] = GlueHook(GlueConn(state, message))
    return op

real = PipelineLambdaOperator(task_id="x", function_name="f", payload="{}", aws_conn_id=None,
                              region_name="eu-west-1")
config = real.hook.conn.meta.config
print(json.dumps({
    "client": {"read_timeout": config.read_timeout, "max_attempts": config.retries.get("total_max_attempts")},
    "invoke_config": INVOKE_CONFIG,
    "ok": outcome(lam(LambdaHook(({"status": "ok"}, False))).execute),
    "transient": outcome(lam(LambdaHook(({"errorType": "TransientStorageError",
                                          "errorMessage": "S3 is busy"}, True))).execute),
    "event_error": outcome(lam(LambdaHook(({"errorType": "EventError",
                                            "errorMessage": "Invalid event: field 'key' is missing."},
                                           True))).execute),
    "throttled": outcome(lam(LambdaHook(error="TooManyRequestsException")).execute),
    "missing": outcome(lam(LambdaHook(error="ResourceNotFoundException")).execute),
    "glue_missing": outcome(glue("SUCCEEDED").execute),
    "glue_succeeded": outcome(lambda ctx: glue("SUCCEEDED").execute_complete(
        ctx, {"status": "success", "run_id": "jr_1"})),
    "glue_stopped": outcome(lambda ctx: glue("STOPPED").execute_complete(
        ctx, {"status": "success", "run_id": "jr_1"})),
    "glue_failed": outcome(lambda ctx: glue("FAILED", "LoadError: 1 of 4 load(s) failed").execute_complete(
        ctx, {"status": "error", "run_id": "jr_2", "message": "AWS Glue job failed.: FAILED"})),
}))
"""


@pytest.fixture(scope="session")
def operators(airflow_home):
    return run_python(airflow_home, OPERATORS)


def test_the_lambda_client_neither_retries_nor_times_out_before_the_function(operators):
    assert operators["client"] == {"read_timeout": 960, "max_attempts": 1}


def test_a_function_answer_is_the_tasks_result(operators):
    assert operators["ok"] == {"result": '{"status": "ok"}', "xcom": {}}


def test_a_retryable_function_error_is_retried_and_kept_for_the_alert(operators):
    message = ("Lambda m7-etl-raw-to-silver-test failed for raw/20250501/Device_20250501.csv: "
               "TransientStorageError: S3 is busy")
    assert operators["transient"] == {"raised": "retry", "message": message,
                                      "xcom": {"error": message}}


def test_a_function_error_no_retry_can_fix_fails_at_once(operators):
    assert operators["event_error"]["raised"] == "fail"
    assert operators["event_error"]["message"] == (
        "Lambda m7-etl-raw-to-silver-test failed for raw/20250501/Device_20250501.csv: EventError: "
        "Invalid event: field 'key' is missing.")


def test_a_refused_invoke_is_retried_only_when_throttled(operators):
    assert operators["throttled"]["raised"] == "retry"
    assert operators["missing"]["raised"] == "fail"
    assert operators["missing"]["message"] == (
        "Lambda m7-etl-raw-to-silver-test could not be invoked for raw/20250501/Device_20250501.csv: "
        "ResourceNotFoundException: nope Deploy the stack or check the Airflow variable 'environment'.")


def test_a_missing_glue_job_is_named_not_created(operators):
    assert operators["glue_missing"] == {
        "raised": "fail", "message": "Glue job m7-etl-gold-to-snowflake-test does not exist. Deploy "
        "the stack or check the Airflow variable 'environment'.",
        "xcom": {"error": "Glue job m7-etl-gold-to-snowflake-test does not exist. Deploy the stack "
                          "or check the Airflow variable 'environment'."}}


def test_a_glue_run_must_end_succeeded_stopped_is_a_failure(operators):
    assert operators["glue_succeeded"] == {"result": "jr_1", "xcom": {}}
    assert operators["glue_stopped"]["raised"] == "fail"
    assert operators["glue_stopped"]["message"] == (
        "Glue job m7-etl-gold-to-snowflake-test run jr_1 ended STOPPED: the run was stopped before "
        "it finished")
    assert operators["glue_failed"]["message"] == (
        "Glue job m7-etl-gold-to-snowflake-test run jr_2 ended FAILED: LoadError: 1 of 4 load(s) failed")


# -- whole runs ----------------------------------------------------------------------------
def _e2e_missing() -> str | None:
    if importlib.util.find_spec("aiobotocore") is None:
        return ("aiobotocore is missing: the deferrable GlueJobOperator needs it (MWAA's image has "
                "it; the airflow extra should be apache-airflow-providers-amazon[aiobotocore])")
    from m7etl.local.standins.lambda_invoke import find_python

    if find_python("3.12") is None:
        return "no CPython 3.12 for the Lambda stand-in (set $M7_PY312)"
    return None


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    if why := _e2e_missing():
        pytest.skip(why)
    started = time.monotonic()
    out = harness.build(tmp_path_factory.mktemp("build"))
    print(f"\nartefacts built in {time.monotonic() - started:.1f} s")
    return out


@pytest.fixture(scope="session")
def sandbox(built, moto_endpoint, tmp_path_factory):
    with harness.Sandbox(tmp_path_factory.mktemp("sandbox"), built, moto_endpoint) as box:
        yield box


def run(airflow_home, env, conf, **kwargs):
    result = harness.run_dag(airflow_home, env, conf, **kwargs)
    print(f"\n{env.name}: airflow dags test exit {result.returncode} in {result.seconds:.0f} s")
    assert result.run_id, result.output[-5000:]
    return result


def conf_for(keys):
    from m7etl.orchestration.runs import run_conf

    return run_conf(DAY, keys)


def gold_rows(sandbox, env, dataset):
    import pyarrow.parquet as pq

    body = sandbox.client("s3").get_object(Bucket=env.bucket, Key=f"gold/{dataset}_{DAY}.parquet")
    return pq.read_table(io.BytesIO(body["Body"].read())).num_rows


@pytest.mark.slow
def test_a_demo_run_end_to_end(sandbox, airflow_home, tmp_path):
    from m7etl.devtools.sample.demo import write_demo_set

    env = sandbox.environment()
    raw_keys = harness.seed_demo(sandbox, env, DAY, tmp_path / "landing")
    assert raw_keys == [f"raw/{DAY}/{n}" for n in ("Channel_20250501.csv", "Device_20250501.csv",
                                                   "EPG_20250501.csv", "Viewing_20250501.csv",
                                                   "Viewing_20250501.csv.gz")]
    result = run(airflow_home, env, conf_for(raw_keys))

    # Every task ran and succeeded; the run failed at the end because of the gate.
    assert result.failed() == ["finish"]
    assert result.returncode == 1
    assert {t for t, s in result.states.items() if s != "success"} == {"finish"}
    assert harness.xcom(airflow_home, result.run_id, "finish", "error") == (
        f"Run {result.run_id} failed: 2 file(s) failed the quality gate: Channel_20250501.csv, "
        "Viewing_20250501.csv.")

    # The functions, the job and the bucket were the environment's.
    invoked = [i.function for i in sandbox.lambdas.invocations if env.name in i.function]
    assert sorted(set(invoked)) == [f"m7-etl-raw-to-silver-{env.name}", f"m7-etl-silver-to-gold-{env.name}"]
    assert invoked.count(f"m7-etl-raw-to-silver-{env.name}") == 5
    assert invoked.count(f"m7-etl-silver-to-gold-{env.name}") == 4
    runs = [r for r in sandbox.glue.runs.values() if r.job_name == f"m7-etl-gold-to-snowflake-{env.name}"]
    assert [(r.arguments, r.state) for r in runs] == [
        ({"--days": DAY, "--datasets": "Channel,Device,EPG,Viewing"}, "SUCCEEDED")]

    # The execution log: every planned file, rows conserved, the generator's row counts.
    log = harness.execution_log(sandbox, env, DAY)
    manifests = {Path(m.path).name: m for m in write_demo_set(tmp_path / "again", DAY)}
    assert harness.conservation_errors(log) == []
    assert {Path(f["source_key"]).name: (f["status"], f["rows_read"]) for f in log["files"]} == {
        "Channel_20250501.csv": ("failed_threshold", manifests["Channel_20250501.csv"].rows),
        "Device_20250501.csv": ("ok", manifests["Device_20250501.csv"].rows),
        "EPG_20250501.csv": ("ok", manifests["EPG_20250501.csv"].rows),
        "Viewing_20250501.csv": ("quarantined", 0),
        "Viewing_20250501.csv.gz": ("ok", manifests["Viewing_20250501.csv.gz"].rows)}
    assert all(f.get("dialect") for f in log["files"] if f["status"] != "quarantined")  # reports
    assert [r["run_id"] for r in log["runs"]] == [result.run_id]
    assert {g["dataset"]: g["status"] for g in log["gold"]} == {
        "Channel": "no_input", "Device": "ok", "EPG": "ok", "Viewing": "ok"}

    # The gate stopped Channel (no gold, nothing loaded) and let the rest through to Snowflake.
    counts = harness.warehouse_counts(env)
    assert counts.get("CHANNEL", 0) == 0
    for dataset in ("Device", "EPG", "Viewing"):
        assert counts[dataset.upper()] == gold_rows(sandbox, env, dataset) > 0

    # The alert names the run, the files that failed the gate and the log.
    [alert] = harness.alerts(sandbox, env)
    assert alert["Subject"] == f"m7etl {env.name}: m7_etl_pipeline run failed"
    assert alert["Message"].startswith(f"DAG m7_etl_pipeline run {result.run_id} failed "
                                       f"(environment {env.name}).")
    assert "Failed tasks" not in alert["Message"]
    assert (f"  - raw/{DAY}/Channel_20250501.csv: 17.50% of rows rejected, above the error "
            "threshold of 5.0%") in alert["Message"]
    assert f"  - raw/{DAY}/Viewing_20250501.csv: binary: " in alert["Message"]
    assert f"Execution log: s3://{env.bucket}/logs/pipeline_execution_{DAY}.json" in alert["Message"]

    # A later upload of one file: the next run processes it alone and merges the day's log.
    time.sleep(1.1)  # S3 times have one-second resolution: the new object must be newer
    device = f"raw/{DAY}/Device_20250501.csv"
    s3 = sandbox.client("s3")
    s3.put_object(Bucket=env.bucket, Key=device,
                  Body=Path(manifests["Device_20250501.csv"].path).read_bytes())
    again = run(airflow_home, env, conf_for([device]))
    assert again.returncode == 0 and again.failed() == []
    assert [t for t in again.states if t.startswith("raw_to_silver")] == ["raw_to_silver[0]"]
    merged = harness.execution_log(sandbox, env, DAY)
    assert [r["run_id"] for r in merged["runs"]] == [result.run_id, again.run_id]
    assert [f["source_key"] for f in merged["files"]] == [f["source_key"] for f in log["files"]]
    assert merged["totals"] == log["totals"]  # the same file again: same rows
    assert harness.alerts(sandbox, env) == []  # nothing failed this time


def tiny_zip(path: Path, module: str, source: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{module}.py", source)
    return path


@pytest.mark.slow
def test_a_lambda_function_error_fails_the_run_naming_it(sandbox, airflow_home, tmp_path):
    broken = tiny_zip(tmp_path / "silver_to_gold.zip", "silver_to_gold",
                      "def handler(event, context):\n"
                      "    raise RuntimeError('the gold store is unavailable')\n")
    env = sandbox.environment(functions={"silver_to_gold": str(broken)})
    raw_keys = harness.seed_demo(sandbox, env, DAY, tmp_path / "landing", only=("Device_20250501.csv",))
    result = run(airflow_home, env, conf_for(raw_keys))

    assert result.returncode == 1
    assert result.failed() == ["finish", "silver_to_gold[0]"]
    assert result.states["gold_to_snowflake"] == "upstream_failed"
    assert result.states["write_execution_log"] == "success"
    calls = [i for i in sandbox.lambdas.invocations if i.function == f"m7-etl-silver-to-gold-{env.name}"]
    assert len(calls) == 1  # RuntimeError says nothing of a retry: not retried
    error = (f"Lambda m7-etl-silver-to-gold-{env.name} failed for Device {DAY}: RuntimeError: the "
             "gold store is unavailable")
    [alert] = harness.alerts(sandbox, env)
    assert f"Failed tasks:\n  - silver_to_gold[0] Device {DAY}: {error}\n" in alert["Message"]
    assert "quality gate" not in alert["Message"]
    assert harness.xcom(airflow_home, result.run_id, "finish", "error") == (
        f"Run {result.run_id} failed: 1 task(s) failed: silver_to_gold[0] Device {DAY}.")
    assert harness.xcom(airflow_home, result.run_id, "silver_to_gold", "error", 0) == error
    log = harness.execution_log(sandbox, env, DAY)
    assert [f["source_key"] for f in log["files"]] == raw_keys and log["gold"] == []
    assert harness.conservation_errors(log) == []


@pytest.mark.slow
def test_a_glue_failure_fails_the_run_naming_it(sandbox, airflow_home, tmp_path):
    script = tmp_path / "gold_to_snowflake.py"
    script.write_text("import sys\nprint('connecting')\n"
                      "sys.exit('250001: Could not connect to Snowflake backend after 2 attempts')\n")
    env = sandbox.environment(glue_script=script)
    raw_keys = harness.seed_demo(sandbox, env, DAY, tmp_path / "landing", only=("EPG_20250501.csv",))
    result = run(airflow_home, env, conf_for(raw_keys))

    assert result.returncode == 1
    assert result.failed() == ["finish", "gold_to_snowflake"]
    [glue_run] = [r for r in sandbox.glue.runs.values() if r.job_name.endswith(env.name)]
    assert glue_run.state == "FAILED"  # a terminal failure: not started again
    [alert] = harness.alerts(sandbox, env)
    assert (f"  - gold_to_snowflake: Glue job m7-etl-gold-to-snowflake-{env.name} run {glue_run.id} "
            "ended FAILED: 250001: Could not connect to Snowflake backend after 2 attempts") \
        in alert["Message"]
    assert harness.execution_log(sandbox, env, DAY)["totals"]["files_ok"] == 1


@pytest.mark.slow
def test_a_bad_variable_fails_the_first_task_naming_it(sandbox, airflow_home):
    env = sandbox.environment()
    result = run(airflow_home, env, None, variables={"max_days_back": "three"})

    assert result.returncode == 1
    assert result.failed() == ["finish", "plan"]
    assert {t: s for t, s in result.states.items() if t not in ("plan", "finish")} == {
        "raw_to_silver": "upstream_failed", "quality_gate": "skipped",  # all_done: skips itself
        "silver_to_gold": "upstream_failed", "gold_to_snowflake": "upstream_failed",
        "write_execution_log": "skipped", "notify_failure": "success"}
    [alert] = harness.alerts(sandbox, env)
    assert ("Failed tasks:\n  - plan: Airflow variable 'max_days_back' is 'three': not a whole "
            f"number. Use an integer from 1 to 365. {SET_HINT}\n") in alert["Message"]
    assert "Execution log: none written by this run." in alert["Message"]
