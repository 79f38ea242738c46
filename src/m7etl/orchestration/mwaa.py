"""Ask MWAA to run a DAG: the REST API first, the CLI token as a fallback.

Used by the S3-event Lambda and the ``m7etl trigger`` command. The first call is MWAA's
``InvokeRestApi`` (``POST /dags/{dag_id}/dagRuns`` on the Airflow 3 REST API). A
``dag_run_id`` that already exists (HTTP 409) means an earlier call already triggered the
run, which is a success: callers derive the id from their input, so retries are
idempotent. When the environment cannot take ``InvokeRestApi`` (an Airflow version
without it, a role without ``airflow:InvokeRestApi``, an SDK that predates the call) the
same trigger goes through ``CreateCliToken`` and the web server's ``/aws_mwaa/cli``
endpoint, exactly as the deployment guide does it by hand.

Every failure is a :class:`TriggerError` naming the environment, the cause and the next
step, with ``retryable`` set when running the same call again can succeed.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Protocol

from m7etl.exceptions import M7Error

REST_API = "rest_api"
CLI = "cli"
TRIGGERED = "triggered"
ALREADY_EXISTS = "already_exists"
CLI_PATH = "/aws_mwaa/cli"
CLI_TIMEOUT_S = 30
# What makes the REST API unusable on an environment (so the CLI token is tried instead).
UNSUPPORTED = re.compile(r"not (currently )?supported|unsupported|not available|not enabled",
                         re.IGNORECASE)
ALREADY_RE = re.compile(r"already exists|duplicate|UniqueViolation|IntegrityError", re.IGNORECASE)
RETRYABLE_CODES = {"ThrottlingException", "TooManyRequestsException", "InternalServerException",
                   "ServiceUnavailableException", "RequestTimeout"}


class TriggerError(M7Error):
    """MWAA did not start the DAG run (names the environment, the cause and the next step)."""

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = False):
        super().__init__(message, hint=hint)
        self.retryable = retryable


@dataclass
class TriggerResult:
    env_name: str
    dag_id: str
    dag_run_id: str
    status: str  # TRIGGERED or ALREADY_EXISTS
    method: str  # REST_API or CLI
    state: str | None = None  # the run's state as Airflow reported it, when it did
    fallback_reason: str | None = None  # why the REST API was not used

    def to_dict(self) -> dict:
        return asdict(self)


class HttpPost(Protocol):
    """POSTs ``body`` to ``url``; returns the status code and the response body."""

    def __call__(self, url: str, *, headers: dict[str, str], body: bytes,
                 timeout: float) -> tuple[int, bytes]: ...


def urllib_post(url: str, *, headers: dict[str, str], body: bytes,
                timeout: float) -> tuple[int, bytes]:
    """The default :class:`HttpPost`: the standard library, nothing to install in Lambda."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def dag_run_body(dag_run_id: str, conf: dict, logical_date: str | None = None) -> dict:
    """The ``POST /dags/{dag_id}/dagRuns`` body (Airflow 3 REST API v2).

    ``logical_date`` is sent even when null: Airflow 3.0 requires the field, and a null
    one lets several runs share a day (their ids tell them apart).
    """
    return {"dag_run_id": dag_run_id, "logical_date": logical_date, "conf": conf}


def cli_command(dag_id: str, dag_run_id: str, conf: dict, logical_date: str | None = None) -> str:
    """The Airflow CLI line sent to ``/aws_mwaa/cli`` (shell-quoted like MWAA parses it)."""
    parts = ["dags", "trigger", dag_id, "--run-id", dag_run_id,
             "--conf", json.dumps(conf, sort_keys=True, separators=(",", ":"))]
    if logical_date:
        parts += ["--logical-date", logical_date]
    return " ".join(shlex.quote(p) for p in parts)


def mwaa_client():
    from m7etl.storage.aws import client

    return client("mwaa")


def trigger_dag(env_name: str, dag_id: str, *, conf: dict, dag_run_id: str,
                logical_date: str | None = None, client=None, http: HttpPost | None = None
                ) -> TriggerResult:
    """Start ``dag_id`` on ``env_name`` with ``conf``; an existing ``dag_run_id`` is a success."""
    client = client or mwaa_client()
    try:
        return _via_rest_api(client, env_name, dag_id, conf, dag_run_id, logical_date)
    except _Unsupported as exc:
        result = _via_cli(client, env_name, dag_id, conf, dag_run_id, logical_date,
                          http or urllib_post)
        result.fallback_reason = exc.reason
        return result


class _Unsupported(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _error(exc) -> tuple[str, str, dict]:
    err = exc.response.get("Error", {})
    return str(err.get("Code", "")), str(err.get("Message", "") or ""), exc.response


def _rest_detail(response: dict) -> str:
    body = response.get("RestApiResponse") or {}
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body.get("message") or body)[:300]
    return str(body)[:300]


