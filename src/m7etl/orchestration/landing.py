"""File a batch of S3 notification records under raw/ and ask MWAA for a run per day.

For each record of the data bucket that reports a creation, :func:`m7etl.core.ingest.ingest`
moves the object to ``raw/YYYYMMDD/`` (or quarantine); other records are ``ignored``, so
the S3-event function never reacts to its own writes. Then, once per day touched, MWAA is
asked to run the DAG (:mod:`m7etl.orchestration.runs` says which run).

One record never stops the others: an object that is gone is ``missing``, one the storage
failed on is ``failed`` (with the cause), and the others are filed and their runs asked
for. :meth:`LandingResult.failure` sums up, once every record was handled, what a retry of
the event can fix (failed run requests, records that failed in a retryable way); records
already filed are ``already_ingested`` on that retry. A missing object or a terminal
failure is reported in the result and the logs, not raised: a retry cannot fix it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord

from m7etl.core.contracts import Registry, load_registry
from m7etl.core.ingest import IGNORED, IngestResult, ingest
from m7etl.exceptions import M7Error, ObjectNotFoundError, StorageError, TransientStorageError
from m7etl.orchestration import mwaa
from m7etl.orchestration.payloads import EventError
from m7etl.orchestration.runs import run_requests
from m7etl.orchestration.settings import env_text
from m7etl.storage import Storage

DEFAULT_DAG_ID = "m7_etl_pipeline"
MISSING = "missing"  # the record's object is gone: not in landing/, not filed before
FAILED = "failed"  # the storage failed on the record (the reason says how)
LOG = logging.getLogger(__name__)
_SHAPE_ERRORS = (KeyError, TypeError, AttributeError)


@dataclass(frozen=True)
class LandingSettings:
    data_bucket: str
    mwaa_env_name: str
    dag_id: str = DEFAULT_DAG_ID

    @classmethod
    def from_env(cls) -> LandingSettings:
        """``$M7_DATA_BUCKET``, ``$M7_MWAA_ENV_NAME``, ``$M7_DAG_ID``: read before anything
        moves, so a function that could not trigger the DAG moves nothing."""
        return cls(env_text("M7_DATA_BUCKET"), env_text("M7_MWAA_ENV_NAME"),
                   env_text("M7_DAG_ID", DEFAULT_DAG_ID))


@dataclass(frozen=True)
class LandedObject:
    """One ``Records[i]`` of an S3 notification, with the key URL-decoded."""

    bucket: str
    key: str
    event_name: str
    event_time: str = ""
    sequencer: str = ""

    @property
    def arrival_day(self) -> str:
        """The event time's day (UTC), else today's."""
        try:
            moment = datetime.fromisoformat(self.event_time.replace("Z", "+00:00"))
        except ValueError:
            moment = datetime.now(UTC)
        return moment.astimezone(UTC).strftime("%Y%m%d")

    @classmethod
    def from_record(cls, record: S3EventRecord, index: int) -> LandedObject:
        where = f"Records[{index}]"
        if not isinstance(record.raw_event, dict):
            raise EventError(where, "must be an object")
        if not isinstance(record.get("s3"), dict):
            raise EventError(f"{where}.s3", "is missing")
        bucket = _get(lambda: record.s3.bucket.name)
        if not isinstance(bucket, str) or not bucket:
            raise EventError(f"{where}.s3.bucket.name", "is missing")
        key = _get(lambda: record.s3.get_object.key)
        if not isinstance(key, str) or not key:
            raise EventError(f"{where}.s3.object.key", "is missing")
        # S3 sends keys URL-encoded ('+' for a space); Powertools decodes only the first one.
        return cls(bucket=bucket, key=unquote_plus(key),
                   event_name=str(_get(lambda: record.event_name, "")),
                   event_time=str(_get(lambda: record.event_time, "")),
                   sequencer=str(_get(lambda: record.s3.get_object.sequencer, "")))


def _get(read: Callable[[], object], default: object = None) -> object:
    try:
        return read()
    except _SHAPE_ERRORS:
        return default


def landed_objects(notification: S3Event) -> tuple[LandedObject, ...] | None:
    """The records of an S3 notification; None for the ``s3:TestEvent`` S3 sends once
    when the notification is set up. A malformed one is an :class:`EventError`."""
    event = notification.raw_event
    if not isinstance(event, dict):
        raise EventError("(event)", f"must be a JSON object, got {type(event).__name__}")
    if event.get("Event") == "s3:TestEvent":
        return None
    if not isinstance(event.get("Records"), list):
        raise EventError("Records", "is missing (not an S3 notification)")
    return tuple(LandedObject.from_record(r, i) for i, r in enumerate(notification.records))


@dataclass
class LandingResult:
    files: list[IngestResult]
    triggers: list[dict]  # a TriggerResult as a dict with its "date", or a failed request
    errors: list[mwaa.TriggerError]
    file_errors: list[tuple[str, M7Error]] = field(default_factory=list)  # (key, error) of FAILED

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def runs_requested(self) -> int:
        return len(self.triggers) - len(self.errors)

    def failure(self) -> M7Error | None:
        """One error for the event when anything failed: every failed run request and every
        record not filed. A record that failed for good fails the invocation too (after the
        others are filed): its object stays in landing/, where the landing retention would
        delete it unseen; failing sends the event to Lambda's retries, then the dead-letter
        queue, and the Errors alarm fires."""
        requests = (f"{len(self.errors)} of {len(self.triggers)} DAG run request(s) failed; "
                    f"first: {self.errors[0]}") if self.errors else ""
        if not self.file_errors:
            if not self.errors:
                return None
            return mwaa.TriggerError(requests, hint="The files are in raw/; a retry of this "
                                     "event asks MWAA again.",
                                     retryable=any(e.retryable for e in self.errors))
        failed = self.file_errors
        names = ", ".join(key for key, _ in failed)
        message = (f"{len(failed)} of {len(self.files)} record(s) could not be filed ({names}); "
                   f"first cause: {failed[0][1]}" + (f" Also: {requests}" if requests else ""))
        if any(e.retryable for _, e in failed):
            return TransientStorageError(message, key=failed[0][0], hint="The other records "
                                         "were filed; a retry of this event files the rest.")
        return StorageError(message, key=failed[0][0], hint="The other records were filed; "
                            "the rest stay in landing/: fix the cause (the function's "
                            "permissions, the object), then copy them onto themselves to "
                            "send the event again.")

    def to_dict(self) -> dict:
        return {"records": [f.to_dict() for f in self.files], "triggers": self.triggers}


def file_object(obj: LandedObject, data_bucket: str, registry: Registry,
                open_storage: Callable[[str], Storage]) -> IngestResult:
    """Ingest one record, or say why it is ignored."""
    if not obj.event_name.startswith("ObjectCreated"):
        return IngestResult(obj.key, IGNORED, reason=f"event {obj.event_name} is not a creation")
    if obj.bucket != data_bucket:
        return IngestResult(obj.key, IGNORED, reason=f"bucket {obj.bucket} is not {data_bucket}")
    return ingest(open_storage(obj.bucket), obj.key, registry, obj.arrival_day)


def file_batch(objects: Iterable[LandedObject], settings: LandingSettings,
               open_storage: Callable[[str], Storage], *, registry: Registry | None = None,
               client=None, log=LOG) -> LandingResult:
    """File every object, then ask MWAA for one run per day touched.

    ``open_storage`` gives the storage of a bucket; ``client`` is the MWAA client (made
    when a run is to be asked for, if not given); ``log`` is a ``logging.Logger`` or a
    Powertools ``Logger``: one line per record and per run request.
    """
    registry = load_registry() if registry is None else registry
    filed, file_errors = [], []
    for obj in objects:
        try:
            result = file_object(obj, settings.data_bucket, registry, open_storage)
        except ObjectNotFoundError as exc:
            result = IngestResult(obj.key, MISSING, reason=str(exc))
            log.warning("record's object is gone", extra=result.to_dict())
        except M7Error as exc:
            result = IngestResult(obj.key, FAILED, reason=str(exc))
            file_errors.append((obj.key, exc))
            log.error("record not filed", extra={**result.to_dict(), "retryable": exc.retryable})
        else:
            log.info("record handled", extra=result.to_dict())
        filed.append((obj, result))
    runs = run_requests(settings.data_bucket, filed)
    if runs and client is None:
        client = mwaa.mwaa_client()
    triggers, errors = [], []
    for run in runs:
        try:
            triggered = mwaa.trigger_dag(settings.mwaa_env_name, settings.dag_id, conf=run.conf,
                                         dag_run_id=run.dag_run_id, client=client)
        except mwaa.TriggerError as exc:
            log.error("DAG trigger failed", extra={"date": run.day, "dag_run_id": run.dag_run_id,
                                                   "error": str(exc), "retryable": exc.retryable})
            errors.append(exc)
            triggers.append({"date": run.day, "dag_run_id": run.dag_run_id, "status": "failed",
                             "error": str(exc)})
            continue
        log.info("DAG run requested", extra=triggered.to_dict())
        triggers.append({"date": run.day, **triggered.to_dict()})
    return LandingResult([r for _, r in filed], triggers, errors, file_errors)

