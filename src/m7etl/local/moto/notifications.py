"""S3 event notifications to Lambda, as S3 delivers them: the real payload, asynchronously.

moto already matches a bucket's notification configuration (event type, ``prefix`` and
``suffix`` rules) after PutObject, CopyObject, CompleteMultipartUpload, deletes and the
rest, and hands a matching Lambda rule to ``_invoke_awslambda``. Two things differ from S3
and are replaced here: moto's record lacks fields S3 sends (``userIdentity``,
``requestParameters``, ``responseElements``, the bucket's ``ownerIdentity``, the object's
``sequencer`` and ``versionId``; its ``eventTime`` is local time without a ``Z``), and moto
invokes the function inside the PUT, which waits for it. S3 invokes asynchronously: here
the PUT returns at once and the function runs as an ``Event`` invocation on a worker of
``executors_lambda``. And moto's CompleteMultipartUpload also sends ``ObjectCreated:Put``
(and ``ObjectTagging:Put``) for the object it stores: only the one event S3 sends is kept.
The record is also what moto's SQS and SNS rules now receive.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from datetime import UTC, datetime
from urllib.parse import quote_plus

from m7etl.local.moto.executors_lambda import LambdaExecutor

log = logging.getLogger("m7etl.local.moto")

SOURCE_IP = "127.0.0.1"
MULTIPART = "s3:ObjectCreated:CompleteMultipartUpload"
_only = threading.local()  # the one event a running CompleteMultipartUpload may send
_sequence = {"last": 0}
_sequence_lock = threading.Lock()


# -- pure ----------------------------------------------------------------------------------
def event_time(now: datetime) -> str:
    """S3's ``eventTime``: UTC, milliseconds, ``Z``."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def owner_id(account_id: str) -> str:
    """A stable stand-in for the bucket owner's principal id (S3's are opaque)."""
    return "A" + hashlib.sha256(account_id.encode()).hexdigest()[:13].upper()


def s3_record(event_name: str, *, region: str, bucket: str, key: str, size: int | None,
              etag: str | None, configuration_id: str, account_id: str, sequencer: str,
              now: datetime, version_id: str | None = None, request_id: str = "",
              host_id: str = "", bucket_arn: str | None = None) -> dict:
    """One record of an S3 event notification, with the fields and encoding S3 uses.

    ``event_name`` is moto's (``s3:ObjectCreated:Put``); the record's is without ``s3:``.
    The key is URL-encoded with spaces as ``+``, as S3 sends it. Removal events carry no
    size nor eTag.
    """
    obj: dict = {"key": quote_plus(key, safe="/")}
    if not event_name.startswith("s3:ObjectRemoved"):
        obj.update({"size": size, "eTag": (etag or "").strip('"')})
    if version_id:
        obj["versionId"] = version_id
    obj["sequencer"] = sequencer
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region,
        "eventTime": event_time(now), "eventName": event_name.removeprefix("s3:"),
        "userIdentity": {"principalId": f"AWS:{account_id}"},
        "requestParameters": {"sourceIPAddress": SOURCE_IP},
        "responseElements": {"x-amz-request-id": request_id, "x-amz-id-2": host_id},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": configuration_id,
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": owner_id(account_id)},
                          "arn": bucket_arn or f"arn:aws:s3:::{bucket}"},
               "object": obj},
    }


def next_sequencer() -> str:
    """S3's ``sequencer``: hex that grows with each event of this process."""
    with _sequence_lock:
        _sequence["last"] = max(_sequence["last"] + 1, time.time_ns())
        return f"{_sequence['last']:018X}"


# -- moto's hooks ------------------------------------------------------------------------------
def _record_of(event_name: str, bucket, key, notification_id: str) -> dict:
    """moto's ``_get_s3_event``, with S3's shape."""
    versioned = getattr(bucket, "is_versioned", False)
    version = getattr(key, "version_id", None)
    return {"Records": [s3_record(
        str(getattr(event_name, "value", event_name)), region=bucket.region_name,
        bucket=bucket.name, key=key.name, size=getattr(key, "size", None),
        etag=getattr(key, "etag", None), configuration_id=notification_id,
        account_id=bucket.account_id, sequencer=next_sequencer(), now=datetime.now(UTC),
        version_id=str(version) if versioned and version and version != "null" else None,
        request_id=secrets.token_hex(8).upper(), host_id=secrets.token_urlsafe(48),
        bucket_arn=getattr(bucket, "arn", None))]}


_current: dict[str, LambdaExecutor] = {}


def deliver(account_id: str, event_body: dict, fn_arn: str, region_name: str) -> str | None:
    """moto's ``_invoke_awslambda``: queue an Event invocation; its request id (None when
    the function does not exist: S3 drops the event, the server's log says it)."""
    from moto.awslambda.utils import get_backend

    try:
        fn = get_backend(account_id, region_name).get_function(fn_arn)
    except Exception as exc:  # moto's UnknownFunctionException and kin
        log.warning("S3 event for %s not delivered: %s", fn_arn, exc)
        return None
    rid = _current["executor"].submit(fn, json.dumps(event_body).encode())
    record = event_body.get("Records", [{}])[0]
    log.info("S3 %s of s3://%s/%s -> %s (Event %s)", record.get("eventName"),
             record.get("s3", {}).get("bucket", {}).get("name"),
             record.get("s3", {}).get("object", {}).get("key"), fn.function_name, rid)
    return rid


def install(executor: LambdaExecutor) -> None:
    """Replace moto's S3 record and its synchronous Lambda delivery (patched once)."""
    from moto.s3 import notifications
    from moto.s3.models import S3Backend

    _current["executor"] = executor
    if getattr(notifications._invoke_awslambda, "_m7etl", False):
        return
    deliver._m7etl = True  # type: ignore[attr-defined]
    notifications._get_s3_event = _record_of
    notifications._invoke_awslambda = deliver
    send_event, complete = notifications.send_event, S3Backend.complete_multipart_upload

    def send_only_what_s3_sends(account_id, event_name, bucket, key):
        only = getattr(_only, "event", None)
        if only is None or str(getattr(event_name, "value", event_name)) == only:
            send_event(account_id, event_name, bucket, key)

    def complete_multipart_upload(self, *args, **kwargs):
        _only.event = MULTIPART
        try:
            return complete(self, *args, **kwargs)
        finally:
            _only.event = None

    notifications.send_event = send_only_what_s3_sends
    S3Backend.complete_multipart_upload = complete_multipart_upload
