"""Lambda ``maintenance``: the daily retention job over the data bucket.

Scheduled daily (EventBridge). The payload
(:class:`m7etl.orchestration.payloads.MaintenanceRequest`)::

    {
      "dry_run": false,          # optional; true lists what would be deleted, deletes nothing
      "now": "2025-06-01"        # optional ISO date or datetime, with "dry_run": true only
    }

``now`` previews a later day ("what will go in a month"); a real run always deletes by the
real clock, so ``{"now": "2030-01-01"}`` without ``"dry_run": true`` is refused (an
:class:`EventError` naming the field) and deletes nothing. A scheduled EventBridge event
(``"detail-type": "Scheduled Event"``) is accepted as ``{"dry_run": false}``.

Days to keep per prefix come from ``M7_RETENTION_DAYS_LANDING``, ``_RAW``, ``_SILVER``,
``_REJECTS``, ``_QUARANTINE``, ``_LOGS``, ``_GOLD`` (0 or unset = keep forever). The bucket
is walked page by page and deleted 1000 keys at a time. Returns counts, bytes freed and the
first keys; the full key list goes to ``logs/maintenance_YYYYMMDD[.dry_run].json``.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from m7etl.core.retention import RetentionPolicy, apply_retention
from m7etl.orchestration.clients import storage
from m7etl.orchestration.payloads import EventError, MaintenanceRequest
from m7etl.orchestration.settings import env_text, metrics_namespace, service_name

logger = Logger(service=service_name("maintenance"))
metrics = Metrics(namespace=metrics_namespace(), service=service_name("maintenance"))
MAX_KEYS_RETURNED = 50


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    request = MaintenanceRequest.parse(event)
    if isinstance(event, dict) and event.get("now") and not request.dry_run:
        raise EventError("now", 'is accepted only with "dry_run": true (a real run deletes by '
                                "the real clock, so any invoker could delete raw/ and silver/)")
    policy = RetentionPolicy.from_env()
    bucket = env_text("M7_DATA_BUCKET")
    logger.append_keys(bucket=bucket, dry_run=request.dry_run)
    if not policy.active:
        logger.info("no retention configured: nothing to do", extra={"policy": dict(policy.days)})
    result = apply_retention(storage(bucket), policy, now=request.now, dry_run=request.dry_run)
    out = {"bucket": bucket, **result.to_dict(max_keys=MAX_KEYS_RETURNED)}
    if result.report_error:
        logger.warning("retention report not written", extra={"error": result.report_error})
    if not request.dry_run:
        metrics.add_metric(name="ObjectsDeleted", unit=MetricUnit.Count, value=result.deleted)
        metrics.add_metric(name="BytesFreed", unit=MetricUnit.Bytes, value=result.bytes_freed)
    logger.info("retention applied" if not request.dry_run else "retention dry run",
                extra={k: v for k, v in out.items() if k != "keys"})
    return out