def _via_rest_api(client, env_name: str, dag_id: str, conf: dict, dag_run_id: str,
                  logical_date: str | None) -> TriggerResult:
    from botocore.exceptions import BotoCoreError, ClientError

    if not hasattr(client, "invoke_rest_api"):
        raise _Unsupported("this AWS SDK predates the InvokeRestApi call")
    path = f"/dags/{dag_id}/dagRuns"
    try:
        response = client.invoke_rest_api(Name=env_name, Method="POST", Path=path,
                                          Body=dag_run_body(dag_run_id, conf, logical_date))
    except ClientError as exc:
        code, message, raw = _error(exc)
        status = raw.get("RestApiStatusCode")
        if code == "RestApiClientException":
            detail = _rest_detail(raw)
            if status == 409:
                return TriggerResult(env_name, dag_id, dag_run_id, ALREADY_EXISTS, REST_API)
            if UNSUPPORTED.search(detail):
                raise _Unsupported(f"InvokeRestApi: {detail}") from None
            if status == 404:
                raise TriggerError(
                    f"MWAA environment {env_name} has no DAG {dag_id} (Airflow answered 404: "
                    f"{detail}).", hint="Upload the DAG file to dags/ and wait for Airflow to "
                    "parse it, or check M7_DAG_ID.") from None
            raise TriggerError(
                f"Airflow on {env_name} refused to start {dag_id} run {dag_run_id} "
                f"(HTTP {status}: {detail}).",
                hint="Check that the DAG is not paused and that the run conf is valid.",
                retryable=status == 429) from None
        if code == "RestApiServerException":
            raise TriggerError(
                f"Airflow on {env_name} failed while starting {dag_id} (HTTP {status}: "
                f"{_rest_detail(raw)}).", hint="Retry; if it persists, read the web server "
                "logs of the environment.", retryable=True) from None
        if code in ("AccessDeniedException", "AccessDenied"):
            raise _Unsupported(f"InvokeRestApi denied ({message})") from None
        if code == "ValidationException" and UNSUPPORTED.search(message):
            raise _Unsupported(f"InvokeRestApi: {message}") from None
        if code == "ResourceNotFoundException":
            raise _not_found(env_name) from None
        raise TriggerError(f"MWAA refused InvokeRestApi on {env_name}: {code}: {message}",
                           hint="Retry later." if code in RETRYABLE_CODES else
                           "Check the environment's state and the caller's permissions.",
                           retryable=code in RETRYABLE_CODES) from None
    except BotoCoreError as exc:
        raise TriggerError(f"Cannot reach MWAA for {env_name} ({exc}).",
                           hint="Check the network (VPC endpoints or NAT) and retry.",
                           retryable=True) from exc
    body = response.get("RestApiResponse") or {}
    return TriggerResult(env_name, dag_id, body.get("dag_run_id", dag_run_id), TRIGGERED,
                         REST_API, state=body.get("state"))


def _not_found(env_name: str) -> TriggerError:
    return TriggerError(f"MWAA environment {env_name} does not exist in this account and region.",
                        hint="Check M7_MWAA_ENV_NAME (m7-etl-mwaa-<env>) and the region.")


def _via_cli(client, env_name: str, dag_id: str, conf: dict, dag_run_id: str,
             logical_date: str | None, http: HttpPost) -> TriggerResult:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        token = client.create_cli_token(Name=env_name)
    except ClientError as exc:
        code, message, _raw = _error(exc)
        if code == "ResourceNotFoundException":
            raise _not_found(env_name) from None
        raise TriggerError(
            f"MWAA refused both InvokeRestApi and CreateCliToken on {env_name}: {code}: {message}",
            hint="Grant the caller airflow:InvokeRestApi (or airflow:CreateCliToken) on the "
                 "environment.", retryable=code in RETRYABLE_CODES) from None
    except BotoCoreError as exc:
        raise TriggerError(f"Cannot reach MWAA for {env_name} ({exc}).",
                           hint="Check the network and retry.", retryable=True) from exc
    url = f"https://{token['WebServerHostname']}{CLI_PATH}"
    command = cli_command(dag_id, dag_run_id, conf, logical_date)
    try:
        status, raw = http(url, headers={"Authorization": f"Bearer {token['CliToken']}",
                                         "Content-Type": "text/plain"},
                           body=command.encode(), timeout=CLI_TIMEOUT_S)
    except OSError as exc:
        raise TriggerError(f"Cannot reach the Airflow web server of {env_name} at {url} ({exc}).",
                           hint="The web server must be reachable from the caller (private "
                                "access needs a route into the VPC).", retryable=True) from exc
    if status != 200:
        text = raw.decode(errors="replace")[:300]
        raise TriggerError(
            f"The Airflow CLI endpoint of {env_name} answered HTTP {status}: {text}",
            hint="A 403 means the CLI token was refused; check airflow:CreateCliToken and the "
                 "environment's web server access mode.", retryable=status >= 500 or status == 429)
    try:
        payload = json.loads(raw)
        stdout = base64.b64decode(payload.get("stdout", "")).decode(errors="replace")
        stderr = base64.b64decode(payload.get("stderr", "")).decode(errors="replace")
    except (ValueError, AttributeError) as exc:
        raise TriggerError(f"The Airflow CLI endpoint of {env_name} sent an unreadable answer "
                           f"({exc}).", hint="Retry; check the environment's health.",
                           retryable=True) from None
    if ALREADY_RE.search(stderr) or ALREADY_RE.search(stdout):
        return TriggerResult(env_name, dag_id, dag_run_id, ALREADY_EXISTS, CLI)
    if dag_run_id in stdout and not _looks_failed(stderr):
        return TriggerResult(env_name, dag_id, dag_run_id, TRIGGERED, CLI, state=_state(stdout))
    last = (stderr.strip().splitlines() or stdout.strip().splitlines() or ["no output"])[-1]
    raise TriggerError(f"`airflow {command}` failed on {env_name}: {last[:300]}",
                       hint="Check that the DAG exists and is parsed (airflow dags list).")


def _looks_failed(stderr: str) -> bool:
    error_line = re.search(r"^\s*(airflow\.)?\w*Error\b", stderr, re.M)
    return "Traceback" in stderr or error_line is not None


def _state(stdout: str) -> str | None:
    match = re.search(r"\b(queued|running|success|failed)\b", stdout)
    return match.group(1) if match else None
