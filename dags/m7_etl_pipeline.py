"""m7_etl_pipeline: raw -> silver -> quality gate -> gold -> Snowflake, and the day's log.

Runs daily, and when the S3-event function or ``m7etl trigger`` asks with a conf
(``{"date": "YYYYMMDD", "raw_keys": [...]}``). One run at a time, no catchup: a burst of
uploads makes one run that processes every pending file; the queued ones find nothing left.

    plan -> raw_to_silver (one Lambda call per file) -> quality_gate
         -> silver_to_gold (one Lambda call per dataset and day) -> gold_to_snowflake (Glue)
         -> write_execution_log -> notify_failure -> finish

The Airflow variables (``environment``, ``max_days_back``, ``error_threshold``,
``warning_threshold``) are read by ``plan`` when it runs, never at parse time, and the
functions, job, bucket and topic are named from ``environment`` as the stack names them
(or from the ``[m7etl]`` configuration section). Tasks pass keys and small summaries only.
The run fails, after everything else is done, when a task failed or a file failed the
gate; the alert goes to the stack's SNS topic. The logic is plain functions in
``m7etl.orchestration`` (plan, gate, run_log, failures); see docs/dag.md.

Parsing imports Airflow, the two provider operators and nothing else of weight: no
pyarrow, no network, no Variable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.configuration import conf
from airflow.sdk import dag, get_current_context, task

from m7etl.orchestration.airflow_ops import INVOKE_CONFIG, PipelineGlueJobOperator, PipelineLambdaOperator

DAG_ID = "m7_etl_pipeline"
AWS_CONN_ID = "aws_default"
CONFIG_SECTION = "m7etl"  # MWAA AirflowConfigurationOptions "m7etl.<key>" (AIRFLOW__M7ETL__*)
ALL_DONE = "all_done"
# Glue: the template's job times out after 60 minutes; the task allows for the queue on top.
GLUE_POLL_S = conf.getint(CONFIG_SECTION, "glue_poll_seconds", fallback=30)
GLUE_TIMEOUT = timedelta(minutes=75)
# A synchronous invoke is never sent twice: botocore neither retries nor times out before the
# function does (INVOKE_CONFIG); Airflow retries, with backoff, what the function calls retryable.
LAMBDA_CALL = {"aws_conn_id": AWS_CONN_ID, "invocation_type": "RequestResponse", "log_type": "Tail",
               "botocore_config": INVOKE_CONFIG, "map_index_template": "{{ task.label }}",
               "max_active_tis_per_dagrun": 8, "execution_timeout": timedelta(minutes=20),
               "retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True,
               "max_retry_delay": timedelta(minutes=10)}


def _overrides() -> dict[str, str]:
    from m7etl.orchestration.plan import OVERRIDES

    return {k: conf.get(CONFIG_SECTION, k, fallback="") for k in OVERRIDES}


def _storage(bucket: str):
    """The data bucket through the Airflow connection (its endpoint, region, credentials)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from m7etl.storage import S3Storage

    return S3Storage(bucket, client=S3Hook(aws_conn_id=AWS_CONN_ID).get_conn())


def _failing(ti, exc: Exception):
    """An M7Error as the task's end: kept as its ``error`` XCom; retried if it says so."""
    from airflow.exceptions import AirflowException, AirflowFailException

    ti.xcom_push(key="error", value=str(exc))
    return AirflowException(str(exc)) if getattr(exc, "retryable", False) else AirflowFailException(str(exc))


def _pulled(ti, key: str):
    return ti.xcom_pull(task_ids="plan", key=key)


@task(task_id="plan", retries=2, retry_delay=timedelta(seconds=30),
      retry_exponential_backoff=True, execution_timeout=timedelta(minutes=5))
def plan() -> list[str]:
    """Check the variables and the conf, name the stack's resources, list the files to run."""
    from airflow.sdk import Variable

    from m7etl.exceptions import M7Error
    from m7etl.orchestration import plan as planning

    context = get_current_context()
    ti, dag_run = context["ti"], context["dag_run"]
    ref = dag_run.logical_date or dag_run.run_after
    def variable(name: str):
        return Variable.get(name, default=None)

    try:
        overrides = _overrides()
        names = planning.stack_names(planning.read_environment(variable, overrides), overrides)
        ti.xcom_push(key="names", value=names.to_dict())  # known now: the alert can be sent
        settings = planning.read_settings(variable, overrides)
        run_conf = planning.parse_conf(dag_run.conf)
        found = planning.plan_files(run_conf, ref.astimezone(UTC).strftime("%Y%m%d"),
                                    settings.max_days_back, _storage(names.data_bucket).list)
    except M7Error as exc:
        raise _failing(ti, exc) from None
    print(f"Settings: {settings.to_dict()}; bucket {names.data_bucket}; {found.summary()}.")
    for key, value in (("settings", settings.to_dict()), ("plan", found.to_dict()),
                       ("raw_to_silver_function", names.raw_to_silver_function),
                       ("silver_to_gold_function", names.silver_to_gold_function),
                       ("glue_job", names.glue_job)):
        ti.xcom_push(key=key, value=value)
    return planning.raw_to_silver_payloads(found.keys, names.data_bucket, settings)


