"""Lambda ``raw_to_silver``: validate one raw CSV file into silver Parquet.

Invoked by the DAG once per raw file (Airflow dynamic task mapping). The payload::

    {
      "key": "raw/20250501/Device_20250501.csv",   # required, raw/YYYYMMDD/<file>
      "bucket": "m7-etl-data-solocco-test",         # optional, default $M7_DATA_BUCKET
      "error_threshold": 5.0,                       # optional, default $M7_ERROR_THRESHOLD
      "warning_threshold": 10.0                     # optional, default $M7_WARNING_THRESHOLD
    }

Returns a compact summary (counts, status, output keys); the full per-file report is the
``silver/YYYYMMDD/_reports/<Dataset>/<stem>.json`` object. Bad input never raises (the
file is quarantined or fails the quality gate); a malformed payload raises
:class:`EventError`, a storage failure raises the core's error (``retryable`` says
whether a retry can help).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from lambda_support import (
    check_mapping,
    data_bucket,
    env_percent,
    metrics_namespace,
    percent_field,
    service_name,
    short,
    storage,
    text_field,
)

from m7etl.core.contracts import load_registry
from m7etl.core.raw_to_silver import FileResult, Thresholds, process_raw_file

logger = Logger(service=service_name("raw_to_silver"))
metrics = Metrics(namespace=metrics_namespace(), service=service_name("raw_to_silver"))
FIELDS = ("key", "bucket", "error_threshold", "warning_threshold")
RAW_KEY = r"raw/\d{8}/[^/]+"


@dataclass(frozen=True)
class RawToSilverEvent:
    key: str
    bucket: str
    error_threshold: float
    warning_threshold: float

    @classmethod
    def parse(cls, event: object) -> RawToSilverEvent:
        event = check_mapping(event, FIELDS)
        key = text_field(event, "key", pattern=RAW_KEY, describe="a raw/YYYYMMDD/<file> key")
        return cls(
            key=key,
            bucket=data_bucket(text_field(event, "bucket", required=False)),
            error_threshold=percent_field(event, "error_threshold",
                                          env_percent("M7_ERROR_THRESHOLD", 5.0)),
            warning_threshold=percent_field(event, "warning_threshold",
                                            env_percent("M7_WARNING_THRESHOLD", 10.0)),
        )


def summary(result: FileResult, bucket: str) -> dict:
    """The FileResult without its bulky parts (dialect, column lists): well under 6 MB."""
    return {
        "bucket": bucket, "source_key": result.source_key, "dataset": result.dataset,
        "date": result.date, "status": result.status, "reason": short(result.reason),
        "warning": result.warning, "rows_read": result.rows_read,
        "rows_valid": result.rows_valid, "rows_rejected": result.rows_rejected,
        "rows_warned": result.rows_warned, "rejected_pct": result.rejected_pct,
        "warned_pct": result.warned_pct, "bytes_read": result.bytes_read,
        "missing_optional_columns": len(result.missing_optional_columns),
        "extra_columns": len(result.extra_columns), "outputs": result.outputs,
        "duration_s": result.duration_s,
    }


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    request = RawToSilverEvent.parse(event)
    logger.append_keys(source_key=request.key, bucket=request.bucket)
    result = process_raw_file(storage(request.bucket), request.key, load_registry(),
                              Thresholds(request.error_threshold, request.warning_threshold))
    metrics.add_dimension(name="dataset", value=result.dataset or "unknown")
    metrics.add_metric(name="RowsRead", unit=MetricUnit.Count, value=result.rows_read)
    metrics.add_metric(name="RowsValid", unit=MetricUnit.Count, value=result.rows_valid)
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=result.rows_rejected)
    metrics.add_metric(name="RowsWarned", unit=MetricUnit.Count, value=result.rows_warned)
    metrics.add_metric(name="RejectedPercent", unit=MetricUnit.Percent, value=result.rejected_pct)
    out = summary(result, request.bucket)
    if result.status == "ok" and not result.warning:
        logger.info("raw file processed", extra=out)
    else:
        logger.warning("raw file processed with problems", extra=out)
    return out
