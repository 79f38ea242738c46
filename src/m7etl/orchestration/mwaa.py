"""MWAA's two routes into Airflow, and the DAG trigger the S3-event function uses.

* **InvokeRestApi** (:func:`rest_call`): the Airflow 3 REST API through MWAA's control
  plane, authorized by IAM, so it works when the web server is private. Checked against
  botocore's model (``mwaa/2020-07-01``): ``Path`` has no ``/api/v2`` prefix and at most 64
  characters, ``Method`` is GET/PUT/POST/PATCH/DELETE; Airflow's own errors come back as
  ``RestApiClientException``/``RestApiServerException`` carrying ``RestApiStatusCode`` and
  ``RestApiResponse``. AWS documents a 10 s timeout and a 6 MB answer.
* **CLI token** (:func:`cli_call`): ``CreateCliToken``, then the Airflow command line as a
  text body to ``https://<WebServerHostname>/aws_mwaa/cli``; the answer is JSON with base64
  ``stdout`` and ``stderr`` (no exit code is documented). A token lasts 60 s. Real Airflow
  writes Python warnings to stderr even when a command works, so a failure is stderr with
  something besides warnings (a traceback, ``... does not exist``, a usage error).

Every failure is an :class:`MwaaError` (a ``DeployError``) naming the environment, the
cause and the next step, with ``retryable`` set when the same call can succeed later:
:class:`RouteUnavailable` when the route itself cannot be used (the other may work),
:class:`AirflowError` when Airflow answered with an error. The error mapping lives in
:func:`_client_error` and :func:`_sdk_error` only.

:func:`trigger_dag` (the S3-event function) tries InvokeRestApi first and the CLI token when
the REST route is unavailable. A ``dag_run_id`` that already exists (HTTP 409) is a
success: callers derive the id from their input, so retries are idempotent.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from m7etl.exceptions import DeployError
from m7etl.storage import errors

REST_API = "rest_api"
CLI = "cli"
TRIGGERED = "triggered"
ALREADY_EXISTS = "already_exists"
CLI_PATH = "/aws_mwaa/cli"
CLI_TIMEOUT_S = 30
MAX_PATH = 64  # RestApiPath's max length in the service model
METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE")
TOKEN_REUSE_S = 45  # a CLI token lasts 60 s: reuse it for 45, then ask for a new one
UNSUPPORTED = re.compile(r"not (currently )?supported|unsupported|not available|not enabled",
                         re.IGNORECASE)
ALREADY_RE = re.compile(r"already exists|duplicate|UniqueViolation|IntegrityError", re.IGNORECASE)
# stderr lines that are not failures: Python warnings (and their continuation lines) and
# Airflow's own INFO/WARNING log lines.
NOISE_LINE = re.compile(r"\w*Warning: |^\[[^\]]+\] \{[^}]*\} (DEBUG|INFO|WARNING) - "
                        r"|^\s*warnings\.warn\(")
ERROR_LINE = re.compile(r"^Traceback \(most recent call last\)|^\s*([\w.]+\.)?\w*(Error|Exception"
                        r"|NotFound|AlreadyExists)\b|command error|does not exist|not found",
                        re.IGNORECASE)


class MwaaError(DeployError):
    """An MWAA call failed (names the environment, the cause and the next step)."""

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = False,
                 operation: str | None = None):
        super().__init__(message, hint=hint, retryable=retryable)
        self.operation = operation


class RouteUnavailable(MwaaError):
    """This route cannot reach Airflow on the environment (the API is not supported or is
    denied, the web server is out of reach): the other route may work."""


class AirflowError(MwaaError):
    """Airflow answered with an error: ``status`` is its HTTP status on the REST route
    (None on the CLI route), ``detail`` its own words."""

    def __init__(self, message: str, *, status: int | None = None, detail: str = "",
                 hint: str | None = None, retryable: bool = False):
        super().__init__(message, hint=hint, retryable=retryable)
        self.status = status
        self.detail = detail


class TriggerError(MwaaError):
    """MWAA did not start the DAG run (names the environment, the cause and the next step)."""


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


@dataclass(frozen=True)
class RestAnswer:
    """Airflow's successful answer through InvokeRestApi."""

    status: int
    body: Any