@task(task_id="quality_gate", trigger_rule=ALL_DONE, execution_timeout=timedelta(minutes=5))
def quality_gate(results) -> list[str]:
    """Name the files over error_threshold (not promoted), report the warned share, and ask
    for the gold of every dataset and day touched."""
    from airflow.exceptions import AirflowSkipException

    from m7etl.orchestration import gate

    ti = get_current_context()["ti"]
    planned, settings, names = _pulled(ti, "plan"), _pulled(ti, "settings"), _pulled(ti, "names")
    if planned is None:
        raise AirflowSkipException("plan did not finish: nothing to gate.")
    result = gate.quality_gate(planned["keys"], list(results),
                               error_threshold=settings["error_threshold"],
                               warning_threshold=settings["warning_threshold"])
    for line in result.report():
        print(line)
    ti.xcom_push(key="gate", value=result.to_dict())
    ti.xcom_push(key="glue_arguments", value=gate.load_request(result.gold).script_args())
    return gate.silver_to_gold_payloads(result.gold, names["data_bucket"])


@task(task_id="write_execution_log", trigger_rule=ALL_DONE, retries=2, multiple_outputs=False,
      retry_delay=timedelta(seconds=30), execution_timeout=timedelta(minutes=10))
def write_execution_log(file_results, gold_results) -> dict:
    """logs/pipeline_execution_YYYYMMDD.json of each day touched, merged into the day's log."""
    import json

    from airflow.exceptions import AirflowSkipException

    from m7etl.core import layout
    from m7etl.core.execution_log import merge_execution_log, utc_now
    from m7etl.core.execution_log import write_execution_log as write_log
    from m7etl.exceptions import M7Error, StorageError, TransientStorageError
    from m7etl.orchestration import gate, run_log
    from m7etl.orchestration.payloads import RawToSilverSummary

    context = get_current_context()
    ti, dag_run = context["ti"], context["dag_run"]
    settings, names = _pulled(ti, "settings"), _pulled(ti, "names")
    if settings is None:
        raise AirflowSkipException("plan did not finish: no day to log.")
    written = {}
    try:
        storage = _storage(names["data_bucket"])
        files, unread = [], 0
        for text in file_results:
            summary = RawToSilverSummary.from_dict(json.loads(text)).to_dict()
            report = None
            if summary["outputs"].get("report"):
                try:
                    report = json.loads(storage.read_bytes(summary["outputs"]["report"]))
                except TransientStorageError:
                    raise
                except (StorageError, ValueError):  # e.g. no s3:GetObject on silver/: the summary
                    unread += 1
            files.append(run_log.file_entry(summary, report))
        if unread:
            print(f"{unread} silver report(s) could not be read: their entries are the summaries.")
        logs = run_log.day_logs(
            run_id=dag_run.run_id,
            started_at=dag_run.start_date.astimezone(UTC).isoformat(timespec="seconds"),
            finished_at=utc_now(), error_threshold=settings["error_threshold"],
            warning_threshold=settings["warning_threshold"], storage_url=storage.url, files=files,
            gold=[run_log.gold_entry(g) for g in gate.gold_results(gold_results)])
        for day, log in logs.items():
            key = layout.log_key(day)
            try:
                previous = json.loads(storage.read_bytes(key)) if storage.exists(key) else None
                merged = merge_execution_log(previous, log)
            except ValueError as exc:  # not JSON, or not a log: never overwritten unseen
                raise StorageError(f"{storage.describe(key)} is not an execution log ({exc}).",
                                   hint="Move it aside and clear this task.") from None
            write_log(storage, merged)
            written[key] = merged["totals"]
            print(f"{storage.describe(key)}: {json.dumps(merged['totals'])}")
    except M7Error as exc:
        raise _failing(ti, exc) from None
    ti.xcom_push(key="log_keys", value=sorted(written))
    return written


