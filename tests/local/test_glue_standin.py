"""The Glue stand-in: an unmodified boto3 client (and Airflow's Glue hook) running jobs here.

Tiny scripts check the protocol, the states and the arguments; the real ``gold_to_snowflake``
script then loads a day of gold from the moto S3 server into a fakesnow warehouse folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.config import Config

from m7etl.exceptions import ConfigurationError
from m7etl.local.standins import glue_jobs
from m7etl.local.standins.glue_jobs import GlueStandin, JobSpec, error_message, load_jobs

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT", "ERROR")

SCRIPT = '''
import json, os, sys, time
import m7etl
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
print("job output for", args["--JOB_NAME"])
with open(args["--out"], "w") as f:
    json.dump({"argv": sys.argv[1:], "m7etl": m7etl.__file__, "mark": getattr(m7etl, "MARK", None),
               "cwd": os.getcwd()}, f)
if args.get("--mode") == "raise":
    raise RuntimeError("no gold for 20250501")
if args.get("--mode") == "error-line":
    print("2025-05-01 08:00:00,000 ERROR m7etl.warehouse.job gold_to_snowflake failed: "
          "Secret x does not exist.")
    sys.exit(1)
if args.get("--mode") == "exit":
    sys.exit(3)
if args.get("--mode") == "sleep":
    time.sleep(60)
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("glue-files")
    (out / "script.py").write_text(SCRIPT)
    with zipfile.ZipFile(out / "bundle.zip", "w") as zf:
        zf.writestr("m7etl/__init__.py", "MARK = 'bundle'\n")
    return {"script": out / "script.py", "bundle": out / "bundle.zip", "dir": out}


@pytest.fixture(scope="module")
def standin(files, tmp_path_factory, moto_endpoint):
    server = GlueStandin(tmp_path_factory.mktemp("glue-cache"), timeout_unit=1.0,
                         env={"AWS_ENDPOINT_URL": moto_endpoint}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def glue(standin):
    return boto3.client("glue", endpoint_url=standin.endpoint, region_name="eu-west-1",
                        config=Config(retries={"max_attempts": 0}))


@pytest.fixture
def job(standin, files, tmp_path) -> JobSpec:
    """A fresh job writing what it saw to tmp_path/out.json."""
    spec = JobSpec(f"m7-job-{uuid.uuid4().hex[:8]}", str(files["script"]),
                   {"--greeting": "bonjour", "--out": str(tmp_path / "out.json"),
                    "--extra-py-files": str(files["bundle"])})
    return standin.register(spec)


def until_done(glue, name: str, run_id: str, timeout: float = 120) -> tuple[dict, list[str]]:
    """The run once final, and the states seen while polling."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = glue.get_job_run(JobName=name, RunId=run_id)["JobRun"]
        if not seen or seen[-1] != run["JobRunState"]:
            seen.append(run["JobRunState"])
        if run["JobRunState"] in FINAL:
            return run, seen
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {seen[-1]} after {timeout} s")


# -- the protocol, from botocore's model -----------------------------------------------------
def test_the_answers_use_the_models_names(glue, job, standin):
    model = botocore.session.get_session().get_service_model("glue")
    assert (model.protocol, model.metadata["targetPrefix"] + ".") == ("json", glue_jobs.TARGET_PREFIX)
    assert f"application/x-amz-json-{model.metadata['jsonVersion']}" == glue_jobs.CONTENT_TYPE
    states = set(model.shape_for("JobRunState").enum)
    assert {*glue_jobs.ACTIVE, "SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT"} <= states
    run_id = glue.start_job_run(JobName=job.name, Arguments={"--mode": "raise"})["JobRunId"]
    until_done(glue, job.name, run_id)

    def raw(operation: str, body: dict) -> dict:
        request = urllib.request.Request(standin.endpoint, data=json.dumps(body).encode(), headers={
            "X-Amz-Target": f"AWSGlue.{operation}", "Content-Type": glue_jobs.CONTENT_TYPE})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    # botocore drops keys it does not know: check the raw answers against the shapes.
    run = raw("GetJobRun", {"JobName": job.name, "RunId": run_id})["JobRun"]
    assert set(run) <= set(model.shape_for("JobRun").members)
    assert {"Id", "JobName", "StartedOn", "CompletedOn", "ExecutionTime", "Arguments",
            "JobRunState", "ErrorMessage"} <= set(run)
    definition = raw("GetJob", {"JobName": job.name})["Job"]
    assert set(definition) <= set(model.shape_for("Job").members)
    assert set(definition["Command"]) <= set(model.shape_for("JobCommand").members)


