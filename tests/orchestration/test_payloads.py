"""The Lambda payloads and results (the DAG's XCom contract): parse, to_payload, summaries."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from m7etl.core.raw_to_silver import FileResult
from m7etl.core.silver_to_gold import GoldResult
from m7etl.exceptions import ConfigurationError
from m7etl.orchestration.payloads import (
    EventError,
    MaintenanceRequest,
    RawToSilverRequest,
    RawToSilverSummary,
    SilverToGoldRequest,
    SilverToGoldSummary,
    short,
)

KEY = "raw/20250501/Device_20250501.csv"
DATASETS = ("Device", "EPG")


@pytest.fixture(autouse=True)
def no_settings(monkeypatch):
    """No template settings: what a payload says must be enough."""
    for name in ("M7_DATA_BUCKET", "M7_ERROR_THRESHOLD", "M7_WARNING_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)


# -- raw_to_silver ---------------------------------------------------------------------
def test_raw_to_silver_payload_is_the_documented_dict_and_parses_back():
    request = RawToSilverRequest(KEY, "m7-etl-data-solocco-prod", 2.5, 7)
    assert request.to_payload() == {"key": KEY, "bucket": "m7-etl-data-solocco-prod",
                                    "error_threshold": 2.5, "warning_threshold": 7}
    assert RawToSilverRequest.parse(request.to_payload()) == request


def test_raw_to_silver_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("M7_DATA_BUCKET", "env-bucket")
    monkeypatch.setenv("M7_ERROR_THRESHOLD", "3")
    parsed = RawToSilverRequest.parse({"key": KEY})
    assert (parsed.bucket, parsed.error_threshold, parsed.warning_threshold) == (
        "env-bucket", 3.0, 10.0)
    assert RawToSilverRequest.parse({"key": KEY, "bucket": "given"}).bucket == "given"


def test_raw_to_silver_without_bucket_anywhere_names_the_variable():
    with pytest.raises(ConfigurationError, match="M7_DATA_BUCKET is not set"):
        RawToSilverRequest.parse({"key": KEY})


@pytest.mark.parametrize(("value", "problem"), [("five", "'five' is not a number"),
                                              ("150", "150 is not a percentage"),
                                              ("-1", "-1 is not a percentage")])
def test_a_bad_threshold_setting_is_a_configuration_error(monkeypatch, value, problem):
    monkeypatch.setenv("M7_WARNING_THRESHOLD", value)
    with pytest.raises(ConfigurationError, match=f"M7_WARNING_THRESHOLD={problem}"):
        RawToSilverRequest.parse({"key": KEY, "bucket": "b"})


@pytest.mark.parametrize(("event", "field", "problem"), [
    ({"key": "raw/2025050/Device.csv"}, "key", "must be a raw/YYYYMMDD/<file> key"),
    ({"key": "raw/20250501/sub/Device.csv"}, "key", "must be a raw/YYYYMMDD/<file> key"),
    ({"key": ""}, "key", "must be a non-empty string"),
    ({"key": KEY, "bucket": 7}, "bucket", "must be a non-empty string"),
    ({"key": KEY, "bucket": "b", "error_threshold": True}, "error_threshold",
     "must be a number from 0 to 100, got True"),
    ({"key": KEY, "bucket": "b", "warning_threshold": 100.5}, "warning_threshold",
     "must be a number from 0 to 100, got 100.5"),
    ({"key": KEY, "Key": KEY}, "Key", "is not a known field (allowed: key, bucket, "
                                      "error_threshold, warning_threshold)"),
    (None, "(event)", "must be a JSON object, got NoneType"),
])
def test_raw_to_silver_refuses_naming_the_field(event, field, problem):
    with pytest.raises(EventError) as info:
        RawToSilverRequest.parse(event)
    assert info.value.field == field and f"field '{field}' {problem}" in str(info.value)
    assert not info.value.retryable


def test_thresholds_at_the_bounds_are_accepted():
    parsed = RawToSilverRequest.parse({"key": KEY, "bucket": "b", "error_threshold": 0,
                                       "warning_threshold": 100})
    assert (parsed.error_threshold, parsed.warning_threshold) == (0.0, 100.0)


def _file_result(**changes) -> FileResult:
    base = FileResult(
        source_key=KEY, dataset="Device", date="20250501", rows_read=10, rows_valid=8,
        rows_rejected=2, rows_warned=1, rejected_pct=20.0, warned_pct=10.0,
        status="failed_threshold", reason="too many rejects", warning=True, bytes_read=1919,
        dialect={"delimiter": ";", "encoding": "utf-8"},
        missing_optional_columns=["region", "status"], extra_columns=["colour"],
        outputs={"rejects": "silver/20250501/_rejects/Device/Device_20250501.parquet"},
        duration_s=0.5, lines_read=12, lines_blank=1)
    return dataclasses.replace(base, **changes)


def test_raw_to_silver_summary_drops_the_bulky_parts():
    summary = RawToSilverSummary.from_result(_file_result(), "bkt").to_dict()
    assert summary == {
        "bucket": "bkt", "source_key": KEY, "dataset": "Device", "date": "20250501",
        "status": "failed_threshold", "reason": "too many rejects", "warning": True,
        "rows_read": 10, "rows_valid": 8, "rows_rejected": 2, "rows_warned": 1,
        "rejected_pct": 20.0, "warned_pct": 10.0, "bytes_read": 1919,
        "missing_optional_columns": 2, "extra_columns": 1,
        "outputs": {"rejects": "silver/20250501/_rejects/Device/Device_20250501.parquet"},
        "duration_s": 0.5, "lines_read": 12, "lines_blank": 1}


def test_raw_to_silver_summary_covers_every_file_result_field_but_the_dialect():
    """A field added to FileResult must be added to the summary (or excluded here) on purpose."""
    summary = {f.name for f in dataclasses.fields(RawToSilverSummary)}
    result = {f.name for f in dataclasses.fields(FileResult)}
    assert summary == result - {"dialect"} | {"bucket"}


def test_raw_to_silver_summary_cuts_a_long_reason_and_reads_back():
    summary = RawToSilverSummary.from_result(_file_result(reason="x" * 900), "bkt")
    assert summary.reason == "x" * 499 + "…"
    assert RawToSilverSummary.from_dict(summary.to_dict()) == summary
    with pytest.raises(KeyError, match="duration_s"):
        RawToSilverSummary.from_dict({k: v for k, v in summary.to_dict().items()
                                      if k != "duration_s"})
    # A field added later (a raw_to_silver deployed before it answers without it): its default.
    older = {k: v for k, v in summary.to_dict().items() if k not in ("lines_read", "lines_blank")}
    assert (RawToSilverSummary.from_dict(older).lines_read,
            RawToSilverSummary.from_dict(older).lines_blank) == (0, 0)


def test_short_keeps_text_at_the_limit():
    assert short("a" * 500) == "a" * 500 and short(None) is None
    assert short("abcdef", limit=4) == "abc…"


# -- silver_to_gold --------------------------------------------------------------------
def test_silver_to_gold_payload_round_trip():
    request = SilverToGoldRequest("EPG", "20250502", "bkt")
    assert request.to_payload() == {"dataset": "EPG", "date": "20250502", "bucket": "bkt"}
    assert SilverToGoldRequest.parse(request.to_payload(), DATASETS) == request


def test_silver_to_gold_bucket_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("M7_DATA_BUCKET", "env-bucket")
    parsed = SilverToGoldRequest.parse({"dataset": "Device", "date": "20250501"}, DATASETS)
    assert parsed == SilverToGoldRequest("Device", "20250501", "env-bucket")


@pytest.mark.parametrize(("event", "field", "problem"), [
    ({"dataset": "Devices", "date": "20250501"}, "dataset",
     "names no known dataset ('Devices'; known: Device, EPG)"),
    ({"dataset": "Device", "date": "20251301"}, "date", "not a real calendar date"),
    ({"dataset": "Device", "date": 20250501}, "date", "must be a non-empty string"),
    ({"dataset": "Device", "date": "20250501", "bucket": ""}, "bucket", "must be a non-empty"),
])
def test_silver_to_gold_refuses_naming_the_field(event, field, problem):
    with pytest.raises(EventError) as info:
        SilverToGoldRequest.parse(event, DATASETS)
    assert info.value.field == field and problem in str(info.value)


def test_silver_to_gold_summary_counts_the_silver_files():
    result = GoldResult("Device", "20250501", "gold/Device_20250501.parquet", "ok", rows_in=7,
                        rows_out=5, silver_keys=["silver/a.parquet", "silver/b.parquet"],
                        duration_s=0.25, rows_superseded=2)
    summary = SilverToGoldSummary.from_result(result, "bkt")
    assert summary.to_dict() == {
        "dataset": "Device", "date": "20250501", "gold_key": "gold/Device_20250501.parquet",
        "status": "ok", "rows_in": 7, "rows_out": 5, "duration_s": 0.25, "rows_superseded": 2,
        "silver_files": 2, "bucket": "bkt"}
    assert SilverToGoldSummary.from_dict(summary.to_dict()) == summary


def test_silver_to_gold_summary_covers_every_gold_result_field():
    """What GoldResult.to_dict() says, silver_keys counted; a new field must be added here."""
    result = GoldResult("Device", "20250501", None, "no_input")
    summary = {f.name for f in dataclasses.fields(SilverToGoldSummary)}
    assert summary == set(result.to_dict()) - {"silver_keys"} | {"silver_files", "bucket"}


# -- maintenance -----------------------------------------------------------------------
def test_maintenance_payload_round_trip():
    request = MaintenanceRequest(True, datetime(2025, 6, 1, 3, 4, 5, tzinfo=UTC))
    assert request.to_payload() == {"dry_run": True, "now": "2025-06-01T03:04:05+00:00"}
    assert MaintenanceRequest.parse(request.to_payload()) == request


def test_maintenance_now_is_utc_unless_it_says_otherwise():
    assert MaintenanceRequest.parse({"now": "2025-06-01"}).now == datetime(2025, 6, 1, tzinfo=UTC)
    assert MaintenanceRequest.parse({"now": "2025-06-01T10:00:00Z"}).now.tzinfo is not None
    paris = MaintenanceRequest.parse({"now": "2025-06-01T10:00:00+02:00"}).now
    assert paris.utcoffset() == timedelta(hours=2)
    assert paris == datetime(2025, 6, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize("event", [None, {}, {"detail-type": "Scheduled Event", "source":
                                             "aws.events", "detail": {}}])
def test_maintenance_defaults_and_the_schedule_are_a_real_run_now(event):
    before = datetime.now(UTC)
    parsed = MaintenanceRequest.parse(event)
    assert parsed.dry_run is False and before <= parsed.now <= datetime.now(UTC)


@pytest.mark.parametrize(("event", "field"), [
    ({"dry_run": 1}, "dry_run"), ({"now": "yesterday"}, "now"), ({"now": ""}, "now"),
    ({"detail-type": "Other"}, "detail-type"), ("dry_run", "(event)"),
])
def test_maintenance_refuses_naming_the_field(event, field):
    with pytest.raises(EventError) as info:
        MaintenanceRequest.parse(event)
    assert info.value.field == field
