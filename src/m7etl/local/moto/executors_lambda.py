"""moto's Lambda functions, run for real: ``LambdaFunction.invoke`` replaced.

moto keeps a function's zip (``code_bytes``, copied from S3 at CreateFunction as Lambda
copies it) and each layer version's zip, and would run them in Docker. Here they are
written once per sha256 under the work folder and run by the Lambda stand-in's runner (a
fresh CPython of the runtime with the task and the layers only on ``sys.path``, the
function's variables and timeout). The answer has Lambda's shape: the payload,
``X-Amz-Function-Error: Unhandled``, ``X-Amz-Log-Result`` (``Tail``),
``X-Amz-Executed-Version``; ``Event`` is 202 at once and runs on a worker, ``DryRun`` 204.
Each log also goes to moto's CloudWatch Logs (``/aws/lambda/<name>``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from m7etl.exceptions import ConfigurationError
from m7etl.local.standins.lambda_invoke import (
    ASYNC_PAYLOAD_LIMIT,
    STATUS,
    SYNC_PAYLOAD_LIMIT,
    FunctionSpec,
    Invocation,
    LambdaStandin,
    log_tail,
    request_id,
)

log = logging.getLogger("m7etl.local.moto")

KEEP_INVOCATIONS = 50  # the runner's list of answered invocations, trimmed: the server runs long
UPLOAD_HINT = "Upload the zips (m7etl upload), then update the stack (m7etl deploy)."


class ExecutorError(ConfigurationError):
    """A function moto holds cannot be run; ``code`` and ``status`` are Invoke's error."""

    def __init__(self, message: str, *, hint: str, code: str, status: int):
        super().__init__(message, hint=hint)
        self.code, self.status = code, status


# -- pure ----------------------------------------------------------------------------------
def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A request header, whatever its case (moto passes werkzeug headers or plain dicts)."""
    lowered = name.lower()
    return next((v for k, v in (headers or {}).items() if k.lower() == lowered), None)


def invocation_options(headers: Mapping[str, str] | None) -> tuple[str, bool, str]:
    """(invocation type, whether the log tail is asked for, client context) of a request."""
    return (header(headers, "X-Amz-Invocation-Type") or "RequestResponse",
            (header(headers, "X-Amz-Log-Type") or "").lower() == "tail",
            header(headers, "X-Amz-Client-Context") or "")


def payload_bytes(body: str | bytes | None) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else (body or b"")


def request_error(kind: str, payload: bytes) -> tuple[int, str, str] | None:
    """(status, code, message) of the error Lambda answers this request with, or None."""
    if kind not in STATUS:
        return 400, "InvalidParameterValueException", (
            f"Invalid InvocationType {kind!r}: use one of {', '.join(STATUS)}.")
    limit = SYNC_PAYLOAD_LIMIT if kind == "RequestResponse" else ASYNC_PAYLOAD_LIMIT
    if len(payload) > limit:
        return 413, "RequestTooLargeException", (
            f"Request must be smaller than {limit} bytes for the InvokeFunction operation")
    try:
        json.loads(payload or b"{}")
    except ValueError as exc:
        return 400, "InvalidRequestContentException", f"Could not parse request body into json: {exc}"
    return None


def answer_headers(done: Invocation, version: str, tail: bool) -> dict[str, str]:
    """The response headers of a RequestResponse invocation, as Lambda sends them."""
    headers = {"x-amz-executed-version": version, "x-amzn-RequestId": done.request_id}
    if done.function_error:
        headers["x-amz-function-error"] = done.function_error
    if tail:
        headers["x-amz-log-result"] = log_tail(done.log)
    return headers


def variable(value) -> str:
    """A variable as Lambda stores it (CloudFormation may hand moto a number or a boolean)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def function_spec(fn, code: str, layers: tuple[str, ...]) -> FunctionSpec:
    """The stand-in's spec of a moto ``LambdaFunction`` whose zips are ``code`` and ``layers``."""
    return FunctionSpec(fn.function_name, code, fn.handler or "", layers,
                        {k: variable(v) for k, v in (fn.environment_vars or {}).items()},
                        int(fn.timeout or 3), int(fn.memory_size or 128), fn.run_time or "").check()


def source(location: Mapping | None) -> str:
    """Where moto was to read a zip from, for messages (``s3://bucket/key`` or ZipFile)."""
    location = location or {}
    if "S3Bucket" in location:
        return f"s3://{location['S3Bucket']}/{location.get('S3Key', '')}"
    return "the ZipFile given"


def api_error(status: int, code: str, message: str):
    """A moto error the Lambda client parses as the modelled one (rest-json)."""
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(code, message)
    error.code = status
    return error


# -- the runner ------------------------------------------------------------------------------
class MotoRunner(LambdaStandin):
    """The stand-in's runner for one moto account and region (it serves no HTTP itself)."""

    def __init__(self, cache_dir: Path, *, account: str, region: str, log_dir: Path):
        super().__init__(cache_dir, region=region, log_dir=log_dir)
        self.account = account

    def arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"

    def environment(self, spec: FunctionSpec, task: Path, runtime: Path) -> dict[str, str]:
        env = super().environment(spec, task, runtime)
        env["M7_STANDIN_ACCOUNT"] = self.account
        for key in [k for k in env if k.startswith("AWS_ENDPOINT_URL_")]:
            if key not in self.env and key not in spec.environment:
                del env[key]  # this process's own endpoints are not the function's
        return env