@dataclass(frozen=True)
class CliOutput:
    """What ``/aws_mwaa/cli`` sent back for one command, decoded."""

    command: str
    stdout: str
    stderr: str

    @property
    def problems(self) -> list[str]:
        """The stderr lines that are not Python warnings (nothing when the command worked)."""
        kept, in_warning = [], False
        for line in self.stderr.splitlines():
            if not line.strip():
                in_warning = False
            elif NOISE_LINE.search(line):
                in_warning = True
            elif in_warning and not ERROR_LINE.search(line):
                continue
            else:
                in_warning = False
                kept.append(line)
        return kept

    @property
    def ok(self) -> bool:
        return not self.problems

    def last_problem(self) -> str:
        lines = [x.strip() for x in self.problems if x.strip()] or \
            [x.strip() for x in self.stdout.splitlines() if x.strip()] or ["no output"]
        return lines[-1][:300]


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


def mwaa_client():
    from m7etl.storage.aws import client

    return client("mwaa")


# -- InvokeRestApi -------------------------------------------------------------------------
def rest_request(env_name: str, method: str, path: str, body: dict | None = None,
                 query: dict | None = None) -> dict:
    """The ``invoke_rest_api`` keyword arguments, checked against the service model."""
    if method not in METHODS:
        raise MwaaError(f"InvokeRestApi has no method {method!r}.", hint=f"Use one of {METHODS}.")
    if not path.startswith("/") or path.startswith("/api/"):
        raise MwaaError(f"InvokeRestApi path {path!r} must start with '/' and have no /api/v2 "
                        "prefix.", hint="Write it as Airflow's route, e.g. /dags/{dag_id}/dagRuns.")
    if len(path) > MAX_PATH:
        raise RouteUnavailable(
            f"InvokeRestApi cannot call {path} on {env_name}: the path is {len(path)} characters "
            f"and MWAA takes at most {MAX_PATH}.", hint="Use the CLI token route (--via "
            "cli-token), or shorter DAG and run ids.", operation="InvokeRestApi")
    request: dict = {"Name": env_name, "Method": method, "Path": path}
    if body is not None:
        request["Body"] = body
    if query:
        request["QueryParameters"] = query
    return request


def rest_call(client, env_name: str, method: str, path: str, body: dict | None = None, *,
              query: dict | None = None) -> RestAnswer:
    """One Airflow REST call through MWAA; Airflow's errors raise :class:`AirflowError`."""
    from botocore.exceptions import BotoCoreError, ClientError

    request = rest_request(env_name, method, path, body, query)
    if not hasattr(client, "invoke_rest_api"):
        raise RouteUnavailable("This AWS SDK predates the InvokeRestApi call.",
                               hint="Upgrade boto3, or use the CLI token route.",
                               operation="InvokeRestApi")
    try:
        response = client.invoke_rest_api(**request)
    except ClientError as exc:
        raise _client_error(exc, env_name, "InvokeRestApi", f"{method} {path}") from None
    except BotoCoreError as exc:
        raise _sdk_error(exc, env_name) from exc
    return RestAnswer(int(response.get("RestApiStatusCode") or 200), response.get("RestApiResponse"))


