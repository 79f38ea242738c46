"""The S3-event handler: real-shaped notifications against moto S3 and the MWAA stand-in."""

from __future__ import annotations

import json

import pytest
import s3_event
from lambda_testkit import BUCKET, device_csv, emf_records, keys, load_event, put

from m7etl.orchestration.mwaa import TriggerError
from m7etl.orchestration.payloads import EventError

EPG = b"programme_id,channel_id,title,category,start_time,end_time\n"


def _landing(s3) -> None:
    put(s3, "landing/Device_20250501.csv", device_csv(rows=3))
    put(s3, "landing/EPG_20250501.csv.gz", EPG, gz=True)
    put(s3, "landing/Mon export du 20250502.csv", b"a,b\n1,2\n")
    put(s3, "raw/20250501/Device_20250501.csv", b"written by us")
    put(s3, "landing/Channel_été.csv", b"a\n1\n")


def test_several_records_are_filed_and_one_run_is_requested_per_day(s3, standin, context, capsys):
    _landing(s3)
    out = s3_event.handler(load_event("s3_put_multi.json"), context)
    by_key = {r["source_key"]: r for r in out["records"]}
    assert by_key["landing/Device_20250501.csv"]["status"] == "raw"
    assert by_key["landing/EPG_20250501.csv.gz"]["target_key"] == "raw/20250501/EPG_20250501.csv.gz"
    # '+' decoded to spaces; no contract matches: quarantined under the day in its name
    odd = by_key["landing/Mon export du 20250502.csv"]
    assert odd["status"] == "quarantined" and "unknown_dataset" in odd["reason"]
    assert odd["target_key"] == "quarantine/20250502/Mon export du 20250502.csv"
    # %-escapes decoded; no day in the name: the event time's day
    assert by_key["landing/Channel_été.csv"]["target_key"] == "quarantine/20250503/Channel_été.csv"
    # our own write under raw/ is not touched
    assert by_key["raw/20250501/Device_20250501.csv"]["status"] == "ignored"
    assert keys(s3, "landing/") == []
    assert keys(s3, "raw/") == ["raw/20250501/Device_20250501.csv",
                                "raw/20250501/EPG_20250501.csv.gz"]
    assert s3.get_object(Bucket=BUCKET, Key="raw/20250501/Device_20250501.csv")["Body"].read() \
        == device_csv(rows=3)
    reason_key = "quarantine/20250502/Mon export du 20250502.csv.reason.json"
    reason = json.loads(s3.get_object(Bucket=BUCKET, Key=reason_key)["Body"].read())
    assert reason["reason"] == "unknown_dataset"

    (trigger,) = out["triggers"]
    assert (trigger["date"], trigger["status"], trigger["method"]) == ("20250501", "triggered",
                                                                       "rest_api")
    (call,) = standin.of_kind("invoke_rest_api")
    assert call.path == "/restapi/m7-etl-mwaa-test"
    assert call.body["Method"] == "POST" and call.body["Path"] == "/dags/m7_etl_pipeline/dagRuns"
    assert call.body["Body"] == {
        "dag_run_id": trigger["dag_run_id"], "logical_date": None,
        "conf": {"date": "20250501", "trigger": "s3_event",
                 "raw_keys": ["raw/20250501/Device_20250501.csv",
                              "raw/20250501/EPG_20250501.csv.gz"]}}
    assert trigger["dag_run_id"].startswith("s3_20250501_")
    assert list(standin.runs) == [("m7_etl_pipeline", trigger["dag_run_id"])]
    (emf,) = emf_records(capsys.readouterr().out)
    assert (emf["FilesIngested"], emf["FilesQuarantined"], emf["FilesIgnored"],
            emf["DagRunsRequested"]) == (2.0, 2.0, 1.0, 1.0)


def test_a_retried_event_is_idempotent(s3, standin, context):
    put(s3, "landing/Device_20250501.csv", device_csv(rows=3))
    event = load_event("s3_put_single.json")
    first = s3_event.handler(event, context)
    again = s3_event.handler(event, context)
    assert first["records"][0]["status"] == "raw"
    assert again["records"][0]["status"] == "already_ingested"
    assert again["records"][0]["target_key"] == "raw/20250501/Device_20250501.csv"
    assert first["triggers"][0]["dag_run_id"] == again["triggers"][0]["dag_run_id"]
    assert again["triggers"][0]["status"] == "already_exists"
    assert len(standin.runs) == 1 and len(standin.of_kind("invoke_rest_api")) == 2
    assert keys(s3) == ["raw/20250501/Device_20250501.csv"]


def test_a_new_upload_of_the_same_name_asks_for_a_new_run(s3, standin, context):
    event = load_event("s3_put_single.json")
    put(s3, "landing/Device_20250501.csv", device_csv(rows=3))
    first = s3_event.handler(event, context)
    event["Records"][0]["s3"]["object"]["sequencer"] = "0062E9A8B2C1D3E4FF"
    put(s3, "landing/Device_20250501.csv", device_csv(rows=4))
    second = s3_event.handler(event, context)
    assert second["records"][0]["status"] == "raw"
    assert first["triggers"][0]["dag_run_id"] != second["triggers"][0]["dag_run_id"]
    assert len(standin.runs) == 2


