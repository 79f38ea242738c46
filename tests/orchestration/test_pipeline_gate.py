"""The DAG's quality gate and the gold and load requests that follow it, as plain functions."""

from __future__ import annotations

import json

import pytest

from m7etl.orchestration.gate import (
    gold_results,
    load_request,
    quality_gate,
    silver_to_gold_payloads,
)
from m7etl.orchestration.payloads import SilverToGoldRequest


def summary(name: str, *, dataset: str | None = "Device", status: str = "ok", read: int = 100,
            rejected: int = 0, warned: int = 0, reason: str | None = None,
            day: str = "20250501") -> dict:
    """A raw_to_silver answer (RawToSilverSummary's fields), numbers given by the test."""
    return {"bucket": "bkt", "source_key": f"raw/{day}/{name}", "dataset": dataset, "date": day,
            "status": status, "reason": reason, "warning": False, "rows_read": read,
            "rows_valid": read - rejected, "rows_rejected": rejected, "rows_warned": warned,
            "rejected_pct": round(100 * rejected / read, 2) if read else 0.0,
            "warned_pct": round(100 * warned / read, 2) if read else 0.0, "bytes_read": 1000,
            "missing_optional_columns": 0, "extra_columns": 0, "outputs": {}, "duration_s": 0.1}


RESULTS = [
    summary("Device_20250501.csv", read=200, rejected=2, warned=30),       # 1% rejected, 15% warned
    summary("Channel_20250501.csv", dataset="Channel", status="failed_threshold", read=200,
            rejected=40, reason="20.00% of rows rejected, above the error threshold of 5.0%"),
    summary("EPG_20250501.csv", dataset="EPG", read=100, warned=5),
    summary("Billing_20250501.csv", dataset=None, status="quarantined", read=0,
            reason="unknown_dataset: no contract"),
    summary("Device_20250430.csv", read=100, day="20250430"),
]
PLANNED = [r["source_key"] for r in RESULTS] + ["raw/20250501/Viewing_20250501.csv"]


def gate(results=RESULTS, planned=PLANNED, error=5.0, warning=10.0):
    return quality_gate(planned, results, error_threshold=error, warning_threshold=warning)


def test_a_file_over_the_error_threshold_is_stopped_and_named_and_the_rest_pass():
    result = gate()
    assert result.passed == ["raw/20250430/Device_20250430.csv", "raw/20250501/Device_20250501.csv",
                             "raw/20250501/EPG_20250501.csv"]
    assert result.failed == [
        {"source_key": "raw/20250501/Billing_20250501.csv", "dataset": None, "status": "quarantined",
         "rejected_pct": 0.0, "reason": "unknown_dataset: no contract"},
        {"source_key": "raw/20250501/Channel_20250501.csv", "dataset": "Channel",
         "status": "failed_threshold", "rejected_pct": 20.0,
         "reason": "20.00% of rows rejected, above the error threshold of 5.0%"}]


def test_a_promoted_file_over_the_threshold_still_fails_the_gate():
    """The function applies the payload's threshold; should it not, the gate still does."""
    result = gate([summary("Device_20250501.csv", read=100, rejected=8)],
                  ["raw/20250501/Device_20250501.csv"])
    assert result.passed == []
    assert result.failed[0]["reason"] == "8.00% of rows rejected, above the error threshold of 5.0%"


def test_warned_rows_over_the_warning_threshold_are_reported_with_the_runs_share():
    result = gate()
    assert result.warned == [{"source_key": "raw/20250501/Device_20250501.csv", "dataset": "Device",
                              "warned_pct": 15.0}]
    assert (result.rows_read, result.rows_warned) == (600, 35)
    assert result.warned_share == 5.83  # 35 of 600


def test_a_planned_file_without_an_answer_is_reported_as_not_processed():
    assert gate().not_processed == ["raw/20250501/Viewing_20250501.csv"]


def test_gold_is_rebuilt_for_every_dataset_and_day_touched_even_by_a_failed_file():
    assert gate().gold == [("Channel", "20250501"), ("Device", "20250430"), ("Device", "20250501"),
                           ("EPG", "20250501")]


def test_the_gate_reads_the_json_text_the_operator_returns():
    assert gate([json.dumps(r) for r in RESULTS]).to_dict() == gate().to_dict()


def test_an_answer_missing_a_field_is_an_error_not_a_pass():
    broken = dict(RESULTS[0])
    del broken["rows_read"]
    with pytest.raises(KeyError):
        gate([broken])


def test_the_report_lines():
    assert gate().report() == [
        "3 file(s) passed, 2 failed the gate (error_threshold 5.0%).",
        "  FAILED raw/20250501/Billing_20250501.csv: unknown_dataset: no contract",
        "  FAILED raw/20250501/Channel_20250501.csv: 20.00% of rows rejected, above the error "
        "threshold of 5.0%",
        "Warned rows: 35 of 600 (5.83%); 1 file(s) over warning_threshold 10.0%.",
        "  WARNING raw/20250501/Device_20250501.csv: 15.0% warned",
        "1 planned file(s) have no result (their raw_to_silver task failed): "
        "raw/20250501/Viewing_20250501.csv"]


def test_gold_payloads_are_what_the_function_parses():
    payloads = silver_to_gold_payloads([("EPG", "20250501"), ("Device", "20250501")], "bkt")
    assert [SilverToGoldRequest.parse(json.loads(p), {"Device", "EPG"}) for p in payloads] == [
        SilverToGoldRequest("Device", "20250501", "bkt"), SilverToGoldRequest("EPG", "20250501", "bkt")]


def test_one_glue_run_loads_every_day_and_dataset_rebuilt():
    request = load_request([("Device", "20250501"), ("EPG", "20250430"), ("Device", "20250430")])
    assert request.script_args() == {"--days": "20250430,20250501", "--datasets": "Device,EPG"}


def test_gold_results_are_checked_against_the_contract():
    answer = {"dataset": "Device", "date": "20250501", "gold_key": "gold/Device_20250501.parquet",
              "status": "ok", "rows_in": 6, "rows_out": 5, "duration_s": 0.1, "rows_superseded": 1,
              "silver_files": 1, "bucket": "bkt"}
    assert gold_results([json.dumps(answer)]) == [answer]
    with pytest.raises(KeyError):
        gold_results([{"dataset": "Device"}])