# -- runs ---------------------------------------------------------------------------------------
def test_a_run_gets_glues_argv_and_the_bundle_alone_on_the_path(glue, job, standin, tmp_path):
    run_id = glue.start_job_run(JobName=job.name, Arguments={"--greeting": "salut", "--day": "1"})[
        "JobRunId"]
    assert re.fullmatch(r"jr_[0-9a-f]{64}", run_id)
    run, seen = until_done(glue, job.name, run_id)
    assert seen[-1] == "SUCCEEDED" and set(seen) <= {"STARTING", "RUNNING", "SUCCEEDED"}
    assert (run["Id"], run["JobName"], run["Attempt"]) == (run_id, job.name, 0)
    assert run["Arguments"] == {"--greeting": "salut", "--day": "1"}  # the run's own, as Glue
    assert run["StartedOn"] <= run["CompletedOn"] and run["ExecutionTime"] >= 0
    assert "ErrorMessage" not in run
    seen_by_script = json.loads((tmp_path / "out.json").read_text())
    assert seen_by_script["argv"] == [
        "--JOB_NAME", job.name, "--JOB_RUN_ID", run_id, "--greeting", "salut",
        "--out", str(tmp_path / "out.json"), "--extra-py-files", job.default_arguments[
            "--extra-py-files"], "--day", "1"]
    # m7etl comes from --extra-py-files (unpacked for the run), not this venv's source tree.
    assert seen_by_script["mark"] == "bundle"
    run_dir = standin.cache_dir / "runs" / run_id
    assert seen_by_script["m7etl"] == str(run_dir / "extra-py-files" / "bundle" / "m7etl" /
                                          "__init__.py")
    assert seen_by_script["cwd"] == str(run_dir)


@pytest.mark.parametrize(("mode", "message"), [
    ("raise", "RuntimeError: no gold for 20250501"),
    ("error-line", "2025-05-01 08:00:00,000 ERROR m7etl.warehouse.job gold_to_snowflake failed: "
                   "Secret x does not exist."),
    ("exit", "Command failed with exit code 3"),
])
def test_a_failing_script_fails_the_run_with_its_error(glue, job, standin, mode, message):
    run_id = glue.start_job_run(JobName=job.name, Arguments={"--mode": mode})["JobRunId"]
    run, _ = until_done(glue, job.name, run_id)
    assert (run["JobRunState"], run["ErrorMessage"]) == ("FAILED", message)
    assert "job output for" in standin.runs[run_id].output()


def test_max_concurrent_runs_then_stop(glue, job, standin):
    first = glue.start_job_run(JobName=job.name, Arguments={"--mode": "sleep"})["JobRunId"]
    with pytest.raises(glue.exceptions.ConcurrentRunsExceededException,
                       match=f"Concurrent runs exceeded for {job.name}"):
        glue.start_job_run(JobName=job.name)
    deadline = time.monotonic() + 30
    while standin.runs[first].state != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    answer = glue.batch_stop_job_run(JobName=job.name, JobRunIds=[first, "jr_nope"])
    assert answer["SuccessfulSubmissions"] == [{"JobName": job.name, "JobRunId": first}]
    assert answer["Errors"] == [{"JobName": job.name, "JobRunId": "jr_nope", "ErrorDetail": {
        "ErrorCode": "EntityNotFoundException", "ErrorMessage": "Job run jr_nope not found."}}]
    started = time.monotonic()
    run, _ = until_done(glue, job.name, first)
    assert run["JobRunState"] == "STOPPED" and time.monotonic() - started < 10
    again = glue.batch_stop_job_run(JobName=job.name, JobRunIds=[first])
    assert again["Errors"][0]["ErrorDetail"] == {
        "ErrorCode": "InvalidInputException",
        "ErrorMessage": f"Job run {first} is STOPPED: it cannot be stopped."}
    second = glue.start_job_run(JobName=job.name)["JobRunId"]  # the slot is free again
    assert until_done(glue, job.name, second)[0]["JobRunState"] == "SUCCEEDED"


def test_a_run_over_its_timeout_is_killed_as_timeout(glue, job):
    # timeout_unit=1.0 in this module: a Timeout of 1 "minute" is one second.
    run_id = glue.start_job_run(JobName=job.name, Arguments={"--mode": "sleep"}, Timeout=1)[
        "JobRunId"]
    run, _ = until_done(glue, job.name, run_id, timeout=30)
    assert (run["JobRunState"], run["ErrorMessage"], run["Timeout"]) == (
        "TIMEOUT", "Job run timed out after 1 minute(s).", 1)