class CodeFiles:
    """moto's zips as files, written once per sha256 (``<root>/<sha>.zip``)."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()

    def path(self, data: bytes, digest: str | None, what: str, location: Mapping | None) -> Path:
        if not data:
            raise ExecutorError(f"{what} has no code: moto found no {source(location)} when it "
                                "was created.", hint=UPLOAD_HINT, code="InvalidZipFileException",
                                status=502)
        name = base64.b64decode(digest).hex() if digest else hashlib.sha256(data).hexdigest()
        target = self.root / f"{name[:32]}.zip"
        with self._lock:
            if not target.is_file():
                self.root.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".zip-", dir=self.root)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, target)
        return target


class LambdaExecutor:
    """Runs moto's functions; ``env`` gives the variables every run gets (the endpoints)."""

    def __init__(self, root: Path, env: Callable[[], dict[str, str]], workers: int):
        self.root, self.env, self.workers = root, env, workers
        self.files = CodeFiles(root / "zips")
        self._runners: dict[tuple[str, str], MotoRunner] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []

    def runner(self, account: str, region: str) -> MotoRunner:
        with self._lock:
            if (account, region) not in self._runners:
                self._runners[account, region] = MotoRunner(
                    self.root, account=account, region=region, log_dir=self.root / "logs")
            return self._runners[account, region]

    def spec(self, fn) -> FunctionSpec:
        """The function's spec, its zip and its layers' zips written to files."""
        from moto.awslambda.models import lambda_backends

        code = self.files.path(fn.code_bytes, getattr(fn, "code_sha_256", None),
                               f"Function {fn.function_name}", fn.code)
        backend = lambda_backends[fn.account_id][fn.region]
        layers = []
        for item in fn.layers:
            version = backend.layers_versions_by_arn(item["Arn"])
            if version is None:
                raise ExecutorError(f"Function {fn.function_name}: layer version {item['Arn']} "
                                    "no longer exists.", hint=UPLOAD_HINT,
                                    code="ResourceNotFoundException", status=404)
            layers.append(str(self.files.path(version.code_bytes, version.code_sha_256,
                                              f"Layer version {item['Arn']}", version.content)))
        return function_spec(fn, str(code), tuple(layers))

    def run(self, fn, payload: bytes, kind: str, rid: str, context: str = "") -> Invocation:
        runner = self.runner(fn.account_id, fn.region)
        runner.env = self.env()
        spec = runner.register(self.spec(fn))  # checks the runtime's interpreter too
        done = runner.run(spec, payload, invocation_type=kind, rid=rid, client_context=context)
        del runner.invocations[:-KEEP_INVOCATIONS]
        try:
            fn.logs_backend.ensure_log_group(fn.logs_group_name)
            fn.save_logs(done.log)
        except Exception:  # the log is in the work folder anyway
            log.warning("cannot write the log of %s to moto's CloudWatch", fn.function_name,
                        exc_info=True)
        return done

    def invoke(self, fn, body, headers, response_headers: dict) -> bytes:
        """moto's ``LambdaFunction.invoke``: the payload; headers set in ``response_headers``."""
        kind, tail, context = invocation_options(headers)
        payload = payload_bytes(body)
        error = request_error(kind, payload)
        if error:
            raise api_error(*error)
        rid = request_id()
        if kind != "RequestResponse":
            if kind == "Event":
                self.submit(fn, payload, rid, context)
            response_headers["x-amzn-RequestId"] = rid
            return b""
        try:
            done = self.run(fn, payload, kind, rid, context)
        except ExecutorError as exc:
            raise api_error(exc.status, exc.code, str(exc)) from None
        except ConfigurationError as exc:  # the stand-in refuses the spec or finds no runtime
            raise api_error(400, "InvalidParameterValueException", str(exc)) from None
        response_headers.update(answer_headers(done, str(fn.version), tail))
        return done.payload

    def submit(self, fn, payload: bytes, rid: str | None = None, context: str = "") -> str:
        """An asynchronous (``Event``) invocation: queued, run by a worker; its request id."""
        rid = rid or request_id()
        with self._lock:
            while len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"m7-lambda-event-{len(self._threads)}")
                thread.start()
                self._threads.append(thread)
        self._queue.put((fn, payload, rid, context))
        return rid

    def _work(self) -> None:
        while True:
            fn, payload, rid, context = self._queue.get()
            if fn is None:
                return
            try:
                done = self.run(fn, payload, "Event", rid, context)
                if done.function_error:
                    log.warning("Event invocation %s of %s failed: %s", rid, fn.function_name,
                                done.payload.decode("utf-8", "replace")[:500])
            except Exception as exc:  # no caller to tell: the server's log says it
                log.error("Event invocation %s of %s not run: %s", rid, fn.function_name, exc)
            finally:
                self._queue.task_done()

    def stop(self) -> None:
        """Kill the running invocations' processes; the workers end."""
        with self._lock:
            for _ in self._threads:
                self._queue.put((None, b"", "", ""))
            self._threads = []
            runners = list(self._runners.values())
        for runner in runners:
            runner.stop()


_current: dict[str, LambdaExecutor] = {}


def install(executor: LambdaExecutor) -> None:
    """Make moto's ``LambdaFunction.invoke`` run through ``executor`` (patched once)."""
    from moto.awslambda.models import LambdaFunction

    _current["executor"] = executor
    if getattr(LambdaFunction.invoke, "_m7etl", False):
        return

    def invoke(self, body, request_headers, response_headers):
        return _current["executor"].invoke(self, body, request_headers, response_headers)

    invoke._m7etl = True  # type: ignore[attr-defined]
    invoke.__doc__ = LambdaExecutor.invoke.__doc__
    LambdaFunction.invoke = invoke


def current() -> LambdaExecutor:
    return _current["executor"]
