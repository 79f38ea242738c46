"""The end of a DAG run as plain functions: the day's log merged, the outcome, the alert,
and what a failed invocation or Glue run means."""

from __future__ import annotations

import json

import pytest

from m7etl.core.execution_log import build_execution_log, merge_execution_log
from m7etl.orchestration.failures import function_failure, glue_failure, invoke_error
from m7etl.orchestration.run_log import Outcome, day_logs, failed_tasks, file_entry


def file(name: str, read: int, rejected: int, status: str = "ok", day: str = "20250501",
         warning: bool = False) -> dict:
    return {"source_key": f"raw/{day}/{name}", "dataset": name.split("_")[0], "date": day,
            "rows_read": read, "rows_valid": read - rejected, "rows_rejected": rejected,
            "rows_warned": 0, "status": status, "warning": warning}


def log(run_id: str, files: list[dict], gold: list[dict] | None = None, **extra) -> dict:
    return build_execution_log(run_id=run_id, day="20250501", started_at=f"{run_id}-start",
                               finished_at=f"{run_id}-end", parameters={"run": run_id},
                               files=files, gold=gold or [], **extra)


EARLIER = log("r1", [file("Device_20250501.csv", 100, 2),
                     file("EPG_20250501.csv", 50, 10, "failed_threshold")],
              [{"dataset": "Device", "date": "20250501", "rows_out": 98},
               {"dataset": "EPG", "date": "20250501", "rows_out": 0}],
              ingested=[{"source_key": "landing/Device_20250501.csv", "status": "raw"}],
              load=[{"dataset": "Device", "day": "20250501", "status": "loaded"}])


# -- merging ---------------------------------------------------------------------------
def test_a_later_run_keeps_what_earlier_runs_recorded():
    later = log("r2", [file("EPG_20250501.csv", 60, 1), file("Channel_20250501.csv", 20, 0)],
                [{"dataset": "EPG", "date": "20250501", "rows_out": 59}])
    merged = merge_execution_log(EARLIER, later)
    assert [(f["source_key"], f["rows_read"], f["status"]) for f in merged["files"]] == [
        ("raw/20250501/Channel_20250501.csv", 20, "ok"),
        ("raw/20250501/Device_20250501.csv", 100, "ok"),   # from r1, not re-processed
        ("raw/20250501/EPG_20250501.csv", 60, "ok")]       # r2's replaces r1's
    assert merged["gold"] == [{"dataset": "Device", "date": "20250501", "rows_out": 98},
                              {"dataset": "EPG", "date": "20250501", "rows_out": 59}]
    assert merged["totals"] == {"rows_read": 180, "rows_valid": 177, "rows_rejected": 3,
                                "rows_warned": 0, "lines_blank": 0, "files": 3, "files_ok": 3,
                                "files_failed_threshold": 0, "files_quarantined": 0,
                                "files_warning": 0}
    assert merged["status"] == "ok"
    assert merged["ingested"] == EARLIER["ingested"]
    assert merged["load"] == EARLIER["load"]
    assert (merged["run_id"], merged["started_at"], merged["parameters"]) == ("r2", "r2-start", {"run": "r2"})
    assert merged["runs"] == [{"run_id": "r1", "started_at": "r1-start", "finished_at": "r1-end"},
                              {"run_id": "r2", "started_at": "r2-start", "finished_at": "r2-end"}]


def test_status_is_recomputed_over_the_merged_files():
    later = log("r2", [file("Channel_20250501.csv", 20, 0)])
    assert later["status"] == "ok"
    assert merge_execution_log(EARLIER, later)["status"] == "warning"  # r1's EPG still failed


def test_merging_again_keeps_one_entry_per_run():
    first = merge_execution_log(None, EARLIER)
    assert first["runs"] == [{"run_id": "r1", "started_at": "r1-start", "finished_at": "r1-end"}]
    second = merge_execution_log(first, log("r2", []))
    retried = merge_execution_log(second, log("r2", []))  # the log task ran again
    assert [r["run_id"] for r in retried["runs"]] == ["r1", "r2"]
    assert retried["files"] == EARLIER["files"]