def test_get_job_runs_is_newest_first_and_pages(glue, job):
    ids = [glue.start_job_run(JobName=job.name)["JobRunId"] for _ in range(1)]
    until_done(glue, job.name, ids[0])
    ids.append(glue.start_job_run(JobName=job.name)["JobRunId"])
    until_done(glue, job.name, ids[1])
    assert [r["Id"] for r in glue.get_job_runs(JobName=job.name)["JobRuns"]] == ids[::-1]
    page = glue.get_job_runs(JobName=job.name, MaxResults=1)
    assert [r["Id"] for r in page["JobRuns"]] == [ids[1]] and page["NextToken"] == "1"
    rest = glue.get_job_runs(JobName=job.name, MaxResults=1, NextToken=page["NextToken"])
    assert [r["Id"] for r in rest["JobRuns"]] == [ids[0]] and "NextToken" not in rest


def test_unknown_jobs_and_runs_are_entity_not_found(glue, job):
    with pytest.raises(glue.exceptions.EntityNotFoundException, match="Job m7-nope not found."):
        glue.get_job(JobName="m7-nope")
    with pytest.raises(glue.exceptions.EntityNotFoundException, match="Job m7-nope not found."):
        glue.start_job_run(JobName="m7-nope")
    with pytest.raises(glue.exceptions.EntityNotFoundException, match="Job run jr_x not found."):
        glue.get_job_run(JobName=job.name, RunId="jr_x")


def test_a_job_created_through_the_api_runs_its_script_from_s3(glue, files, moto_endpoint,
                                                               tmp_path):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    bucket = f"m7-solocco-code-repository-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.upload_file(str(files["script"]), bucket, "glue/gold_to_snowflake.py")
    s3.upload_file(str(files["bundle"]), bucket, "glue/m7etl_glue.zip")
    name = f"m7-api-{uuid.uuid4().hex[:8]}"
    created = glue.create_job(
        Name=name, Role="arn:aws:iam::123456789012:role/glue", ExecutionProperty={
            "MaxConcurrentRuns": 2},
        Command={"Name": "pythonshell", "ScriptLocation": f"s3://{bucket}/glue/gold_to_snowflake.py",
                 "PythonVersion": "3.9"},
        DefaultArguments={"--out": str(tmp_path / "out.json"),
                          "--extra-py-files": f"s3://{bucket}/glue/m7etl_glue.zip"})
    assert created == {"Name": name, "ResponseMetadata": created["ResponseMetadata"]}
    with pytest.raises(glue.exceptions.AlreadyExistsException, match=f"Job {name} already exists."):
        glue.create_job(Name=name, Role="r", Command={"Name": "pythonshell", "ScriptLocation": "x"})
    definition = glue.get_job(JobName=name)["Job"]
    assert definition["ExecutionProperty"] == {"MaxConcurrentRuns": 2}
    run_id = glue.start_job_run(JobName=name)["JobRunId"]
    assert until_done(glue, name, run_id)[0]["JobRunState"] == "SUCCEEDED"
    assert json.loads((tmp_path / "out.json").read_text())["mark"] == "bundle"
    glue.update_job(JobName=name, JobUpdate={
        "Role": "r", "Command": {"Name": "pythonshell",
                                 "ScriptLocation": f"s3://{bucket}/glue/gold_to_snowflake.py"},
        "DefaultArguments": {"--out": str(tmp_path / "out2.json"), "--mode": "raise"}})
    run, _ = until_done(glue, name, glue.start_job_run(JobName=name)["JobRunId"])
    # UpdateJob replaces the definition: no --extra-py-files now, so the venv's m7etl is hidden
    # and the script's import fails before it writes anything.
    assert (run["JobRunState"], run["ErrorMessage"]) == (
        "FAILED", "ModuleNotFoundError: No module named 'm7etl'")


