"""Lambda ``silver_to_gold``: rebuild ``gold/<Dataset>_YYYYMMDD.parquet`` from silver.

Invoked by the DAG once per dataset and day. The payload::

    {
      "dataset": "Device",                      # required, a dataset with a contract
      "date": "20250501",                       # required, YYYYMMDD
      "bucket": "m7-etl-data-solocco-test"      # optional, default $M7_DATA_BUCKET
    }

Returns the GoldResult as a dict, with the list of silver keys replaced by its length.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from lambda_support import (
    EventError,
    check_mapping,
    data_bucket,
    metrics_namespace,
    service_name,
    storage,
    text_field,
)

from m7etl.core import layout
from m7etl.core.contracts import Contract, load_registry
from m7etl.core.silver_to_gold import GoldResult, process_gold

logger = Logger(service=service_name("silver_to_gold"))
metrics = Metrics(namespace=metrics_namespace(), service=service_name("silver_to_gold"))
FIELDS = ("dataset", "date", "bucket")


@dataclass(frozen=True)
class SilverToGoldEvent:
    contract: Contract
    date: str
    bucket: str

    @classmethod
    def parse(cls, event: object) -> SilverToGoldEvent:
        event = check_mapping(event, FIELDS)
        dataset = text_field(event, "dataset")
        registry = load_registry()
        if dataset not in registry.contracts:
            known = ", ".join(sorted(registry.contracts))
            raise EventError("dataset", f"names no known dataset ({dataset!r}; known: {known})")
        day = text_field(event, "date")
        try:
            layout.parse_day(day)
        except ValueError as exc:
            raise EventError("date", f"must be a YYYYMMDD date ({exc})") from None
        bucket = data_bucket(text_field(event, "bucket", required=False))
        return cls(registry[dataset], day, bucket)


def summary(result: GoldResult, bucket: str) -> dict:
    out = result.to_dict()
    out["silver_files"] = len(out.pop("silver_keys"))
    out["bucket"] = bucket
    return out


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    request = SilverToGoldEvent.parse(event)
    logger.append_keys(dataset=request.contract.dataset, date=request.date)
    result = process_gold(storage(request.bucket), request.contract, request.date)
    metrics.add_dimension(name="dataset", value=result.dataset)
    metrics.add_metric(name="GoldRowsIn", unit=MetricUnit.Count, value=result.rows_in)
    metrics.add_metric(name="GoldRowsOut", unit=MetricUnit.Count, value=result.rows_out)
    out = summary(result, request.bucket)
    logger.info("gold rebuilt" if result.gold_key else "no silver input for the day", extra=out)
    return out