def test_refused_trigger_fails_the_invocation_after_filing_the_files(s3, standin, context):
    standin.rest_mode = "refuse"
    put(s3, "landing/Device_20250501.csv", device_csv(rows=3))
    with pytest.raises(TriggerError) as info:
        s3_event.handler(load_event("s3_put_single.json"), context)
    assert "m7-etl-mwaa-test" in str(info.value) and "HTTP 400" in str(info.value)
    assert not info.value.retryable
    assert keys(s3) == ["raw/20250501/Device_20250501.csv"]  # filed; a retry only re-triggers
    standin.rest_mode = "accept"
    retry = s3_event.handler(load_event("s3_put_single.json"), context)
    assert retry["triggers"][0]["status"] == "triggered"


@pytest.mark.parametrize("mode", ["unsupported", "denied"])
def test_falls_back_to_the_cli_token(s3, standin, context, monkeypatch, mode):
    import m7etl.orchestration.mwaa

    standin.rest_mode = mode
    monkeypatch.setattr(m7etl.orchestration.mwaa, "urllib_post", standin.http)
    put(s3, "landing/Device_20250501.csv", device_csv(rows=3))
    out = s3_event.handler(load_event("s3_put_single.json"), context)
    (trigger,) = out["triggers"]
    assert (trigger["status"], trigger["method"]) == ("triggered", "cli")
    assert trigger["fallback_reason"]
    assert standin.cli_urls == [f"https://{standin.host}/aws_mwaa/cli"]
    (cli,) = standin.of_kind("cli")
    assert cli.headers["authorization"].startswith("Bearer ")
    assert cli.body.startswith(f"dags trigger m7_etl_pipeline --run-id {trigger['dag_run_id']} ")
    run = standin.runs[("m7_etl_pipeline", trigger["dag_run_id"])]
    assert run["conf"]["raw_keys"] == ["raw/20250501/Device_20250501.csv"]


def test_s3_test_event_is_acknowledged(lambda_env, context):
    assert s3_event.handler(load_event("s3_test_event.json"), context)["test_event"] is True


def test_a_foreign_bucket_is_ignored(s3, standin, context):
    event = load_event("s3_put_single.json")
    event["Records"][0]["s3"]["bucket"]["name"] = "someone-else"
    out = s3_event.handler(event, context)
    assert out["records"][0]["status"] == "ignored" and out["triggers"] == []
    assert standin.requests == []


@pytest.mark.parametrize(("event", "field"), [
    ({"hello": "world"}, "Records"),
    ({"Records": [{"eventName": "ObjectCreated:Put"}]}, "Records[0].s3"),
    ({"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {}}}]}, "Records[0].s3.object.key"),
    # Found by fuzzing: these raised AttributeError ('str' object has no attribute 'get').
    ({"Records": [{"s3": {"bucket": "landing/", "object": {"key": "a.csv"}}}]}, "Records[0].s3.bucket.name"),
    ({"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": "a.csv"}}]}, "Records[0].s3.object.key"),
])
def test_malformed_notification_names_the_field(lambda_env, context, event, field):
    with pytest.raises(EventError) as info:
        s3_event.handler(event, context)
    assert info.value.field == field


def test_missing_mwaa_setting_fails_before_moving_anything(s3, context, monkeypatch):
    monkeypatch.delenv("M7_MWAA_ENV_NAME")
    put(s3, "landing/Device_20250501.csv", device_csv(rows=3))
    with pytest.raises(Exception, match="M7_MWAA_ENV_NAME is not set"):
        s3_event.handler(load_event("s3_put_single.json"), context)
    assert keys(s3) == ["landing/Device_20250501.csv"]


def test_a_record_whose_object_is_gone_does_not_stop_the_others(s3, standin, context, capsys):
    event = load_event("s3_put_single.json")
    names = ["Device_20250501.csv", "Device_20250502.csv", "Device_20250503.csv"]
    template = event["Records"][0]
    event["Records"] = [json.loads(json.dumps(template)) for _ in names]
    for i, (record, name) in enumerate(zip(event["Records"], names, strict=True)):
        record["s3"]["object"].update(key=f"landing/{name}", sequencer=f"0062E9A8B2C1D3E40{i}")
    put(s3, "landing/Device_20250501.csv", device_csv(rows=3))
    put(s3, "landing/Device_20250503.csv", device_csv(rows=3))  # the middle one is gone
    out = s3_event.handler(event, context)
    statuses = [(r["source_key"], r["status"]) for r in out["records"]]
    assert statuses == [("landing/Device_20250501.csv", "raw"),
                        ("landing/Device_20250502.csv", "missing"),
                        ("landing/Device_20250503.csv", "raw")]
    assert "landing/Device_20250502.csv does not exist" in out["records"][1]["reason"]
    assert keys(s3) == ["raw/20250501/Device_20250501.csv", "raw/20250503/Device_20250503.csv"]
    assert sorted(t["date"] for t in out["triggers"]) == ["20250501", "20250503"]
    (emf,) = emf_records(capsys.readouterr().out)
    assert (emf["FilesIngested"], emf["FilesMissing"], emf["FilesFailed"]) == (2.0, 1.0, 0.0)
