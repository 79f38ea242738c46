"""A local stand-in for AWS Lambda's ``Invoke``: the built zips, run by a fresh CPython.

moto runs Lambda code only in Docker (absent here), so ``make dag-test`` and the local stack
invoke the functions here, over Lambda's rest-json protocol (botocore's ``lambda/2015-03-31``
model): ``POST /2015-03-31/functions/{name}/invocations``, ``X-Amz-Invocation-Type``
RequestResponse (200), Event (202) or DryRun (204), ``X-Amz-Log-Type: Tail``. Zips are
unpacked once per sha256 (``task/<sha>`` = /var/task, ``opt/<sha>`` = /opt); each invocation
is a new ``python3.x -I -S`` whose ``sys.path`` is the task, the layers and the runtime's SDK
only. Payload in on stdin, result out on stdout; errors, timeouts (the process group is
killed) and crashes come back as Lambda gives them. docs/local.md: what is not modelled.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import glob
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from m7etl.exceptions import ConfigurationError
from m7etl.local.standins.glue_jobs import HttpStandin, check_keys, kill_group, place, s3_object, serve

log = logging.getLogger("m7etl.local.standins.lambda")

ACCOUNT = "123456789012"  # moto's default account
DEFAULT_REGION = "eu-west-1"
INVOKE_URI = "/2015-03-31/functions/{FunctionName}/invocations"  # the model's requestUri
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
H_INVOCATION_TYPE, H_LOG_TYPE = "X-Amz-Invocation-Type", "X-Amz-Log-Type"
H_CLIENT_CONTEXT, H_FUNCTION_ERROR = "X-Amz-Client-Context", "X-Amz-Function-Error"
H_LOG_RESULT, H_EXECUTED_VERSION = "X-Amz-Log-Result", "X-Amz-Executed-Version"
STATUS = {"RequestResponse": 200, "Event": 202, "DryRun": 204}
SYNC_PAYLOAD_LIMIT = 6_291_456  # bytes, a synchronous invocation's request
ASYNC_PAYLOAD_LIMIT = 262_144
LOG_TAIL_BYTES = 4096
RUNTIMES = {"python3.12": "3.12", "python3.13": "3.13"}
SDK_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
# Set by Lambda itself: a function may not define them (CreateFunction refuses them).
RESERVED = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"})
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SPEC_KEYS = ("name", "code", "handler", "layers", "environment", "timeout", "memory", "runtime")

# Run by ``python3.x -I -S -c``; argv: task, runtime, handler, request id, deadline (epoch
# ms), client context (base64 or ""), layer folders. Errors have the Python runtime's shape.
BOOTSTRAP = r'''
import importlib, json, os, resource, sys, time, traceback
result = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)  # the function's stdout goes to the log; stdout carries the result only
sys.stdout.reconfigure(line_buffering=True)
task, runtime, handler, request_id, deadline, client_context, *layers = sys.argv[1:]
site = "/python/lib/python%d.%d/site-packages" % sys.version_info[:2]
sys.path[:0] = [task] + [p for layer in reversed(layers)  # a later layer's files win
                         for p in (layer + "/python", layer + site)] + [runtime]

def finish(ok, doc, init_ms=0):
    memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    result.write(json.dumps({"ok": ok, "payload": doc, "init_ms": init_ms, "memory_mb": memory}))
    result.flush()
    sys.exit(0)

def fail(kind, message, stack=(), init_ms=0):
    doc = {"errorMessage": message, "errorType": kind, "requestId": request_id, "stackTrace": stack}
    finish(False, doc, init_ms)

def unhandled(exc, init_ms):
    tb = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != "<string>"]
    stack = traceback.format_list(tb)
    print("[ERROR] %s: %s\nTraceback (most recent call last):\n%s" % (
        type(exc).__name__, exc, "".join(stack)), file=sys.stderr)
    fail(type(exc).__name__, str(exc), stack, init_ms)

env = os.environ

class Context:
    function_name, function_version = env["AWS_LAMBDA_FUNCTION_NAME"], "$LATEST"
    memory_limit_in_mb = env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
    log_group_name = env["AWS_LAMBDA_LOG_GROUP_NAME"]
    log_stream_name = env["AWS_LAMBDA_LOG_STREAM_NAME"]
    invoked_function_arn = "arn:aws:lambda:%s:%s:function:%s" % (
        env["AWS_REGION"], env["M7_STANDIN_ACCOUNT"], function_name)
    aws_request_id, identity, client_context = request_id, None, None

    def get_remaining_time_in_millis(self):
        return max(0, int(float(deadline) - time.time() * 1000))

if client_context:
    import base64, types
    data = json.loads(base64.b64decode(client_context))
    Context.client_context = types.SimpleNamespace(**{k: data.get(k) for k in ("client", "custom", "env")})
started = time.monotonic()
modname, _, fname = handler.rpartition(".")  # FunctionSpec.check: there is a dot
try:
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as exc:
        fail("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (modname, exc))
    except SyntaxError as exc:
        fail("Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (modname, exc))
    function = getattr(module, fname, None)
    if function is None:
        fail("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (fname, modname))
except Exception as exc:
    unhandled(exc, 0)
init_ms = (time.monotonic() - started) * 1000
try:
    answer = function(json.loads(sys.stdin.buffer.read() or b"{}"), Context())
except Exception as exc:
    unhandled(exc, init_ms)
try:
    text = json.dumps(answer)
except (TypeError, ValueError) as exc:
    fail("Runtime.MarshalError", "Unable to marshal response: %s" % exc, [], init_ms)
finish(True, json.loads(text), init_ms)
'''


# -- functions -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FunctionSpec:
    """What CreateFunction holds. ``code`` and ``layers`` are zip paths (re-read when they
    change, so a rebuilt zip is picked up) or ``s3://`` objects (copied at registration, as
    Lambda copies the code at CreateFunction)."""

    name: str
    code: str
    handler: str
    layers: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout: int = 3  # seconds, Lambda's default
    memory: int = 128  # MB; reported, not enforced
    runtime: str = "python3.12"

    def check(self) -> FunctionSpec:
        reserved = ", ".join(sorted(set(self.environment) & RESERVED))
        for failed, what, hint in (
                (not NAME.match(self.name), "the name is not 1-64 letters, digits, - or _",
                 "Use the stack's name."),
                ("." not in self.handler, f"handler {self.handler!r} is not module.function",
                 "E.g. raw_to_silver.handler."),
                (not 1 <= self.timeout <= 900, f"timeout {self.timeout} is not 1-900 seconds",
                 "Lambda's limit is 900."),
                (self.runtime not in RUNTIMES, f"runtime {self.runtime} is not supported",
                 f"Use {', '.join(RUNTIMES)}."),
                (reserved, f"reserved environment variable(s) {reserved}",
                 "Lambda sets these itself; remove them from the function's variables."),
                (any(not isinstance(v, str) for v in self.environment.values()),
                 "environment values must be strings", 'Quote them, e.g. "5.0".')):
            if failed:
                raise ConfigurationError(f"Function {self.name!r}: {what}.", hint=hint)
        return self

    @classmethod
    def from_dict(cls, data: Mapping, base: Path | None = None, source: str = "") -> FunctionSpec:
        """A spec from JSON (keys: SPEC_KEYS); relative zip paths are relative to ``base``."""
        check_keys(data, SPEC_KEYS, ("name", "code", "handler"), "Function", source)
        return cls(data["name"], place(data["code"], base), data["handler"],
                   tuple(place(p, base) for p in data.get("layers", ())),
                   dict(data.get("environment") or {}),
                   int(data.get("timeout", 3)), int(data.get("memory", 128)),
                   data.get("runtime", "python3.12")).check()


def load_functions(path: str | Path) -> list[FunctionSpec]:
    """Functions from a JSON file: a list of specs, or ``{"functions": [...]}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"Cannot read the functions file {path}: {exc}.",
                                 hint="Give a JSON list of functions (docs/local.md).") from None
    items = data.get("functions", []) if isinstance(data, dict) else data
    return [FunctionSpec.from_dict(item, path.parent, str(path)) for item in items]


