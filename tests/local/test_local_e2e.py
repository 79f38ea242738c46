"""``make local-e2e`` as a test: the guide's steps 1 to 6 on the local stack, and a failure.

One local stack (moto and the MWAA stand-in, on free ports, in a temporary folder) serves
the module: ``scripts/local_e2e.py`` creates the prerequisites, deploys twice, lands the
demo's good files and follows the runs they trigger (the success path), then a file over
the error threshold (the failure path). The expectations come from outside the pipeline:
the demo generator's manifests (rows per file), the gold Parquet files read with pyarrow,
the guide's names. Measured here: about 2.5 minutes for the module, most of it the four
DAG runs (about 15-35 s each: every Lambda call is a fresh CPython importing pyarrow) and
the first deploy (about 30 s: building, cfn-lint, uploading 48 MB into moto).
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import sys
import time
from pathlib import Path

import pytest

from m7etl.local.standins.mwaa import airflow_command

ROOT = Path(__file__).resolve().parents[2]
DAY = "20250501"
BUDGET_S = 600  # the module's share of the suite's time budget (well under 15 minutes)


def _load_script():
    spec = importlib.util.spec_from_file_location("m7_local_e2e", ROOT / "scripts" / "local_e2e.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


script = _load_script()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(airflow_command() is None,
                                 reason="no airflow command: the MWAA stand-in runs a real "
                                        "Airflow 3.0.6 (make install)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, moto: int, mwaa: int) -> Path:
    """A [local] table like the repository's, on ports nobody else uses."""
    path = folder / "m7etl.toml"
    path.write_text(f"""
[local]
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:{moto}"
data_bucket = "m7-etl-data-solocco-local"
code_bucket = "m7-solocco-code-repository-local"
mwaa_environment = "m7-etl-mwaa-local"

[local.endpoints]
mwaa = "http://127.0.0.1:{mwaa}"
mwaa_web = "http://127.0.0.1:{mwaa}"

[local.snowflake]
account = "local"
stage = ""
""", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local-e2e")
    moto, mwaa = free_port(), free_port()
    lines: list[str] = []
    runner = script.LocalE2E(write_config(folder, moto, mwaa), day=DAY, root=folder / "local",
                             say=lines.append)
    started = time.monotonic()
    with runner:
        error = None
        try:  # the problems that do not stop the steps are in runner.result.problems
            script.run(runner)
        except script.E2EFailure as exc:
            error = None if runner.result.problems and str(exc) == "; ".join(
                runner.result.problems) else exc
        runner.error, runner.lines, runner.ports = error, lines, (moto, mwaa)
        yield runner
    runner.result.seconds["module"] = round(time.monotonic() - started, 1)
    print("local e2e timings (s):", json.dumps(runner.result.seconds, indent=1))


def _output(e2e) -> str:
    return "\n".join(e2e.lines[-80:])


def test_the_guide_runs_on_the_local_stack_from_landing_to_the_warehouse(e2e):
    assert e2e.error is None, f"{e2e.error}\n{_output(e2e)}"
    first, second = e2e.result.deploys
    assert first["outcome"] == "created" and first["exit_code"] == 0
    assert {c["name"]: c["status"] for c in first["preflight"]}["network"] == "pass"
    outputs = e2e.result.outputs
    assert outputs["MwaaEnvironmentName"] == "m7-etl-mwaa-local"
    assert outputs["AirflowWebUIUrl"] == f"https://127.0.0.1:{e2e.ports[1]}"
    assert outputs["S3EventLambdaFunctionArn"] == \
        "arn:aws:lambda:eu-west-1:123456789012:function:m7-etl-s3-event-local"
    # The second deploy: nothing uploaded (every object skipped), no change set executed.
    assert second["upload"]["uploaded"] == 0
    assert second["upload"]["skipped"] == first["upload"]["uploaded"] > 0
    assert {o["action"] for o in second["upload"]["objects"]} == {"skipped"}
    assert (second["outcome"], second["exit_code"]) == ("no changes", 0), \
        e2e.result.problems
    assert e2e.result.problems == []
    # One run per landed file (the S3-event function triggers each), all successful.
    assert e2e.result.followed == 0
    assert len(e2e.result.runs) == len(script.GOOD)
    assert {r["state"] for r in e2e.result.runs} == {"success"}
    assert all(r["run_id"].startswith(f"s3_{DAY}_") for r in e2e.result.runs)


def test_the_execution_log_counts_every_row_the_generator_wrote(e2e):
    assert e2e.error is None, f"{e2e.error}\n{_output(e2e)}"
    log = e2e.result.log
    manifests = e2e.result.manifests
    by_key = {f["source_key"]: f for f in log["files"]}
    for pattern in script.GOOD:
        name = pattern.format(day=DAY)
        entry = by_key[f"raw/{DAY}/{name}"]
        assert entry["rows_read"] == manifests[name].rows, name
        assert entry["rows_valid"] + entry["rows_rejected"] == entry["rows_read"]
        assert entry["status"] == "ok"
    assert log["totals"]["files"] == len(script.GOOD)
    assert log["totals"]["rows_read"] == sum(manifests[p.format(day=DAY)].rows
                                             for p in script.GOOD)


def test_the_warehouse_holds_exactly_the_gold_files_rows(e2e):
    import pyarrow.parquet as pq

    assert e2e.error is None, f"{e2e.error}\n{_output(e2e)}"
    copy = e2e.layout.bucket_copy
    for dataset in ("Device", "EPG", "Viewing"):
        gold = copy / "gold" / f"{dataset}_{DAY}.parquet"
        assert e2e.result.counts[dataset.upper()] == pq.read_metadata(gold).num_rows
    # The bucket copy is the bucket: the log in it is the one read through S3.
    copied = json.loads((copy / "logs" / f"pipeline_execution_{DAY}.json").read_text())
    assert copied == e2e.result.log
    assert not list((copy / "landing").glob("*")), "files left in landing/"


def test_a_second_up_is_refused_naming_the_running_processes(e2e):
    from m7etl.exceptions import DeployError
    from m7etl.local.stack import status, up

    with pytest.raises(DeployError) as caught:
        up(e2e.layout)
    pids = {s.name: s.pid for s in status(e2e.layout).services}
    assert str(caught.value) == (
        f"The local stack in {e2e.layout.root} is already running: mwaa (pid {pids['mwaa']}, "
        f"port {e2e.ports[1]}), moto (pid {pids['moto']}, port {e2e.ports[0]}). Use it as it "
        "is, or stop it first with make local-down (m7etl local down).")


def test_a_file_over_the_error_threshold_fails_the_run_and_alerts_the_topic(e2e):
    assert e2e.error is None, f"the success path failed first: {e2e.error}"
    counts_before = dict(e2e.result.counts)
    try:
        e2e.failure_path()
    except script.E2EFailure as exc:
        pytest.fail(f"{exc}\n{_output(e2e)}")
    name = script.OVER_THRESHOLD.format(day=DAY)
    assert e2e.result.failed_run["state"] == "failed"
    [alert] = e2e.result.alerts
    assert alert["Subject"] == "m7etl local: m7_etl_pipeline run failed"
    assert f"DAG m7_etl_pipeline run {e2e.result.failed_run['run_id']} failed (environment " \
           "local)." in alert["Message"]
    found = re.search(rf"raw/{DAY}/{name}: (\d+\.\d\d)% of rows rejected, above the error "
                      r"threshold of 5\.0%", alert["Message"])
    assert found, alert["Message"]
    log = e2e.execution_log()
    entry = {f["source_key"]: f for f in log["files"]}[f"raw/{DAY}/{name}"]
    assert entry["status"] == "failed_threshold"
    assert entry["rows_read"] == e2e.result.manifests[name].rows
    assert float(found.group(1)) == pytest.approx(100 * entry["rows_rejected"] / entry["rows_read"],
                                                  abs=0.005)
    # The good files keep their entries; nothing of the failed file reached the warehouse.
    assert {f["status"] for k, f in {f["source_key"]: f for f in log["files"]}.items()
            if k != f"raw/{DAY}/{name}"} == {"ok"}
    after = e2e.warehouse_counts()
    assert after.pop("CHANNEL", 0) == 0
    assert after == counts_before


def test_the_whole_module_stays_within_its_time_budget(e2e):
    spent = sum(v for k, v in e2e.result.seconds.items() if k != "module")
    assert spent < BUDGET_S, f"the local e2e took {spent:.0f} s: {e2e.result.seconds}"