# -- registration -------------------------------------------------------------------------------
def test_registration_and_jobs_files(standin, files, tmp_path):
    with pytest.raises(ConfigurationError) as info:
        standin.register(JobSpec("m7-x", str(tmp_path / "build" / "glue" / "gold_to_snowflake.py")))
    assert str(info.value) == (f"Glue job m7-x: {tmp_path}/build/glue/gold_to_snowflake.py does "
                               "not exist. Build it with `m7etl package` (build/glue/).")
    (tmp_path / "glue").mkdir()
    (tmp_path / "glue" / "s.py").write_text("")
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"jobs": [{"name": "m7-j", "script": "glue/s.py",
                                          "default_arguments": {"--days": "20250501"},
                                          "extra_py_files": ["glue/b.zip", "s3://b/k.zip"],
                                          "max_concurrent_runs": 3}]}))
    (spec,) = load_jobs(jobs)
    assert (spec.script, spec.extra_py_files, spec.max_concurrent_runs, spec.timeout) == (
        str(tmp_path / "glue" / "s.py"), (str(tmp_path / "glue" / "b.zip"), "s3://b/k.zip"), 3, 2880)
    jobs.write_text(json.dumps([{"name": "m7-j", "script": "s.py", "args": {}}]))
    with pytest.raises(ConfigurationError) as info:
        load_jobs(jobs)
    assert str(info.value) == (f"Glue job 'm7-j' in {jobs}: unknown key(s) args. The keys are "
                               "name, script, default_arguments, extra_py_files, "
                               "max_concurrent_runs, timeout.")


def test_error_message_prefers_stderr_then_error_lines_then_the_code():
    assert error_message(1, "a\n x ERROR y\n", "Traceback\n  ...\nKeyError: 'k'\n\n") == "KeyError: 'k'"
    assert error_message(1, "a\nt ERROR one\nt ERROR two\nb\n", "") == "t ERROR two"
    assert error_message(2, "nothing", "") == "Command failed with exit code 2"