# -- interpreters and files ------------------------------------------------------------------
@functools.cache
def cpython_version(executable: str) -> str | None:
    """``"3.12"`` when ``executable`` is a working CPython, else None."""
    try:
        proc = subprocess.run(
            [executable, "-I", "-S", "-c",
             "import sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    name, _, version = proc.stdout.strip().partition(" ")
    return version if proc.returncode == 0 and name == "cpython" else None


def find_python(version: str) -> str | None:
    """A CPython ``version``: ``$M7_PY312`` (which must be one), a pyenv version, ``python3.12``
    on PATH, or this interpreter (a pyenv shim of an unselected version is passed over)."""
    variable = "M7_PY" + version.replace(".", "")
    if given := os.environ.get(variable):
        if (found := cpython_version(given)) != version:
            raise ConfigurationError(f"${variable}={given} is not a CPython {version} "
                                     f"(it reports {found}).", hint=f"Unset {variable} or fix it.")
        return given
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = sorted(glob.glob(str(pyenv / "versions" / f"{version}*" / "bin" /
                                      f"python{version}")))
    candidates += [shutil.which(f"python{version}"), sys.executable]
    return next((c for c in candidates if c and cpython_version(c) == version), None)


def runtime_sdk(folder: Path) -> Path:
    """/var/runtime: the SDK Lambda's Python runtime provides (boto3 and its dependencies),
    symlinked from this environment; pure Python, so any 3.x interpreter loads it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SDK_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise ConfigurationError(f"{name} is not installed; the runtime SDK needs it.",
                                     hint="Run `make install`.")
        source = Path(spec.origin)
        source = source.parent if source.name == "__init__.py" else source
        with contextlib.suppress(FileExistsError):  # another stand-in may make it meanwhile
            os.symlink(source, folder / source.name)
    return folder


class CodeCache:
    """Zips unpacked once per sha256 (``<root>/<kind>/<sha>``), shared by invocations."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._hashes: dict[tuple[str, int, int], str] = {}

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in self._hashes:
            with path.open("rb") as f:
                self._hashes[key] = hashlib.file_digest(f, "sha256").hexdigest()
        return self._hashes[key]

    def unpack(self, path: Path, kind: str) -> tuple[Path, bool]:
        """(folder, whether it was unpacked now: a cold start)."""
        with self._lock:
            target = self.root / kind / self.sha256(path)[:24]
            if target.is_dir():
                return target, False
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
            with zipfile.ZipFile(path) as zf:
                zf.extractall(tmp)
            try:
                tmp.rename(target)
            except OSError:  # another process unpacked the same sha meanwhile
                shutil.rmtree(tmp, ignore_errors=True)
            return target, True


@dataclass
class Invocation:
    """One invocation as answered (``LambdaStandin.invocations`` keeps them, oldest first)."""

    function: str
    request_id: str
    invocation_type: str
    function_error: str | None
    payload: bytes
    log: str
    seconds: float
    cold: bool
    init_ms: float = 0.0


def request_id() -> str:
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def log_tail(text: str) -> str:
    """X-Amz-Log-Result: the last 4 KB of the log, base64, starting on a whole character."""
    data = text.encode("utf-8")[-LOG_TAIL_BYTES:]
    while data and data[0] & 0xC0 == 0x80:
        data = data[1:]
    return base64.b64encode(data).decode()


def split_name(raw: str) -> tuple[str, str | None]:
    """(name, qualifier) of a function name, name:qualifier, ARN or partial ARN."""
    text = unquote(raw).split(":function:", 1)[-1]
    name, _, qualifier = text.partition(":")
    return name, qualifier or None


# -- the stand-in -----------------------------------------------------------------------------
class LambdaStandin(HttpStandin):
    """Invoke for registered functions. ``env`` adds variables to every function under its
    own (e.g. ``{"AWS_ENDPOINT_URL": moto}``); ``log_dir`` keeps each whole log
    (``<function>/<request id>.log``), as CloudWatch would."""

    def __init__(self, cache_dir: str | Path, *, region: str | None = None,
                 env: Mapping[str, str] | None = None, log_dir: str | Path | None = None,
                 s3_client=None):
        self.cache_dir = Path(cache_dir)
        self.region = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        self.env = dict(env or {})
        self.log_dir = Path(log_dir) if log_dir else None
        self.s3_client = s3_client
        self.functions: dict[str, FunctionSpec] = {}
        self.invocations: list[Invocation] = []
        self.cache = CodeCache(self.cache_dir)
        self.handler_class = _LambdaHandler
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def register(self, spec: FunctionSpec) -> FunctionSpec:
        """Add (or replace) a function: its zips must exist; s3:// ones are copied now."""
        spec.check()
        version = RUNTIMES[spec.runtime]
        if find_python(version) is None:
            raise ConfigurationError(
                f"Function {spec.name}: no CPython {version} here for runtime {spec.runtime}.",
                hint=f"Install it (pyenv), put python{version} on PATH or set "
                     f"$M7_PY{version.replace('.', '')}.")
        code, *layers = [self._local(spec.name, p) for p in (spec.code, *spec.layers)]
        spec = FunctionSpec(spec.name, code, spec.handler, tuple(layers), dict(spec.environment),
                            spec.timeout, spec.memory, spec.runtime)
        self.functions[spec.name] = spec
        return spec

    def _local(self, name: str, location: str) -> str:
        if location.startswith("s3://"):
            digest = hashlib.sha256(location.encode()).hexdigest()[:16]
            return str(s3_object(location, self.cache_dir / "s3" / f"{digest}.zip", self.s3_client,
                                 self.env))
        if not Path(location).is_file():
            raise ConfigurationError(f"Function {name}: {location} does not exist.",
                                     hint="Build it with `m7etl package` (build/).")
        return str(Path(location).resolve())

    def arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{name}"

    def environment(self, spec: FunctionSpec, task: Path, runtime: Path) -> dict[str, str]:
        """The function's process environment: passthrough < ``env`` < function's < Lambda's."""
        env = {k: v for k, v in os.environ.items()
               if k in CREDENTIALS or k.startswith("AWS_ENDPOINT_URL")}
        env.update(self.env)
        env.update(spec.environment)
        env.update({
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
            "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}", "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{secrets.token_hex(16)}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "LAMBDA_TASK_ROOT": str(task),
            "LAMBDA_RUNTIME_DIR": str(runtime), "_HANDLER": spec.handler, "M7_STANDIN_ACCOUNT": ACCOUNT,
            # No profile of this machine leaks in: credentials come from the variables only.
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        })
        return env

    def invoke(self, name: str, payload: bytes = b"{}", *, invocation_type: str = "RequestResponse",
               rid: str | None = None, client_context: str = "") -> Invocation:
        """Run a registered function once (see :meth:`run`)."""
        spec = self.functions.get(name)
        if spec is None:
            raise ConfigurationError(f"Function {name} is not registered with the stand-in.",
                                     hint=f"Register it first; known: {', '.join(self.functions)}.")
        return self.run(spec, payload, invocation_type=invocation_type, rid=rid,
                        client_context=client_context)

    def run(self, spec: FunctionSpec, payload: bytes = b"{}", *,
            invocation_type: str = "RequestResponse", rid: str | None = None,
            client_context: str = "") -> Invocation:
        """Run ``spec`` (as :meth:`register` returned it) once in a fresh process and shape
        the answer as Lambda does; the moto server's executor calls it with moto's functions."""
        rid = rid or request_id()
        started = time.monotonic()
        (task, cold), *layers = [self.cache.unpack(Path(p), kind) for p, kind in
                                 [(spec.code, "task")] + [(p, "opt") for p in spec.layers]]
        cold = cold or any(fresh for _, fresh in layers)
        runtime = runtime_sdk(self.cache_dir / "runtime")
        proc = subprocess.Popen(
            [find_python(RUNTIMES[spec.runtime]), "-I", "-S", "-c", BOOTSTRAP, str(task),
             str(runtime), spec.handler, rid, f"{(time.time() + spec.timeout) * 1000:.0f}",
             client_context, *(str(folder) for folder, _ in layers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=task,
            env=self.environment(spec, task, runtime), start_new_session=True)
        with self._lock:
            self._running.add(proc)
        timed_out = False
        try:
            out, err = proc.communicate(payload, timeout=spec.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(proc)
            out, err = proc.communicate()
        finally:
            with self._lock:
                self._running.discard(proc)
        seconds = time.monotonic() - started
        done = self._answer(spec, rid, invocation_type, out, err.decode("utf-8", "replace"),
                            proc.returncode, timed_out, seconds, cold)
        self.invocations.append(done)
        if self.log_dir:
            target = self.log_dir / spec.name / f"{rid}.log"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(done.log)
        log.info("invoke %s %s: %s in %.2f s (%s)", spec.name, invocation_type,
                 done.function_error or "ok", seconds, "cold" if cold else "warm")
        return done

    def _answer(self, spec: FunctionSpec, rid: str, invocation_type: str, out: bytes, err: str,
                returncode: int, timed_out: bool, seconds: float, cold: bool) -> Invocation:
        lines = [f"START RequestId: {rid} Version: $LATEST"] + ([err.rstrip("\n")] if err else [])
        status, init_ms, memory, error = "", 0.0, 0, "Unhandled"
        try:
            envelope = json.loads(out) if out and not timed_out else None
        except ValueError:
            envelope = None
        if timed_out:
            after = f"Task timed out after {spec.timeout:.2f} seconds"
            doc = {"errorMessage": f"RequestId: {rid} Error: {after}", "errorType": "Sandbox.Timedout"}
            lines.append(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%f}"[:-3] + f"Z {rid} {after}")
            status = "\tStatus: timeout"
        elif envelope is None:
            why = f"signal: {signal.Signals(-returncode).name}" if returncode < 0 else \
                f"exit status {returncode}"
            message = f"RequestId: {rid} Error: Runtime exited with error: {why}"
            doc = {"errorMessage": message, "errorType": "Runtime.ExitError"}
            lines.append(f"{message}\nRuntime.ExitError")
            status = "\tStatus: error\tError Type: Runtime.ExitError"
        else:
            doc, init_ms, memory = envelope["payload"], envelope["init_ms"], envelope["memory_mb"]
            error = None if envelope["ok"] else "Unhandled"
        payload, ms = json.dumps(doc).encode(), seconds * 1000
        lines += [f"END RequestId: {rid}",
                  f"REPORT RequestId: {rid}\tDuration: {ms:.2f} ms\tBilled Duration: "
                  f"{math.ceil(ms)} ms\tMemory Size: {spec.memory} MB\tMax Memory Used: "
                  f"{memory} MB\tInit Duration: {init_ms:.2f} ms{status}"]
        return Invocation(spec.name, rid, invocation_type, error, payload, "\n".join(lines) + "\n",
                          seconds, cold, init_ms)

    def stop(self) -> None:
        super().stop()
        with self._lock:
            for proc in list(self._running):
                kill_group(proc)


class _LambdaHandler(BaseHTTPRequestHandler):
    standin: LambdaStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:  # the stand-in logs one line per invocation instead
        pass

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
              rid: str | None = None) -> None:
        self.send_response(status)
        for item in {"Content-Type": "application/json", "Content-Length": str(len(body)),
                     "x-amzn-RequestId": rid or request_id(), **(headers or {})}.items():
            self.send_header(*item)
        self.end_headers()
        if body and status != 204:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, key: str = "Message") -> None:
        """A modelled error: its code in x-amzn-ErrorType, ``Type`` and the message in the body."""
        body = json.dumps({"Type": "User" if status < 500 else "Service", key: message}).encode()
        self._send(status, body, {"x-amzn-ErrorType": code})

    def _function(self, raw: str, query: str) -> FunctionSpec | None:
        name, qualifier = split_name(raw)
        qualifier = qualifier or parse_qs(query).get("Qualifier", [None])[0]
        spec = self.standin.functions.get(name)
        if spec is not None and qualifier in (None, "$LATEST"):
            return spec
        arn = self.standin.arn(name) + (f":{qualifier}" if qualifier else "")
        self._error(404, "ResourceNotFoundException", f"Function not found: {arn}")
        return None

    def do_GET(self) -> None:
        self._error(404, "UnknownOperationException", "Unknown operation")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        match = INVOKE_PATH.match(url.path)
        if not self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
            return self._send(403, b'{"message": "Missing Authentication Token"}',
                              {"x-amzn-ErrorType": "MissingAuthenticationTokenException"})
        if match is None:  # only Invoke is served (docs/local.md)
            return self._error(404, "UnknownOperationException", "Unknown operation")
        spec = self._function(match.group("name"), url.query)
        if spec is None:
            return
        kind = self.headers.get(H_INVOCATION_TYPE) or "RequestResponse"
        limit = SYNC_PAYLOAD_LIMIT if kind == "RequestResponse" else ASYNC_PAYLOAD_LIMIT
        if kind not in STATUS:
            return self._error(400, "InvalidParameterValueException", f"Invalid InvocationType "
                               f"{kind!r}: use one of {', '.join(STATUS)}.", key="message")
        if len(body) > limit:
            return self._error(413, "RequestTooLargeException", f"Request must be smaller than "
                               f"{limit} bytes for the InvokeFunction operation", key="message")
        try:
            json.loads(body or b"{}")
        except ValueError as exc:
            return self._error(400, "InvalidRequestContentException",
                               f"Could not parse request body into json: {exc}", key="message")
        rid, context = request_id(), self.headers.get(H_CLIENT_CONTEXT) or ""
        if kind != "RequestResponse":
            if kind == "Event":
                threading.Thread(target=self._event, args=(spec.name, body, rid, context),
                                 daemon=True).start()
            return self._send(STATUS[kind], rid=rid)
        try:
            done = self.standin.invoke(spec.name, body, rid=rid, client_context=context)
        except (OSError, zipfile.BadZipFile) as exc:
            return self._error(502, "InvalidZipFileException", f"Cannot unpack {spec.name}: {exc}")
        except Exception as exc:  # answer, never drop the connection: boto would retry it
            log.exception("invoke %s failed in the stand-in", spec.name)
            return self._error(500, "ServiceException", f"The stand-in failed: {exc}")
        headers = {H_EXECUTED_VERSION: "$LATEST"}
        if done.function_error:
            headers[H_FUNCTION_ERROR] = done.function_error
        if (self.headers.get(H_LOG_TYPE) or "").lower() == "tail":
            headers[H_LOG_RESULT] = log_tail(done.log)
        self._send(200, done.payload, headers, rid=rid)

    def _event(self, name: str, body: bytes, rid: str, context: str) -> None:
        try:
            self.standin.invoke(name, body, invocation_type="Event", rid=rid, client_context=context)
        except Exception:  # an Event invocation has no caller to tell: the log says it
            log.exception("Event invocation %s of %s failed", rid, name)


# -- python -m m7etl.local.standins.lambda_invoke ---------------------------------------------
def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m7etl.local.standins.lambda_invoke",
                                     description="Serve Lambda's Invoke for built zips on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--functions", action="append", default=[], metavar="FILE",
                        help="JSON file of functions (repeatable; see docs/local.md)")
    parser.add_argument("--function", action="append", default=[], metavar="JSON",
                        help="one function as inline JSON (repeatable)")
    parser.add_argument("--cache-dir", default=".work/standins/lambda", help="where zips are unpacked")
    parser.add_argument("--log-dir", help="keep each invocation's whole log here")
    parser.add_argument("--region", help="the functions' AWS_REGION")
    args = parser.parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    standin = LambdaStandin(args.cache_dir, region=args.region, log_dir=args.log_dir)
    try:
        specs = [s for path in args.functions for s in load_functions(path)]
        for text in args.function:
            try:
                specs.append(FunctionSpec.from_dict(json.loads(text), Path.cwd(), "--function"))
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"--function is not JSON: {exc}.") from None
        for spec in specs:
            standin.register(spec)
        return serve(standin, args.port, f"Lambda stand-in ({', '.join(standin.functions)})")
    except (ConfigurationError, OSError) as exc:
        print(f"lambda stand-in: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
