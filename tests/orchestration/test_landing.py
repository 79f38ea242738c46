"""Filing a batch of S3 records: reading the notification, ingesting, one run per day."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.data_classes import S3Event

from m7etl.core.ingest import ALREADY, IGNORED, INGESTED, QUARANTINED
from m7etl.local.standins.mwaa import MwaaStandin
from m7etl.orchestration import landing, mwaa
from m7etl.orchestration.landing import LandedObject, LandingSettings, file_batch, landed_objects
from m7etl.orchestration.payloads import EventError

EVENTS = Path(__file__).resolve().parents[1] / "events"
BUCKET = "m7-etl-data-solocco-test"
SETTINGS = LandingSettings(BUCKET, "m7-etl-mwaa-test", "m7_etl_pipeline")
DEVICE = (b"device_id,subscriber_id,model,firmware_version,region,activation_date,last_seen_at,"
          b"status,signal_quality_pct\nSTB000000001,SUB00000001,M7-HD100,1.2.3,Bretagne,"
          b"2020-01-01,2025-05-01 10:00:00,active,50\n")


def recorded(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_keys_are_url_decoded_and_fields_read():
    objects = landed_objects(S3Event(recorded("s3_put_multi.json")))
    assert [o.key for o in objects] == [
        "landing/Device_20250501.csv", "landing/EPG_20250501.csv.gz",
        "landing/Mon export du 20250502.csv", "raw/20250501/Device_20250501.csv",
        "landing/Channel_été.csv"]
    assert objects[0] == LandedObject(BUCKET, "landing/Device_20250501.csv", "ObjectCreated:Put",
                                      "2025-05-03T07:15:42.123Z", "0062E9A8B2C1D3E401")
    assert objects[4].event_name == "ObjectCreated:CompleteMultipartUpload"


def test_the_s3_test_event_has_no_records():
    assert landed_objects(S3Event(recorded("s3_test_event.json"))) is None


def test_optional_fields_default_to_empty():
    (obj,) = landed_objects(S3Event({"Records": [{"s3": {"bucket": {"name": BUCKET},
                                                          "object": {"key": "landing/a.csv"}}}]}))
    assert (obj.event_name, obj.event_time, obj.sequencer) == ("", "", "")


@pytest.mark.parametrize(("event", "field"), [
    ([], "(event)"),
    ({"Records": {"s3": {}}}, "Records"),
    ({"Records": ["landing/a.csv"]}, "Records[0]"),
    ({"Records": [{"s3": "x"}]}, "Records[0].s3"),
    ({"Records": [{"s3": {"bucket": {"name": ""}, "object": {"key": "a"}}}]},
     "Records[0].s3.bucket.name"),
    ({"Records": [{"s3": {"bucket": {}, "object": {"key": "a"}}}]}, "Records[0].s3.bucket.name"),
    ({"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": ""}}}]},
     "Records[0].s3.object.key"),
    ({"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": 5}}}]},
     "Records[0].s3.object.key"),
    ({"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": "a"}}}, {"s3": {}}]},
     "Records[1].s3.bucket.name"),
])
def test_a_malformed_notification_names_the_field(event, field):
    with pytest.raises(EventError) as info:
        landed_objects(S3Event(event))
    assert info.value.field == field and not info.value.retryable


@pytest.mark.parametrize(("time", "day"), [
    ("2025-05-03T07:15:42.123Z", "20250503"),
    ("2025-05-03T23:30:00-02:00", "20250504"),  # the UTC day
])
def test_arrival_day_is_the_event_times_utc_day(time, day):
    assert LandedObject(BUCKET, "landing/a.csv", "ObjectCreated:Put", time).arrival_day == day


def test_arrival_day_without_a_readable_time_is_today():
    today = datetime.now(UTC).strftime("%Y%m%d")
    assert LandedObject(BUCKET, "landing/a.csv", "ObjectCreated:Put", "soon").arrival_day == today


# -- file_batch ------------------------------------------------------------------------
@pytest.fixture
def standin():
    server = MwaaStandin(env_name=SETTINGS.mwaa_env_name).start()
    yield server
    server.stop()


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def log():
    logger = logging.getLogger("test_landing")
    logger.setLevel(logging.INFO)
    lines = Lines()
    logger.addHandler(lines)
    yield logger, lines
    logger.removeHandler(lines)


def obj(key: str, seq: str, *, bucket: str = BUCKET, event: str = "ObjectCreated:Put"):
    return LandedObject(bucket, key, event, "2025-05-03T07:15:42Z", seq)


def test_a_batch_is_filed_and_one_run_per_day_requested(local_storage, registry, standin, log):
    logger, lines = log
    for name in ("Device_20250501.csv", "Device_20250502.csv", "Mystery.csv"):
        local_storage.write_bytes(f"landing/{name}", DEVICE)
    batch = [obj("landing/Device_20250501.csv", "01"), obj("landing/Device_20250502.csv", "02"),
             obj("landing/Mystery.csv", "03"), obj("landing/x.csv", "04", bucket="elsewhere"),
             obj("landing/y.csv", "05", event="ObjectRemoved:Delete")]
    result = file_batch(batch, SETTINGS, lambda _bucket: local_storage, registry=registry,
                        client=standin.client(), log=logger)
    assert [f.status for f in result.files] == [INGESTED, INGESTED, QUARANTINED, IGNORED, IGNORED]
    assert result.files[3].reason == "bucket elsewhere is not m7-etl-data-solocco-test"
    assert result.files[4].reason == "event ObjectRemoved:Delete is not a creation"
    assert (result.count(INGESTED), result.count(IGNORED), result.count(ALREADY)) == (2, 2, 0)
    assert local_storage.exists("raw/20250502/Device_20250502.csv")
    assert local_storage.exists("quarantine/20250503/Mystery.csv")  # the arrival day
    assert [t["date"] for t in result.triggers] == ["20250501", "20250502"]
    assert [t["status"] for t in result.triggers] == ["triggered", "triggered"]
    assert result.runs_requested == 2 and result.failure() is None
    confs = sorted((run["conf"]["date"], run["conf"]["raw_keys"]) for run in standin.runs.values())
    assert confs == [("20250501", ["raw/20250501/Device_20250501.csv"]),
                     ("20250502", ["raw/20250502/Device_20250502.csv"])]
    assert [r.getMessage() for r in lines.records] == ["record handled"] * 5 + \
        ["DAG run requested"] * 2
    assert result.to_dict()["records"][0]["target_key"] == "raw/20250501/Device_20250501.csv"


def test_failed_requests_are_collected_then_summed_up(local_storage, registry, standin, log):
    logger, lines = log
    standin.rest_mode = "refuse"
    local_storage.write_bytes("landing/Device_20250501.csv", DEVICE)
    result = file_batch([obj("landing/Device_20250501.csv", "01")], SETTINGS,
                        lambda _bucket: local_storage, registry=registry,
                        client=standin.client(), log=logger)
    assert result.files[0].status == INGESTED  # filed before the trigger failed
    (trigger,) = result.triggers
    assert trigger["status"] == "failed" and "HTTP 400" in trigger["error"]
    assert result.runs_requested == 0
    failure = result.failure()
    assert isinstance(failure, mwaa.TriggerError) and not failure.retryable
    assert str(failure).startswith("1 of 1 DAG run request(s) failed; first: Airflow on "
                                   "m7-etl-mwaa-test refused")
    assert "a retry of this event asks MWAA again" in str(failure)
    assert [r.levelname for r in lines.records] == ["INFO", "ERROR"]


def test_no_mwaa_client_is_made_when_nothing_is_filed(local_storage, registry, monkeypatch):
    def refuse():
        raise AssertionError("no run to ask for, no client to make")

    monkeypatch.setattr(landing.mwaa, "mwaa_client", refuse)
    result = file_batch([obj("raw/20250501/Device_20250501.csv", "01")], SETTINGS,
                        lambda _bucket: local_storage, registry=registry)
    assert [f.status for f in result.files] == [IGNORED]
    assert result.triggers == [] and result.failure() is None
    assert result.to_dict() == {"records": [result.files[0].to_dict()], "triggers": []}


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("M7_DATA_BUCKET", "b")
    monkeypatch.setenv("M7_MWAA_ENV_NAME", "m7-etl-mwaa-prod")
    monkeypatch.delenv("M7_DAG_ID", raising=False)
    assert LandingSettings.from_env() == LandingSettings("b", "m7-etl-mwaa-prod", "m7_etl_pipeline")
    monkeypatch.delenv("M7_MWAA_ENV_NAME")
    with pytest.raises(Exception, match="M7_MWAA_ENV_NAME is not set"):
        LandingSettings.from_env()


def test_a_record_that_fails_for_good_fails_the_event_after_the_others(local_storage, registry,
                                                                       standin, log):
    """Access denied on one move (not retryable): the other record is filed and its run asked
    for, then the invocation fails, so Lambda's retries, the dead-letter queue and the Errors
    alarm see it. Returning success left the object in landing/, where the landing retention
    deleted it unseen."""
    from m7etl.exceptions import StorageError

    logger, _lines = log
    for name in ("Device_20250501.csv", "Device_20250502.csv"):
        local_storage.write_bytes(f"landing/{name}", DEVICE)
    real_move = local_storage.move

    def move(src: str, dst: str) -> None:
        if src.endswith("0502.csv"):
            raise StorageError("Access denied moving landing/Device_20250502.csv.")
        real_move(src, dst)

    local_storage.move = move
    result = file_batch([obj("landing/Device_20250501.csv", "01"),
                         obj("landing/Device_20250502.csv", "02")], SETTINGS,
                        lambda _bucket: local_storage, registry=registry,
                        client=standin.client(), log=logger)
    assert [f.status for f in result.files] == [INGESTED, "failed"]
    assert [t["date"] for t in result.triggers] == ["20250501"]
    failure = result.failure()
    assert isinstance(failure, StorageError) and not failure.retryable
    assert str(failure).startswith("1 of 2 record(s) could not be filed "
                                   "(landing/Device_20250502.csv); first cause: Access denied")
    assert local_storage.exists("landing/Device_20250502.csv")
