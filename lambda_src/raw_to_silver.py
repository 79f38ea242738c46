"""Lambda ``raw_to_silver``: validate one raw CSV file into silver Parquet.

Invoked by the DAG once per raw file (Airflow dynamic task mapping). The payload
(:class:`m7etl.orchestration.payloads.RawToSilverRequest`)::

    {
      "key": "raw/20250501/Device_20250501.csv",   # required, raw/YYYYMMDD/<file>
      "bucket": "m7-etl-data-solocco-test",         # optional, default $M7_DATA_BUCKET
      "error_threshold": 5.0,                       # optional, default $M7_ERROR_THRESHOLD
      "warning_threshold": 10.0                     # optional, default $M7_WARNING_THRESHOLD
    }

Returns a compact summary (``RawToSilverSummary``: counts, status, output keys); the full
per-file report is the ``silver/YYYYMMDD/_reports/<Dataset>/<stem>.json`` object. Bad
input never raises (the file is quarantined or fails the quality gate; a file already
quarantined says so). A malformed payload raises ``EventError``; a key that is not there
``ObjectNotFoundError`` (nothing written); a storage failure, a stream cut while reading or a
full ``/tmp`` ``TransientStorageError`` (retryable: the raw file stays, Airflow retries).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from m7etl.core.contracts import load_registry
from m7etl.core.raw_to_silver import Thresholds, process_raw_file
from m7etl.exceptions import M7Error
from m7etl.orchestration.clients import storage
from m7etl.orchestration.payloads import RawToSilverRequest, RawToSilverSummary
from m7etl.orchestration.settings import metrics_namespace, service_name

logger = Logger(service=service_name("raw_to_silver"))
metrics = Metrics(namespace=metrics_namespace(), service=service_name("raw_to_silver"))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    request = RawToSilverRequest.parse(event)
    logger.append_keys(source_key=request.key, bucket=request.bucket)
    try:
        result = process_raw_file(storage(request.bucket), request.key, load_registry(),
                                  Thresholds(request.error_threshold, request.warning_threshold))
    except M7Error as exc:  # the file stays where it is; the invocation fails with this error
        logger.error("raw file not processed", extra={"error": str(exc), "retryable": exc.retryable})
        raise
    metrics.add_dimension(name="dataset", value=result.dataset or "unknown")
    metrics.add_metric(name="RowsRead", unit=MetricUnit.Count, value=result.rows_read)
    metrics.add_metric(name="RowsValid", unit=MetricUnit.Count, value=result.rows_valid)
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=result.rows_rejected)
    metrics.add_metric(name="RowsWarned", unit=MetricUnit.Count, value=result.rows_warned)
    metrics.add_metric(name="RejectedPercent", unit=MetricUnit.Percent, value=result.rejected_pct)
    out = RawToSilverSummary.from_result(result, request.bucket).to_dict()
    if result.status == "ok" and not result.warning:
        logger.info("raw file processed", extra=out)
    else:
        logger.warning("raw file processed with problems", extra=out)
    return out