def test_new_load_entries_replace_their_dataset_only():
    later = log("r2", [], load=[{"dataset": "EPG", "day": "20250501", "status": "loaded"}])
    assert merge_execution_log(EARLIER, later)["load"] == [
        {"dataset": "Device", "day": "20250501", "status": "loaded"},
        {"dataset": "EPG", "day": "20250501", "status": "loaded"}]


def test_a_log_of_another_day_is_not_merged():
    other = dict(EARLIER, day="20250430")
    later = log("r2", [file("Channel_20250501.csv", 20, 0)])
    assert merge_execution_log(other, later) == {**later, "runs": [
        {"run_id": "r2", "started_at": "r2-start", "finished_at": "r2-end"}]}


def test_something_that_is_not_a_log_is_refused():
    with pytest.raises(ValueError, match="field 'files' is not a list"):
        merge_execution_log({"day": "20250501", "files": "oops"}, log("r2", []))
    with pytest.raises(ValueError, match="a JSON list, not an object"):
        merge_execution_log([], log("r2", []))


# -- this run's logs ---------------------------------------------------------------------
def test_one_log_per_day_touched_with_the_local_logs_fields():
    files = [file("Device_20250501.csv", 10, 1), file("Device_20250430.csv", 5, 0, day="20250430")]
    gold = [{"dataset": "Device", "date": "20250501", "rows_out": 9}]
    logs = day_logs(run_id="r9", started_at="s", finished_at="f", error_threshold=5.0,
                    warning_threshold=10.0, storage_url="s3://bkt", files=files, gold=gold)
    assert sorted(logs) == ["20250430", "20250501"]
    day = logs["20250501"]
    assert list(day) == ["version", "run_id", "day", "started_at", "finished_at", "status",
                         "parameters", "totals", "ingested", "files", "gold"]
    assert day["parameters"] == {"error_threshold": 5.0, "warning_threshold": 10.0,
                                 "days": ["20250430", "20250501"], "storage": "s3://bkt"}
    assert [f["source_key"] for f in day["files"]] == ["raw/20250501/Device_20250501.csv"]
    assert day["gold"] == gold and logs["20250430"]["gold"] == []


def test_a_files_entry_is_its_report_when_read_else_the_summary_without_the_bucket():
    summary = {"bucket": "bkt", "source_key": "raw/20250501/a.csv", "rows_read": 3, "extra_columns": 1}
    report = {"source_key": "raw/20250501/a.csv", "rows_read": 3, "extra_columns": ["x"],
              "dialect": {"encoding": "utf-8"}}
    assert file_entry(summary, report) == report
    assert file_entry(summary, None) == {"source_key": "raw/20250501/a.csv", "rows_read": 3,
                                         "extra_columns": 1}
    assert file_entry(summary, {"source_key": "raw/20250501/other.csv"})["extra_columns"] == 1


# -- outcome and alert -------------------------------------------------------------------
STATES = {"plan": "success", "raw_to_silver_0": "success", "raw_to_silver_1": "failed",
          "quality_gate": "success", "silver_to_gold_0": "success", "silver_to_gold_1": "failed",
          "gold_to_snowflake": "upstream_failed", "write_execution_log": "success",
          "notify_failure": "running", "finish": "failed"}
LABELS = {"raw_to_silver": ["raw/20250501/Device_20250501.csv", "raw/20250501/EPG_20250501.csv"],
          "silver_to_gold": ["Device 20250501", "EPG 20250501"]}


def test_failed_tasks_are_named_by_their_file_or_dataset_and_day_in_dag_order():
    found = failed_tasks(STATES, LABELS, ignore=("finish",))
    assert [(f.task_id, f.map_index, f.name) for f in found] == [
        ("raw_to_silver", 1, "raw_to_silver[1] raw/20250501/EPG_20250501.csv"),
        ("silver_to_gold", 1, "silver_to_gold[1] EPG 20250501")]
    assert [f.name for f in failed_tasks({"plan": "failed", "finish": "failed"})] == ["plan", "finish"]


OUTCOME = Outcome(
    run_id="s3_20250501_ab12", environment="test",
    failed=["raw_to_silver[1] raw/20250501/EPG_20250501.csv"],
    errors={"raw_to_silver[1] raw/20250501/EPG_20250501.csv":
            "Lambda m7-etl-raw-to-silver-test failed for raw/20250501/EPG_20250501.csv: "
            "TransientStorageError: S3 is busy"},
    gate_failures=[{"source_key": "raw/20250501/Channel_20250501.csv",
                    "reason": "20.00% of rows rejected, above the error threshold of 5.0%"}],
    error_threshold=5.0, log_keys=["logs/pipeline_execution_20250501.json"], bucket="bkt")


