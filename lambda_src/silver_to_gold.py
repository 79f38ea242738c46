"""Lambda ``silver_to_gold``: rebuild ``gold/<Dataset>_YYYYMMDD.parquet`` from silver.

Invoked by the DAG once per dataset and day. The payload
(:class:`m7etl.orchestration.payloads.SilverToGoldRequest`)::

    {
      "dataset": "Device",                      # required, a dataset with a contract
      "date": "20250501",                       # required, YYYYMMDD
      "bucket": "m7-etl-data-solocco-test"      # optional, default $M7_DATA_BUCKET
    }

Returns the GoldResult as a dict, with the list of silver keys replaced by its length
(``SilverToGoldSummary``); ``rows_superseded`` counts the silver rows replaced by a later
record of their primary key (a key sent twice counts once in an aggregate).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from m7etl.core.contracts import load_registry
from m7etl.core.silver_to_gold import process_gold
from m7etl.orchestration.clients import storage
from m7etl.orchestration.payloads import SilverToGoldRequest, SilverToGoldSummary
from m7etl.orchestration.settings import metrics_namespace, service_name

logger = Logger(service=service_name("silver_to_gold"))
metrics = Metrics(namespace=metrics_namespace(), service=service_name("silver_to_gold"))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    registry = load_registry()
    request = SilverToGoldRequest.parse(event, registry.contracts)
    logger.append_keys(dataset=request.dataset, date=request.date)
    result = process_gold(storage(request.bucket), registry[request.dataset], request.date)
    metrics.add_dimension(name="dataset", value=result.dataset)
    metrics.add_metric(name="GoldRowsIn", unit=MetricUnit.Count, value=result.rows_in)
    metrics.add_metric(name="GoldRowsOut", unit=MetricUnit.Count, value=result.rows_out)
    metrics.add_metric(name="GoldRowsSuperseded", unit=MetricUnit.Count, value=result.rows_superseded)
    out = SilverToGoldSummary.from_result(result, request.bucket).to_dict()
    logger.info("gold rebuilt" if result.gold_key else "no silver input for the day", extra=out)
    return out
