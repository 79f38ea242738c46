"""The Amazon provider's Lambda and Glue operators, with the pipeline's failure rules.

Imported by the DAG only (it needs Airflow); the rules themselves are plain functions in
:mod:`m7etl.orchestration.failures`. What changes from the provider's operators:

- ``PipelineLambdaOperator``: a function error fails the task with the function's own
  message (not the provider's "Lambda function execution resulted in error" and a dump),
  at once when the error type says a retry cannot help; the message is also kept as the
  task's ``error`` XCom for the run's alert. Botocore never retries or times out a call on
  its own (``INVOKE_CONFIG``): a slow file is never invoked twice at once.
- ``PipelineGlueJobOperator``: the run must end SUCCEEDED. The provider's synchronous wait
  calls STOPPED a success and its trigger raises on a failure with only the state; here a
  trigger that reports failures as events (:class:`GlueRunTrigger`, importable by the
  triggerer from this module) and a final ``GetJobRun`` give the job's error message.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.exceptions import AirflowException, AirflowFailException
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.amazon.aws.triggers.glue import GlueJobCompleteTrigger
from airflow.triggers.base import TriggerEvent

from m7etl.orchestration.failures import (
    RETRYABLE_GLUE_CODES,
    FunctionFailure,
    function_failure,
    glue_failure,
    invoke_error,
)

LAMBDA_MAX_TIMEOUT_S = 900  # Lambda's ceiling; the template's functions default to it
# Read timeout above the function's own timeout (cold start and the answer on top), and no
# botocore retry: a retried synchronous Invoke would run the same file twice at once.
INVOKE_CONFIG = {"read_timeout": LAMBDA_MAX_TIMEOUT_S + 60, "connect_timeout": 10,
                 "retries": {"max_attempts": 0}}
ERROR_XCOM = "error"
SUCCEEDED = "SUCCEEDED"


class RetryableTaskError(AirflowException):
    """A failure a retry can get past: Airflow retries the task (with its backoff)."""


def _fail(context: Any, failure: FunctionFailure | str, retryable: bool = False) -> None:
    message = failure.message if isinstance(failure, FunctionFailure) else failure
    retry = failure.retryable if isinstance(failure, FunctionFailure) else retryable
    context["ti"].xcom_push(key=ERROR_XCOM, value=message)
    if retry:
        raise RetryableTaskError(message)
    raise AirflowFailException(message)


class PipelineLambdaOperator(LambdaInvokeFunctionOperator):
    """Invoke ``raw_to_silver`` or ``silver_to_gold`` with one payload (see module doc)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("botocore_config", INVOKE_CONFIG)
        super().__init__(**kwargs)

    @property
    def label(self) -> str:
        """The work of this invocation: the raw key, or the dataset and day."""
        try:
            payload = json.loads(self.payload) if isinstance(self.payload, str | bytes) else {}
        except ValueError:
            return "?"
        if not isinstance(payload, dict):
            return "?"
        if "key" in payload:
            return str(payload["key"])
        return " ".join(str(payload[k]) for k in ("dataset", "date") if k in payload) or "?"

    def execute(self, context: Any):
        from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

        try:
            return super().execute(context)
        except ValueError as exc:
            answer = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else None
            if answer is None or "Payload" not in answer:
                raise
            _fail(context, function_failure(self.function_name, self.label, answer["Payload"]))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            _fail(context, invoke_error(self.function_name, self.label, str(error.get("Code")),
                                        str(error.get("Message", ""))))
        except ReadTimeoutError as exc:  # the function is over by now: its timeout is shorter
            _fail(context, f"Lambda {self.function_name} gave no answer for {self.label} within "
                           f"{INVOKE_CONFIG['read_timeout']} s ({exc}).", retryable=True)
        except ConnectionError as exc:
            _fail(context, f"Lambda {self.function_name} could not be reached for {self.label} "
                           f"({exc}).", retryable=True)


class GlueRunTrigger(GlueJobCompleteTrigger):
    """The provider's trigger, with a failed, stopped or unwatchable run as an event."""

    async def run(self):
        try:
            async for event in super().run():
                yield event
        except Exception as exc:  # the waiter's terminal failure, a refused GetJobRun...
            yield TriggerEvent({"status": "error", "run_id": self.run_id, "message": str(exc)})


class PipelineGlueJobOperator(GlueJobOperator):
    """Run ``gold_to_snowflake`` and require SUCCEEDED (see module doc)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("stop_job_run_on_kill", True)
        super().__init__(**kwargs)

    def defer(self, *, trigger, method_name, kwargs=None, timeout=None):
        if type(trigger) is GlueJobCompleteTrigger:
            trigger = GlueRunTrigger(**trigger.serialize()[1])
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def execute(self, context: Any):
        from botocore.exceptions import ClientError

        try:
            # The stack's job, or a clear failure: the provider would try to create a job.
            self.hook.conn.get_job(JobName=self.job_name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "EntityNotFoundException":
                _fail(context, f"Glue job {self.job_name} does not exist. Deploy the stack or "
                               "check the Airflow variable 'environment'.")
            raise
        try:
            run_id = super().execute(context)  # deferrable: raises TaskDeferred, let it pass
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code"))
            _fail(context, f"Glue job {self.job_name} could not start: {code}: "
                           f"{error.get('Message', '')}", retryable=code in RETRYABLE_GLUE_CODES)
        except AirflowException as exc:  # the synchronous wait's FAILED or TIMEOUT
            if self.wait_for_completion and self._job_run_id:
                self._check(context, self._job_run_id)
            raise RetryableTaskError(str(exc)) from exc
        if self.wait_for_completion:
            self._check(context, run_id)
        return run_id

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> str:
        run_id = (event or {}).get("run_id")
        if not run_id:
            _fail(context, f"Glue job {self.job_name}: the trigger ended without a run id "
                           f"({event!r}).")
        self._check(context, run_id, (event or {}).get("message"))
        return run_id

    def _check(self, context: Any, run_id: str, trigger_message: str | None = None) -> None:
        """Fail unless the run is SUCCEEDED, with the job's own error message."""
        run = self.hook.conn.get_job_run(JobName=self.job_name, RunId=run_id)["JobRun"]
        state = run.get("JobRunState", "UNKNOWN")
        self.log.info("Glue job %s run %s: %s", self.job_name, run_id, state)
        if state != SUCCEEDED:
            _fail(context, glue_failure(self.job_name, run_id, state,
                                        run.get("ErrorMessage") or trigger_message))