def test_the_alert_names_the_run_the_failed_tasks_the_gate_files_and_the_log():
    assert OUTCOME.subject() == "m7etl test: m7_etl_pipeline run failed"
    assert OUTCOME.message() == "\n".join([
        "DAG m7_etl_pipeline run s3_20250501_ab12 failed (environment test).",
        "",
        "Failed tasks:",
        "  - raw_to_silver[1] raw/20250501/EPG_20250501.csv: Lambda m7-etl-raw-to-silver-test "
        "failed for raw/20250501/EPG_20250501.csv: TransientStorageError: S3 is busy",
        "",
        "Files that failed the quality gate (error_threshold 5.0%):",
        "  - raw/20250501/Channel_20250501.csv: 20.00% of rows rejected, above the error "
        "threshold of 5.0%",
        "",
        "Execution log: s3://bkt/logs/pipeline_execution_20250501.json",
        "Task logs: Airflow UI > DAG m7_etl_pipeline > this run (or CloudWatch "
        "airflow-<environment>-Task)."])
    assert OUTCOME.summary() == ("Run s3_20250501_ab12 failed: 1 task(s) failed: raw_to_silver[1] "
                                 "raw/20250501/EPG_20250501.csv; 1 file(s) failed the quality "
                                 "gate: Channel_20250501.csv.")


def test_a_clean_run_is_ok():
    clean = Outcome(run_id="r", environment="test")
    assert clean.ok and clean.summary() == "Run r succeeded."
    assert not OUTCOME.ok


# -- failures ---------------------------------------------------------------------------
def test_a_retryable_function_error_says_so():
    answer = json.dumps({"errorType": "TransientStorageError", "errorMessage": "S3 is busy with "
                         "reading s3://bkt/raw/x.csv (SlowDown). Retry in a moment.",
                         "stackTrace": ["..."]})
    failure = function_failure("m7-etl-raw-to-silver-test", "raw/20250501/x.csv", answer)
    assert failure.retryable and failure.error_type == "TransientStorageError"
    assert failure.message == ("Lambda m7-etl-raw-to-silver-test failed for raw/20250501/x.csv: "
                               "TransientStorageError: S3 is busy with reading s3://bkt/raw/x.csv "
                               "(SlowDown). Retry in a moment.")


@pytest.mark.parametrize("error_type", ["EventError", "StorageError", "ContractError",
                                        "Sandbox.Timedout", "Runtime.ExitError", "MemoryError"])
def test_other_function_errors_fail_at_once(error_type):
    answer = json.dumps({"errorType": error_type, "errorMessage": "x"}).encode()
    failure = function_failure("fn", "work", answer)
    assert not failure.retryable and failure.message == f"Lambda fn failed for work: {error_type}: x"


def test_an_unreadable_error_answer_is_still_named():
    assert function_failure("fn", "w", "Internal failure").message == \
        "Lambda fn failed for w: Unhandled: Internal failure"


def test_a_refused_invoke_is_retried_when_throttled_and_not_when_missing():
    throttled = invoke_error("fn", "w", "TooManyRequestsException", "Rate exceeded")
    assert throttled.retryable and throttled.message == \
        "Lambda fn could not be invoked for w: TooManyRequestsException: Rate exceeded Retrying."
    missing = invoke_error("fn", "w", "ResourceNotFoundException", "Function not found: fn")
    assert not missing.retryable and missing.message.endswith(
        "Deploy the stack or check the Airflow variable 'environment'.")


def test_a_stopped_glue_run_is_a_failure_with_a_reason():
    assert glue_failure("job", "jr_1", "STOPPED", None) == \
        "Glue job job run jr_1 ended STOPPED: the run was stopped before it finished"
    assert glue_failure("job", "jr_1", "FAILED", "LoadError: 1 of 4 load(s) failed") == \
        "Glue job job run jr_1 ended FAILED: LoadError: 1 of 4 load(s) failed"
