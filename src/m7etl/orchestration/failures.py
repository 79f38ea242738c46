"""What a failed Lambda invocation or Glue run means for the DAG: a message and a retry or not.

A function that raises answers with ``FunctionError`` and the payload
``{"errorType": <exception class>, "errorMessage": ...}``; the class says whether running
the same work again can succeed (``retryable`` on :mod:`m7etl.exceptions`' classes, e.g.
``TransientStorageError``). A malformed payload, a contract error or a timeout would fail
the same way again: no retry, the task fails at once with the function's own words. A
refused call (throttling, a function being updated) is retried with backoff.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from m7etl import exceptions
from m7etl.orchestration.payloads import short

# Lambda Invoke errors (botocore ClientError codes) a later call can get past.
RETRYABLE_INVOKE_CODES = frozenset({
    "TooManyRequestsException", "ServiceException", "EC2ThrottledException",
    "ResourceConflictException", "ResourceNotReadyException", "ThrottlingException",
    "RequestTimeout", "RequestTimeoutException", "SnapStartTimeoutException",
    "EFSMountTimeoutException", "ENILimitReachedException", "SubnetIPAddressLimitReachedException",
})
# Glue StartJobRun errors worth a retry: busy, throttled, a concurrent run still finishing.
RETRYABLE_GLUE_CODES = frozenset({
    "ConcurrentRunsExceededException", "ThrottlingException", "InternalServiceException",
    "OperationTimeoutException", "ResourceNumberLimitExceededException",
})


def _retryable_classes() -> frozenset[str]:
    found, todo = set(), [exceptions.M7Error]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.retryable is True:  # a class attribute; instance-level ones are not known here
            found.add(cls.__name__)
    return frozenset(found)


RETRYABLE_ERROR_TYPES = _retryable_classes()


@dataclass(frozen=True)
class FunctionFailure:
    """A function's error answer, read: the message names the function and the work."""

    message: str
    error_type: str
    retryable: bool


def function_failure(function: str, work: str, payload: bytes | str | None) -> FunctionFailure:
    """``payload`` is the error answer (``{"errorType", "errorMessage", ...}``), as text."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else (payload or "")
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = {"errorMessage": text}
    if not isinstance(body, dict):
        body = {"errorMessage": str(body)}
    error_type = str(body.get("errorType") or "Unhandled")
    message = str(body.get("errorMessage") or "no error message").strip()
    return FunctionFailure(
        message=short(f"Lambda {function} failed for {work}: {error_type}: {message}"),
        error_type=error_type, retryable=error_type in RETRYABLE_ERROR_TYPES)


def invoke_error(function: str, work: str, code: str, detail: str) -> FunctionFailure:
    """The Invoke call itself was refused (``ClientError`` ``code``)."""
    hints = {
        "ResourceNotFoundException": "Deploy the stack or check the Airflow variable 'environment'.",
        "AccessDeniedException": "Give the MWAA execution role lambda:InvokeFunction on it.",
    }
    hint = hints.get(code, "Retrying." if code in RETRYABLE_INVOKE_CODES else "")
    return FunctionFailure(
        message=short(f"Lambda {function} could not be invoked for {work}: {code}: {detail}"
                      + (f" {hint}" if hint else "")),
        error_type=code, retryable=code in RETRYABLE_INVOKE_CODES)


def glue_failure(job: str, run_id: str | None, state: str, error_message: str | None) -> str:
    """A Glue run that did not succeed; STOPPED is a failure (the provider calls it success)."""
    what = f"Glue job {job} run {run_id}" if run_id else f"Glue job {job}"
    detail = (error_message or "").strip() or {
        "STOPPED": "the run was stopped before it finished",
        "TIMEOUT": "the run exceeded the job's timeout",
    }.get(state, "no error message (see the job's CloudWatch log)")
    return short(f"{what} ended {state}: {detail}")
