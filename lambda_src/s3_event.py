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
already moved reports ``already_ingested`` and its run is (re)requested. One record never
stops the others: an object that is gone is reported ``missing``, one the storage failed on
``failed``. A failed trigger, or a record that failed in a retryable way (a timeout, S3
throttling), fails the invocation after every record was handled, so Lambda's retry asks
again and files the rest.
The logic is :mod:`m7etl.orchestration.landing` (filing) and ``.runs`` (run id, conf).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event

from m7etl.core.ingest import ALREADY, IGNORED, INGESTED, QUARANTINED
from m7etl.orchestration import landing
from m7etl.orchestration.clients import storage
from m7etl.orchestration.settings import metrics_namespace, service_name

logger = Logger(service=service_name("s3_event"))
metrics = Metrics(namespace=metrics_namespace(), service=service_name("s3_event"))
FILE_METRICS = {INGESTED: "FilesIngested", ALREADY: "FilesAlreadyIngested",
                QUARANTINED: "FilesQuarantined", IGNORED: "FilesIgnored",
                landing.MISSING: "FilesMissing", landing.FAILED: "FilesFailed"}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    objects = landing.landed_objects(S3Event(event))
    if objects is None:
        logger.info("S3 test event ignored")
        return {"records": [], "triggers": [], "test_event": True}
    result = landing.file_batch(objects, landing.LandingSettings.from_env(), storage, log=logger)
    for status, name in FILE_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=result.count(status))
    if result.triggers:
        metrics.add_metric(name="DagRunsRequested", unit=MetricUnit.Count,
                           value=result.runs_requested)
    failure = result.failure()
    if failure is not None:
        raise failure
    return result.to_dict()