def _outcome(ti, dag_run, ignore: tuple[str, ...]):
    from m7etl.orchestration import run_log

    planned, names, settings = _pulled(ti, "plan"), _pulled(ti, "names"), _pulled(ti, "settings")
    gate = ti.xcom_pull(task_ids="quality_gate", key="gate") or {}
    states = ti.get_task_states(dag_id=DAG_ID, run_ids=[dag_run.run_id]).get(dag_run.run_id, {})
    labels = {"raw_to_silver": (planned or {}).get("keys", []),
              "silver_to_gold": [f"{ds} {day}" for ds, day in gate.get("gold", [])]}
    failed = run_log.failed_tasks(states, labels, ignore=ignore)
    errors = {}
    for f in failed:
        pulled = ti.xcom_pull(task_ids=f.task_id, key="error",
                              map_indexes=f.map_index if f.map_index is not None else -1)
        if pulled:
            errors[f.name] = pulled
    return run_log.Outcome(
        run_id=dag_run.run_id, environment=(names or {}).get("environment"),
        failed=[f.name for f in failed], errors=errors, gate_failures=gate.get("failed", []),
        error_threshold=(settings or {}).get("error_threshold"),
        log_keys=ti.xcom_pull(task_ids="write_execution_log", key="log_keys") or [],
        bucket=(names or {}).get("data_bucket"))


@task(task_id="notify_failure", trigger_rule=ALL_DONE, retries=2, multiple_outputs=False,
      retry_delay=timedelta(seconds=30), execution_timeout=timedelta(minutes=5))
def notify_failure() -> dict:
    """When anything failed: one message to the stack's SNS topic naming it all."""
    from airflow.exceptions import AirflowSkipException
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.sns import SnsHook

    from m7etl.orchestration.plan import stack_names, topic_arn

    context = get_current_context()
    ti, dag_run = context["ti"], context["dag_run"]
    outcome = _outcome(ti, dag_run, ignore=("notify_failure", "finish"))
    if outcome.ok:
        raise AirflowSkipException("Nothing failed: no alert.")
    print(outcome.message())
    names = _pulled(ti, "names")
    topic = (names or {}).get("alert_topic_arn") or stack_names("unknown", _overrides()).alert_topic_arn
    if not topic and names:
        sts = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="sts")
        account = sts.get_conn().get_caller_identity()["Account"]
        topic = topic_arn(sts.conn_partition, sts.conn_region_name, account,
                          f"m7-etl-alerts-{names['environment']}")
    if not topic:
        raise AirflowSkipException("The environment is unknown (plan failed before naming it) "
                                   "and m7etl.alert_topic_arn is not set: no alert sent; the "
                                   "stack's DagFailureAlarm reports the failed run.")
    SnsHook(aws_conn_id=AWS_CONN_ID).publish_to_target(
        target_arn=topic, message=outcome.message(), subject=outcome.subject())
    return {"topic": topic, "subject": outcome.subject(), "message": outcome.message()}


@task(task_id="finish", trigger_rule=ALL_DONE, execution_timeout=timedelta(minutes=5))
def finish() -> str:
    """Airflow judges a run by its last task: fail it when anything above failed."""
    from airflow.exceptions import AirflowFailException

    context = get_current_context()
    outcome = _outcome(context["ti"], context["dag_run"], ignore=("finish",))
    if not outcome.ok:
        context["ti"].xcom_push(key="error", value=outcome.summary())
        raise AirflowFailException(outcome.summary())
    return outcome.summary()


@dag(
    dag_id=DAG_ID,
    schedule="@daily",
    start_date=datetime(2025, 5, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=4),
    is_paused_upon_creation=False,
    default_args={"owner": "m7etl", "retries": 0, "execution_timeout": timedelta(minutes=10)},
    doc_md=__doc__,
    tags=["m7etl"],
)
def m7_etl_pipeline():
    planned = plan()
    raw_to_silver = PipelineLambdaOperator.partial(
        task_id="raw_to_silver", function_name=planned["raw_to_silver_function"], **LAMBDA_CALL,
    ).expand(payload=planned)
    gated = quality_gate(raw_to_silver.output)
    silver_to_gold = PipelineLambdaOperator.partial(
        task_id="silver_to_gold", function_name=planned["silver_to_gold_function"], **LAMBDA_CALL,
    ).expand(payload=gated)
    gold_to_snowflake = PipelineGlueJobOperator(
        task_id="gold_to_snowflake", aws_conn_id=AWS_CONN_ID, job_name=planned["glue_job"],
        script_args=gated["glue_arguments"], deferrable=True, waiter_delay=GLUE_POLL_S,
        waiter_max_attempts=int(GLUE_TIMEOUT.total_seconds() // max(1, GLUE_POLL_S)) + 1,
        retries=2, retry_delay=timedelta(minutes=1), retry_exponential_backoff=True,
        execution_timeout=GLUE_TIMEOUT,
    )
    silver_to_gold >> gold_to_snowflake
    logged = write_execution_log(raw_to_silver.output, silver_to_gold.output)
    gold_to_snowflake >> logged
    logged >> notify_failure() >> finish()


m7_etl_pipeline()