def rest_detail(body: Any) -> str:
    """Airflow 3's error body in a few words: ``detail`` is a text, a list of pydantic
    errors (422) or a dict (the unique-constraint handler's 409)."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                parts.append(f"{where}: {item.get('msg', item)}" if where else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)[:300]
    if isinstance(detail, dict):
        return str(detail.get("reason") or detail.get("message") or detail.get("title")
                   or detail)[:300]
    return str(detail)[:300]


# -- the CLI token -------------------------------------------------------------------------
class CliTokens:
    """The CLI token of one environment, reused while fresh (tokens last 60 s)."""

    def __init__(self, client, env_name: str, clock=time.monotonic):
        self.client = client
        self.env_name = env_name
        self.clock = clock
        self._token: tuple[str, str, float] | None = None

    def get(self) -> tuple[str, str, bool]:
        """``(token, web server host, reused)``."""
        if self._token and self.clock() - self._token[2] < TOKEN_REUSE_S:
            return self._token[0], self._token[1], True
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.create_cli_token(Name=self.env_name)
        except ClientError as exc:
            raise _client_error(exc, self.env_name, "CreateCliToken") from None
        except BotoCoreError as exc:
            raise _sdk_error(exc, self.env_name) from exc
        self._token = (answer["CliToken"], answer["WebServerHostname"], self.clock())
        return self._token[0], self._token[1], False

    def forget(self) -> None:
        self._token = None


def cli_call(client, env_name: str, command: str, http: HttpPost | None = None, *,
             tokens: CliTokens | None = None, web_url: str | None = None, check: bool = True,
             hint: str | None = None) -> CliOutput:
    """Run ``airflow <command>`` on the environment's web server.

    ``web_url`` replaces ``https://<WebServerHostname>`` (a local stand-in speaks plain
    HTTP). With ``check``, a command that wrote more than warnings to stderr raises
    :class:`AirflowError`; without, the caller reads :attr:`CliOutput.problems` itself.
    """
    http = http or urllib_post
    tokens = tokens or CliTokens(client, env_name)
    for _attempt in range(2):
        token, host, reused = tokens.get()
        url = f"{(web_url or f'https://{host}').rstrip('/')}{CLI_PATH}"
        try:
            status, raw = http(url, headers={"Authorization": f"Bearer {token}",
                                             "Content-Type": "text/plain"},
                               body=command.encode(), timeout=CLI_TIMEOUT_S)
        except OSError as exc:
            raise RouteUnavailable(
                f"Cannot reach the Airflow web server of {env_name} at {url} ({exc}).",
                hint="The web server must be reachable from here (a private one needs a route "
                     "into the VPC); or use the REST route (--via rest-api).", retryable=True,
                operation="cli") from exc
        if status in (401, 403) and reused:
            tokens.forget()  # expired between two calls: one new token, once
            continue
        break
    text = raw.decode(errors="replace")[:300]
    if status in (401, 403):
        raise RouteUnavailable(
            f"The Airflow CLI endpoint of {env_name} answered HTTP {status}: {text}",
            hint="A 403 means the CLI token was refused; check airflow:CreateCliToken and the "
                 "environment's web server access mode.", operation="cli")
    if status != 200:
        raise MwaaError(f"The Airflow CLI endpoint of {env_name} answered HTTP {status}: {text}",
                        hint="Retry; if it persists, read the environment's web server logs.",
                        retryable=status >= 500 or status == 429, operation="cli")
    try:
        payload = json.loads(raw)
        output = CliOutput(command, base64.b64decode(payload.get("stdout", "")).decode(
            errors="replace"), base64.b64decode(payload.get("stderr", "")).decode(errors="replace"))
    except (ValueError, AttributeError) as exc:
        raise MwaaError(f"The Airflow CLI endpoint of {env_name} sent an unreadable answer "
                        f"({exc}).", hint="Retry; check the environment's health.",
                        retryable=True, operation="cli") from None
    if check and not output.ok:
        raise AirflowError(f"`airflow {command}` failed on {env_name}: {output.last_problem()}",
                           detail="\n".join(output.problems),
                           hint=hint or f"The whole error is in the log group "
                                        f"airflow-{env_name}-WebServer.")
    return output


# -- the error mapping, in one place -------------------------------------------------------
def _client_error(exc, env_name: str, operation: str, what: str = "") -> MwaaError:
    """Airflow's own answers by their status; the rest by the category of
    :func:`m7etl.storage.errors.classify`."""
    code, message, category = errors.error_code(exc), errors.error_message(exc), errors.classify(exc)
    if code in ("RestApiClientException", "RestApiServerException"):
        status = exc.response.get("RestApiStatusCode")
        detail = rest_detail(exc.response.get("RestApiResponse") or {})
        if code == "RestApiClientException" and UNSUPPORTED.search(detail):
            return RouteUnavailable(f"InvokeRestApi: {detail}", operation=operation)
        server = code == "RestApiServerException"
        return AirflowError(
            f"Airflow on {env_name} answered HTTP {status} to {what}: {detail}", status=status,
            detail=detail, retryable=server or status == 429,
            hint="Retry; if it persists, read the web server logs." if server else None)
    if category == errors.DENIED:
        return RouteUnavailable(f"MWAA denied {operation} on {env_name} ({message})",
                                hint=f"Grant the caller airflow:{operation} on the environment, "
                                     "or use the other route.", operation=operation)
    if code == "ValidationException" and UNSUPPORTED.search(message):
        return RouteUnavailable(f"{operation}: {message}", operation=operation)
    if category == errors.NOT_FOUND:
        return MwaaError(f"MWAA environment {env_name} does not exist in this account and region.",
                         hint="Check its name (m7-etl-mwaa-<env>: M7_MWAA_ENV_NAME in Lambda, "
                              "mwaa_environment in m7etl.toml) and the region.",
                         operation=operation)
    if category == errors.EXPIRED:
        return MwaaError(f"The AWS credentials used for {env_name} have expired ({code}).",
                         hint="Refresh them (aws sso login, or new session credentials) and "
                              "run again.", operation=operation)
    retryable = category in errors.RETRYABLE
    return MwaaError(f"MWAA refused {operation} on {env_name}: {code}: {message}",
                     hint="Retry later." if retryable else
                     "Check the environment's state and the caller's permissions.",
                     retryable=retryable, operation=operation)


def _sdk_error(exc, env_name: str) -> MwaaError:
    from botocore.exceptions import NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return MwaaError(f"No AWS credentials found to call MWAA for {env_name}.",
                         hint="Configure them (aws configure, AWS_PROFILE or environment "
                              "variables) and run again.")
    if isinstance(exc, NoRegionError):
        return MwaaError(f"No AWS region set to call MWAA for {env_name}.",
                         hint="Pass --region or set AWS_REGION and run again.")
    return MwaaError(f"Cannot reach MWAA for {env_name} ({exc}).",
                     hint="Check the network (VPC endpoints or NAT) and retry.", retryable=True)


# -- starting a DAG run --------------------------------------------------------------------
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


def trigger_rest(client, env_name: str, dag_id: str, conf: dict, dag_run_id: str,
                 logical_date: str | None = None) -> TriggerResult:
    """``POST /dags/{dag_id}/dagRuns``; an existing id is ALREADY_EXISTS."""
    try:
        answer = rest_call(client, env_name, "POST", f"/dags/{dag_id}/dagRuns",
                           dag_run_body(dag_run_id, conf, logical_date))
    except AirflowError as exc:
        if exc.status == 409:
            return TriggerResult(env_name, dag_id, dag_run_id, ALREADY_EXISTS, REST_API)
        if exc.status == 404:
            raise TriggerError(
                f"MWAA environment {env_name} has no DAG {dag_id} (Airflow answered 404: "
                f"{exc.detail}).", hint="Upload the DAG file to dags/ and wait for Airflow to "
                "parse it, or check the DAG id (M7_DAG_ID, dag_id in m7etl.toml).") from None
        if exc.retryable and exc.status != 429:
            raise TriggerError(f"Airflow on {env_name} failed while starting {dag_id} (HTTP "
                               f"{exc.status}: {exc.detail}).", hint=exc.hint,
                               retryable=True) from None
        raise TriggerError(
            f"Airflow on {env_name} refused to start {dag_id} run {dag_run_id} "
            f"(HTTP {exc.status}: {exc.detail}).",
            hint="Check that the DAG is not paused and that the run conf is valid.",
            retryable=exc.status == 429) from None
    except RouteUnavailable:
        raise
    except MwaaError as exc:
        raise _as_trigger_error(exc) from None
    body = answer.body or {}
    return TriggerResult(env_name, dag_id, body.get("dag_run_id", dag_run_id), TRIGGERED,
                         REST_API, state=body.get("state"))


def trigger_cli(client, env_name: str, dag_id: str, conf: dict, dag_run_id: str,
                logical_date: str | None = None, http: HttpPost | None = None, *,
                tokens: CliTokens | None = None, web_url: str | None = None) -> TriggerResult:
    """``airflow dags trigger`` through the CLI token; an existing id is ALREADY_EXISTS."""
    command = cli_command(dag_id, dag_run_id, conf, logical_date)
    try:
        out = cli_call(client, env_name, command, http, tokens=tokens, web_url=web_url,
                       check=False)
    except RouteUnavailable:
        raise
    except MwaaError as exc:
        raise _as_trigger_error(exc) from None
    if not out.ok and any(ALREADY_RE.search(line) for line in out.problems):
        return TriggerResult(env_name, dag_id, dag_run_id, ALREADY_EXISTS, CLI)
    if out.ok and (dag_run_id in out.stdout or dag_run_id == table_cell(out.stdout, "dag_run_id")):
        return TriggerResult(env_name, dag_id, dag_run_id, TRIGGERED, CLI,
                             state=table_cell(out.stdout, "state") or _state(out.stdout))
    raise TriggerError(f"`airflow {command}` failed on {env_name}: {out.last_problem()}",
                       hint="Check that the DAG exists and is parsed (airflow dags list).")


def trigger_dag(env_name: str, dag_id: str, *, conf: dict, dag_run_id: str,
                logical_date: str | None = None, client=None, http: HttpPost | None = None
                ) -> TriggerResult:
    """Start ``dag_id`` on ``env_name`` with ``conf``; an existing ``dag_run_id`` is a success.

    InvokeRestApi first; the CLI token when the REST route is unavailable.
    """
    client = client or mwaa_client()
    try:
        return trigger_rest(client, env_name, dag_id, conf, dag_run_id, logical_date)
    except RouteUnavailable as rest:
        try:
            result = trigger_cli(client, env_name, dag_id, conf, dag_run_id, logical_date,
                                 http or urllib_post)
        except RouteUnavailable as cli:
            if cli.operation == "CreateCliToken":
                raise TriggerError(f"MWAA refused both InvokeRestApi and CreateCliToken on "
                                   f"{env_name}: {cli.message}", hint="Grant the caller "
                                   "airflow:InvokeRestApi (or airflow:CreateCliToken) on the "
                                   "environment.", retryable=cli.retryable) from None
            raise _as_trigger_error(cli) from None
        result.fallback_reason = rest.message
        return result


def _as_trigger_error(exc: MwaaError) -> TriggerError:
    return TriggerError(exc.message, hint=exc.hint, retryable=exc.retryable,
                        operation=exc.operation)


def table_cell(stdout: str, column: str) -> str | None:
    """A column of the one-row table ``airflow dags trigger`` prints, its wrapped pieces
    joined: Airflow's console wraps long cells over several lines (80 columns off a TTY)."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        names = [c.strip() for c in line.split("|")]
        if column in names and i + 1 < len(lines) and set(lines[i + 1].strip()) <= set("=+-"):
            index = names.index(column)
            cells = [row.split("|") for row in lines[i + 2:] if row.strip()]
            return "".join(c[index].strip() for c in cells if len(c) == len(names)) or None
    return None


def _state(stdout: str) -> str | None:
    match = re.search(r"\b(queued|running|success|failed)\b", stdout)
    return match.group(1) if match else None
