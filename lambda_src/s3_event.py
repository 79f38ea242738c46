"""Lambda ``S3EventLambdaFunction``: file new landing/ CSVs under raw/ and start the DAG.

Receives S3 ``ObjectCreated`` notifications (``landing/*.csv`` and ``*.csv.gz``). For each
record: the key is URL-decoded (S3 sends spaces as ``+``), the object is moved to
``raw/YYYYMMDD/`` (day from the file name, else the event time) by copy, verify, delete,
or quarantined with a reason when no contract knows its dataset. Keys outside
``landing/`` are ignored, so the function never reacts to its own writes. Then, once per
day touched, MWAA is asked to run ``$M7_DAG_ID`` with::

    conf = {"date": "YYYYMMDD", "raw_keys": [...], "trigger": "s3_event"}
    dag_run_id = "s3_<YYYYMMDD>_<digest of bucket, keys and S3 sequencers>"

The run id is derived from the event, so a retried or duplicated event asks for the same
run and MWAA answers "already exists" (a success). Moves are idempotent too: an object
already moved reports ``already_ingested`` and its run is (re)requested. A failed trigger
fails the invocation after every record was handled, so Lambda's retry asks again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from lambda_support import EventError, env_text, metrics_namespace, service_name, storage

from m7etl.core.contracts import load_registry
from m7etl.core.ingest import ALREADY, IGNORED, INGESTED, QUARANTINED, IngestResult, ingest
from m7etl.orchestration import mwaa

logger = Logger(service=service_name("s3_event"))
metrics = Metrics(namespace=metrics_namespace(), service=service_name("s3_event"))
DEFAULT_DAG_ID = "m7_etl_pipeline"
FILE_METRICS = {INGESTED: "FilesIngested", ALREADY: "FilesAlreadyIngested",
                QUARANTINED: "FilesQuarantined", IGNORED: "FilesIgnored"}


@dataclass(frozen=True)
class S3Record:
    """One ``Records[i]`` of an S3 notification, with the key decoded."""

    bucket: str
    key: str
    event_name: str
    event_time: str
    sequencer: str
    size: int | None

    @property
    def arrival_day(self) -> str:
        try:
            moment = datetime.fromisoformat(self.event_time.replace("Z", "+00:00"))
        except ValueError:
            moment = datetime.now(UTC)
        return moment.astimezone(UTC).strftime("%Y%m%d")

    @classmethod
    def parse(cls, record: object, index: int) -> S3Record:
        where = f"Records[{index}]"
        if not isinstance(record, dict):
            raise EventError(where, "must be an object")
        s3 = record.get("s3")
        if not isinstance(s3, dict):
            raise EventError(f"{where}.s3", "is missing")
        bucket_spec, obj = s3.get("bucket"), s3.get("object")
        bucket = bucket_spec.get("name") if isinstance(bucket_spec, dict) else None
        if not isinstance(bucket, str) or not bucket:
            raise EventError(f"{where}.s3.bucket.name", "is missing")
        if not isinstance(obj, dict) or not isinstance(obj.get("key"), str) or not obj["key"]:
            raise EventError(f"{where}.s3.object.key", "is missing")
        size = obj.get("size")
        return cls(bucket=bucket, key=unquote_plus(obj["key"]),
                   event_name=str(record.get("eventName", "")),
                   event_time=str(record.get("eventTime", "")),
                   sequencer=str(obj.get("sequencer", "")),
                   size=size if isinstance(size, int) and not isinstance(size, bool) else None)


@dataclass(frozen=True)
class S3NotificationEvent:
    records: tuple[S3Record, ...]
    test_event: bool = False

    @classmethod
    def parse(cls, event: object) -> S3NotificationEvent:
        if not isinstance(event, dict):
            raise EventError("(event)", f"must be a JSON object, got {type(event).__name__}")
        if event.get("Event") == "s3:TestEvent":  # sent once when the notification is set up
            return cls((), test_event=True)
        records = event.get("Records")
        if not isinstance(records, list):
            raise EventError("Records", "is missing (not an S3 notification)")
        return cls(tuple(S3Record.parse(r, i) for i, r in enumerate(records)))


def dag_run_id(day: str, bucket: str, records: list[S3Record]) -> str:
    """Stable for the same event (retries, duplicates); new for a new upload."""
    text = "\n".join(sorted(f"{bucket}/{r.key}@{r.sequencer}" for r in records))
    return f"s3_{day}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _handle_record(record: S3Record, data_bucket: str, registry) -> IngestResult:
    if not record.event_name.startswith("ObjectCreated"):
        return IngestResult(record.key, IGNORED,
                            reason=f"event {record.event_name} is not a creation")
    if record.bucket != data_bucket:
        return IngestResult(record.key, IGNORED,
                            reason=f"bucket {record.bucket} is not {data_bucket}")
    return ingest(storage(record.bucket), record.key, registry, record.arrival_day)


def _trigger(data_bucket: str, by_day: dict[str, list[tuple[S3Record, IngestResult]]]
             ) -> tuple[list[dict], list[mwaa.TriggerError]]:
    env_name = env_text("M7_MWAA_ENV_NAME")
    dag_id = env_text("M7_DAG_ID", DEFAULT_DAG_ID)
    client = mwaa.mwaa_client() if by_day else None
    triggers, errors = [], []
    for day, items in sorted(by_day.items()):
        run_id = dag_run_id(day, data_bucket, [r for r, _ in items])
        conf = {"date": day, "raw_keys": sorted(i.target_key for _, i in items),
                "trigger": "s3_event"}
        try:
            result = mwaa.trigger_dag(env_name, dag_id, conf=conf, dag_run_id=run_id,
                                      client=client)
        except mwaa.TriggerError as exc:
            logger.error("DAG trigger failed", extra={
                "date": day, "dag_run_id": run_id, "error": str(exc), "retryable": exc.retryable})
            errors.append(exc)
            triggers.append({"date": day, "dag_run_id": run_id, "status": "failed",
                             "error": str(exc)})
            continue
        logger.info("DAG run requested", extra=result.to_dict())
        triggers.append({"date": day, **result.to_dict()})
    if triggers:
        metrics.add_metric(name="DagRunsRequested", unit=MetricUnit.Count,
                           value=len(triggers) - len(errors))
    return triggers, errors


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    request = S3NotificationEvent.parse(event)
    if request.test_event:
        logger.info("S3 test event ignored")
        return {"records": [], "triggers": [], "test_event": True}
    data_bucket = env_text("M7_DATA_BUCKET")
    env_text("M7_MWAA_ENV_NAME")  # fail before moving anything if the trigger cannot run
    registry = load_registry()
    files, by_day, counts = [], {}, {}
    for record in request.records:
        result = _handle_record(record, data_bucket, registry)
        files.append(result.to_dict())
        logger.info("record handled", extra=result.to_dict())
        counts[result.status] = counts.get(result.status, 0) + 1
        if result.status in (INGESTED, ALREADY) and result.date:
            by_day.setdefault(result.date, []).append((record, result))
    for status, name in FILE_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts.get(status, 0))
    triggers, errors = _trigger(data_bucket, by_day)
    if errors:
        retryable = any(e.retryable for e in errors)
        raise mwaa.TriggerError(
            f"{len(errors)} of {len(triggers)} DAG run request(s) failed; first: {errors[0]}",
            hint="The files are in raw/; a retry of this event asks MWAA again.",
            retryable=retryable)
    return {"records": files, "triggers": triggers}
