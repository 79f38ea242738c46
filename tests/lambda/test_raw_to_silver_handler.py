"""The raw_to_silver handler against a moto S3: objects written, summary returned, metrics."""

from __future__ import annotations

import io
import json

import pytest
import raw_to_silver
from lambda_testkit import BUCKET, device_csv, emf_records, ensure_empty_bucket, keys, load_event, put

from m7etl.orchestration.payloads import EventError

KEY = "raw/20250501/Device_20250501.csv"


def test_valid_file_goes_to_silver_with_a_compact_summary(s3, context, capsys):
    put(s3, KEY, device_csv(rows=20))
    out = raw_to_silver.handler(load_event("raw_to_silver.json"), context)
    assert out["status"] == "ok" and out["dataset"] == "Device" and out["bucket"] == BUCKET
    assert (out["rows_read"], out["rows_valid"], out["rows_rejected"]) == (20, 20, 0)
    assert out["outputs"] == {"silver": "silver/20250501/Device/Device_20250501.parquet",
                              "report": "silver/20250501/_reports/Device/Device_20250501.json"}
    assert "dialect" not in out and len(json.dumps(out)) < 2048
    assert keys(s3, "silver/") == sorted(out["outputs"].values())
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=out["outputs"]["report"])["Body"].read())
    assert report["dialect"]["delimiter"] == ","  # the details live in the report object
    (emf,) = emf_records(capsys.readouterr().out)
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "M7Etl"
    assert sorted(emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == ["dataset", "service"]
    assert (emf["dataset"], emf["RowsRead"], emf["RowsValid"], emf["RowsRejected"],
            emf["RejectedPercent"]) == ("Device", 20.0, 20.0, 0.0, 0.0)


def test_rejected_rows_above_the_threshold_fail_the_gate(s3, context, capsys):
    put(s3, "raw/20250501/Device_20250501.csv.gz", device_csv(rows=8, bad=2), gz=True)
    out = raw_to_silver.handler({"key": "raw/20250501/Device_20250501.csv.gz",
                                 "error_threshold": 10}, context)
    assert out["status"] == "failed_threshold" and out["rejected_pct"] == 20.0
    assert "above the error threshold of 10.0%" in out["reason"]
    assert "silver" not in out["outputs"]
    assert keys(s3, "silver/20250501/_rejects/") == [out["outputs"]["rejects"]]
    (emf,) = emf_records(capsys.readouterr().out)
    assert (emf["RowsRejected"], emf["RejectedPercent"]) == (2.0, 20.0)


def test_threshold_comes_from_the_environment_when_not_in_the_event(s3, context, monkeypatch):
    monkeypatch.setenv("M7_ERROR_THRESHOLD", "25")
    put(s3, KEY, device_csv(rows=8, bad=2))
    assert raw_to_silver.handler({"key": KEY}, context)["status"] == "ok"


def test_unknown_dataset_is_quarantined_not_raised(s3, context):
    put(s3, "raw/20250501/Mystery_20250501.csv", b"a,b\n1,2\n")
    out = raw_to_silver.handler({"key": "raw/20250501/Mystery_20250501.csv"}, context)
    assert out["status"] == "quarantined" and out["dataset"] is None
    assert keys(s3, "quarantine/") == ["quarantine/20250501/Mystery_20250501.csv",
                                       "quarantine/20250501/Mystery_20250501.csv.reason.json"]


def test_bucket_in_the_event_wins(s3, context):
    ensure_empty_bucket(s3, "other-bucket")
    s3.put_object(Bucket="other-bucket", Key=KEY, Body=device_csv(rows=3))
    out = raw_to_silver.handler({"key": KEY, "bucket": "other-bucket"}, context)
    assert out["bucket"] == "other-bucket" and out["rows_valid"] == 3


@pytest.mark.parametrize(("event", "field", "problem"), [
    ({}, "key", "is missing"),
    ({"key": 42}, "key", "must be a non-empty string"),
    ({"key": "landing/Device_20250501.csv"}, "key", "must be a raw/YYYYMMDD/<file> key"),
    ({"key": KEY, "error_threshold": "5"}, "error_threshold", "must be a number from 0 to 100"),
    ({"key": KEY, "warning_threshold": 150}, "warning_threshold", "must be a number"),
    ({"key": KEY, "treshold": 5}, "treshold", "is not a known field"),
    (["not", "an", "object"], "(event)", "must be a JSON object"),
])
def test_malformed_payload_names_the_field(lambda_env, context, event, field, problem):
    with pytest.raises(EventError) as info:
        raw_to_silver.handler(event, context)
    assert info.value.field == field
    assert problem in str(info.value) and f"field '{field}'" in str(info.value)
    assert not info.value.retryable


def test_logs_are_structured_json(s3, context):
    put(s3, KEY, device_csv(rows=2))
    stream = io.StringIO()
    previous = raw_to_silver.logger.registered_handler.setStream(stream)
    try:
        raw_to_silver.handler({"key": KEY}, context)
    finally:
        raw_to_silver.logger.registered_handler.setStream(previous)
    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    (entry,) = [e for e in logs if e["message"] == "raw file processed"]
    assert entry["level"] == "INFO" and entry["source_key"] == KEY
    assert entry["function_request_id"] == context.aws_request_id and entry["rows_read"] == 2


class _TimesOut:
    """A GetObject body that raises botocore's ReadTimeoutError after ``after`` bytes, where
    the real StreamingBody raises it when the connection stalls (the rest is moto's)."""

    def __init__(self, body, after: int):
        self.body, self.left = body, after

    def read(self, n=None):
        from botocore.exceptions import ReadTimeoutError

        if self.left <= 0:
            raise ReadTimeoutError(endpoint_url="http://s3")
        data = self.body.read(self.left if n is None else min(n, self.left))
        self.left -= len(data)
        return data

    def close(self):
        self.body.close()


def test_a_read_timeout_fails_the_invocation_retryably_and_moves_nothing(s3, context, monkeypatch):
    from m7etl.exceptions import TransientStorageError
    from m7etl.orchestration import clients
    from m7etl.orchestration.failures import function_failure

    class Stalling:
        def __getattr__(self, name):
            return getattr(s3, name)

        def get_object(self, **kwargs):
            response = s3.get_object(**kwargs)
            response["Body"] = _TimesOut(response["Body"], 300_000)  # past the sniffed head
            return response

    monkeypatch.setitem(clients._clients, "s3", Stalling())
    put(s3, KEY, device_csv(rows=5000))
    stream = io.StringIO()
    previous = raw_to_silver.logger.registered_handler.setStream(stream)
    try:
        with pytest.raises(TransientStorageError) as info:
            raw_to_silver.handler({"key": KEY}, context)
    finally:
        raw_to_silver.logger.registered_handler.setStream(previous)
    assert KEY in str(info.value) and "ReadTimeoutError" in str(info.value)
    assert keys(s3) == [KEY]  # still in raw/, nothing in quarantine or silver
    answer = json.dumps({"errorType": type(info.value).__name__, "errorMessage": str(info.value)})
    assert function_failure("raw_to_silver", KEY, answer).retryable  # the DAG retries it
    (entry,) = [json.loads(line) for line in stream.getvalue().splitlines()
                if '"raw file not processed"' in line]
    assert entry["level"] == "ERROR" and entry["retryable"] is True and entry["source_key"] == KEY