def test_the_command_line_serves_a_jobs_file_until_sigterm(files, tmp_path):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"name": "m7-cli", "script": str(files["script"]),
                                 "default_arguments": {"--out": str(tmp_path / "o.json")},
                                 "extra_py_files": [str(files["bundle"])]}]))
    proc = subprocess.Popen([sys.executable, "-m", "m7etl.local.standins.glue_jobs", "--port", "0",
                             "--jobs", str(jobs), "--cache-dir", str(tmp_path / "cache")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"Glue stand-in \(m7-cli\) on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        client = boto3.client("glue", endpoint_url=match.group(1), region_name="eu-west-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing",
                              config=Config(retries={"max_attempts": 0}))
        run_id = client.start_job_run(JobName="m7-cli")["JobRunId"]
        assert until_done(client, "m7-cli", run_id)[0]["JobRunState"] == "SUCCEEDED"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert re.search(r"glue run jr_\w{8} of m7-cli: SUCCEEDED in \d+ s", proc.stderr.read())


# -- Airflow's Glue hook and deferrable trigger -------------------------------------------------
AIRFLOW_CHECK = textwrap.dedent('''
    import asyncio, json, sys
    from airflow.providers.amazon.aws.hooks.glue import GlueJobHook
    from airflow.providers.amazon.aws.triggers.glue import GlueJobCompleteTrigger
    name = sys.argv[1]
    hook = GlueJobHook(aws_conn_id="aws_standin", job_name=name, job_poll_interval=0.1)
    run = hook.initialize_job({"--greeting": "salut"})  # get_job, then start_job_run
    done = hook.job_completion(name, run["JobRunId"])  # get_job_run polling
    failing = hook.initialize_job({"--mode": "raise"})["JobRunId"]

    async def wait():
        trigger = GlueJobCompleteTrigger(job_name=name, run_id=failing, aws_conn_id="aws_standin",
                                         waiter_delay=1, waiter_max_attempts=30)
        try:
            async for event in trigger.run():
                return event
        except Exception as exc:
            return {"error": str(exc).splitlines()[0]}

    print("RESULT:" + json.dumps({"done": done, "deferred": asyncio.run(wait())}))
''')


@pytest.mark.slow
def test_airflows_glue_hook_and_trigger_drive_the_stand_in(standin, job, tmp_path):
    pytest.importorskip("airflow.providers.amazon")
    connection = {"conn_type": "aws", "extra": {"region_name": "eu-west-1", "service_config": {
        "glue": {"endpoint_url": standin.endpoint}}}}
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_CONN_AWS_STANDIN": json.dumps(connection)}
    proc = subprocess.run([sys.executable, "-c", AIRFLOW_CHECK, job.name], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT:")]
    result = json.loads(line[len("RESULT:"):])
    assert result["done"]["JobRunState"] == "SUCCEEDED"
    assert result["deferred"] == {"error": "AWS Glue job failed.: FAILED"}


# -- the real job -------------------------------------------------------------------------------
DAY = "20250501"
SIZES = {"Device": 120, "EPG": 80, "Channel": 40, "Viewing": 300}


@pytest.fixture(scope="module")
def gold(tmp_path_factory, registry) -> Path:
    """A data folder whose gold/ the real pipeline made from sample files (as the warehouse
    tests prepare it)."""
    from m7etl.devtools.sample import SampleOptions, write_sample
    from m7etl.local.runner import run_pipeline
    from m7etl.storage import LocalStorage

    root = tmp_path_factory.mktemp("gold") / "data"
    for i, (name, rows) in enumerate(SIZES.items()):
        write_sample(name, DAY, root / "landing", SampleOptions(rows=rows, seed=i + 3))
    run_pipeline(LocalStorage(root), registry, day=DAY)
    return root


@pytest.mark.slow
def test_the_real_job_loads_a_day_of_gold_from_moto_into_fakesnow(gold, moto_endpoint, tmp_path,
                                                                  registry, capsys):
    import pyarrow.parquet as pq

    from m7etl.deploy.glue import build_glue_bundle
    from m7etl.deploy.stack import parse_template
    from m7etl.local.warehouse import local_connection
    from m7etl.warehouse import sql

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    bucket = f"m7-etl-data-solocco-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    files = sorted((gold / "gold").glob("*.parquet"))
    assert [f.name for f in files] == [f"{n}_{DAY}.parquet" for n in sorted(SIZES)]
    for path in files:
        s3.upload_file(str(path), bucket, f"gold/{path.name}")
    secret_id, password = f"m7-etl/snowflake-{uuid.uuid4().hex[:8]}", "n0t-a-Real-Pa55word!"
    boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="eu-west-1").create_secret(
        Name=secret_id, SecretString=json.dumps({"password": password}))
    template = parse_template((ROOT / "templates" / "etl-pipeline-mwaa.yaml").read_text(), "t")
    job_args = template["Resources"]["GoldToSnowflakeJob"]["Properties"]["DefaultArguments"]
    arguments = {"--environment": "test", "--data_bucket": bucket,
                 "--snowflake_account": "local", "--snowflake_user": "M7_ETL_LOADER",
                 "--snowflake_role": "M7_ETL_LOADER", "--snowflake_warehouse": "M7_ETL_WH",
                 "--snowflake_database": "M7_ETL", "--snowflake_schema": "GOLD",
                 "--snowflake_secret_id": secret_id}
    assert set(arguments) | {"--snowflake_stage"} <= set(job_args)  # the stack's names
    bundle = build_glue_bundle(tmp_path / "m7etl_glue.zip")
    warehouse = tmp_path / "warehouse"
    standin = GlueStandin(tmp_path / "cache", warehouse_dir=warehouse,
                          env={"AWS_ENDPOINT_URL": moto_endpoint})
    with standin:
        standin.register(JobSpec("m7-etl-gold-to-snowflake-test",
                                 str(ROOT / "glue_src" / "gold_to_snowflake.py"),
                                 {**arguments, "--extra-py-files": str(bundle)}))
        client = boto3.client("glue", endpoint_url=standin.endpoint, region_name="eu-west-1",
                              config=Config(retries={"max_attempts": 0}))
        times = []
        for _ in range(2):  # a reload is safe: the same counts after the second run
            started = time.monotonic()
            run_id = client.start_job_run(JobName="m7-etl-gold-to-snowflake-test",
                                          Arguments={"--days": DAY})["JobRunId"]
            run, _ = until_done(client, "m7-etl-gold-to-snowflake-test", run_id, timeout=300)
            times.append(time.monotonic() - started)
            output = standin.runs[run_id].output() + standin.runs[run_id].output("error")
            assert run["JobRunState"] == "SUCCEEDED", output[-3000:]
    assert "gold_to_snowflake done: 4 load(s), 0 skipped (no input)" in output
    assert f"run {run_id}: loading {DAY} into M7_ETL.GOLD (write_pandas fallback)" in output
    assert password not in output
    expected = {sql.table_name(p.name.split("_")[0]): pq.read_metadata(p).num_rows for p in files}
    with local_connection(warehouse) as conn:
        cur = conn.cursor()
        counts = {}
        for table in expected:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            counts[table] = cur.fetchone()[0]
        cur.execute(f"SELECT COUNT(*), COUNT(DISTINCT run_id) FROM {sql.AUDIT_TABLE}")
        audit = cur.fetchone()
    assert counts == expected
    assert audit == (8, 2)  # four loads per run, each run audited under its Glue run id
    with capsys.disabled():
        print(f"\ngold_to_snowflake via the stand-in: first {times[0]:.2f} s, second "
              f"{times[1]:.2f} s")
