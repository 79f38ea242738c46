"""Run the stack's code inside the moto server: Lambda Invoke, Glue job runs, S3 events.

CloudFormation (in the moto server) creates the stack's functions, layer and Glue job, but
moto runs Lambda code only in Docker (absent here) and has no Glue runtime. :func:`install`
patches this process's moto so that:

- ``Invoke`` of a moto function runs its stored zip and layers with the Lambda stand-in's
  runner (``m7etl.local.standins.lambda_invoke``): ``executors_lambda``;
- ``StartJobRun`` runs the job's ``ScriptLocation`` (read from moto's S3) with the Glue
  stand-in's runner, and ``GetJobRun(s)``/``BatchStopJobRun`` answer from it:
  ``executors_glue``;
- an ``ObjectCreated`` (or any) event matching a bucket's Lambda notification reaches the
  function asynchronously, with the payload S3 sends: ``notifications``.

The code run this way reaches the other services at this server's own endpoint
(``AWS_ENDPOINT_URL``) and MWAA at the MWAA stand-in (``AWS_ENDPOINT_URL_MWAA``). The
patches last as long as the process: call :func:`install` in the moto server's process only
(``m7etl.local.moto.server`` does, before it serves), never in a test process.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from m7etl.exceptions import ConfigurationError
from m7etl.local.moto import executors_glue, executors_lambda, notifications

log = logging.getLogger("m7etl.local.moto")

ENDPOINT_VARIABLE = "M7_LOCAL_MOTO_ENDPOINT"  # this server's URL, when install() is not told
MWAA_VARIABLE = "M7_LOCAL_MWAA_ENDPOINT"  # the MWAA stand-in's URL, idem
# What the code runs with instead of a role's credentials: moto accepts any key, and no
# credential of this machine reaches the functions or the job.
ROLE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}
EVENT_WORKERS = 4  # asynchronous invocations run at once (S3 events, InvocationType Event)


@dataclass
class Settings:
    """What :func:`install` was given; ``learned`` is this server's endpoint as its first
    request showed it (used when neither ``endpoint`` nor ``$M7_LOCAL_MOTO_ENDPOINT`` is)."""

    work_dir: Path
    warehouse_dir: Path | None
    mwaa_endpoint: str | None = None
    endpoint: str | None = None
    event_workers: int = EVENT_WORKERS
    learned: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def moto_endpoint(self) -> str:
        found = self.endpoint or os.environ.get(ENDPOINT_VARIABLE) or self.learned
        if not found:
            raise ConfigurationError(
                "The moto server's own endpoint is unknown, so the function or job would reach "
                "real AWS.", hint=f"Serve requests first, or set ${ENDPOINT_VARIABLE} or "
                                  "install(endpoint=...).")
        return found.rstrip("/")

    def runtime_env(self) -> dict[str, str]:
        """The variables every function and job run gets on top of its own."""
        env = {"AWS_ENDPOINT_URL": self.moto_endpoint(), **ROLE_CREDENTIALS,
               # nothing local answers a prefixed host (api.<endpoint>, env.<endpoint>)
               "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}
        if self.mwaa_endpoint:
            env["AWS_ENDPOINT_URL_MWAA"] = self.mwaa_endpoint.rstrip("/")
        return env

    def learn(self, environ: dict) -> None:
        """Remember the address the server answers on, from a WSGI request's environ."""
        if self.learned is None:
            host = environ.get("SERVER_NAME") or "127.0.0.1"
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            with self.lock:
                self.learned = self.learned or f"http://{host}:{environ.get('SERVER_PORT', '80')}"


_state: dict[str, object] = {}


def install(*, warehouse_dir: str | Path | None, mwaa_endpoint: str | None = None,
            work_dir: str | Path, endpoint: str | None = None,
            event_workers: int = EVENT_WORKERS) -> Settings:
    """Patch moto in this process (once; a later call replaces the settings).

    ``warehouse_dir``: the fakesnow warehouse Glue runs load into (None: the Snowflake
    connector is left alone). ``mwaa_endpoint``: the MWAA stand-in (default
    ``$M7_LOCAL_MWAA_ENDPOINT``). ``work_dir``: unpacked zips, run folders, logs.
    ``endpoint``: this server's URL (default ``$M7_LOCAL_MOTO_ENDPOINT``, else learned).
    """
    settings = Settings(Path(work_dir).resolve(),
                        Path(warehouse_dir).resolve() if warehouse_dir else None,
                        mwaa_endpoint or os.environ.get(MWAA_VARIABLE) or None, endpoint,
                        max(1, int(event_workers)))
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    previous = _state.get("settings")
    if previous is not None:
        settings.learned = previous.learned  # type: ignore[attr-defined]
    _state["settings"] = settings
    lambdas = executors_lambda.LambdaExecutor(settings.work_dir / "lambda", settings.runtime_env,
                                              settings.event_workers)
    glue = executors_glue.GlueExecutor(settings.work_dir / "glue", settings.warehouse_dir,
                                       settings.runtime_env)
    executors_lambda.install(lambdas)
    executors_glue.install(glue)
    notifications.install(lambdas)
    for old in (_state.get("lambda"), _state.get("glue")):
        if old is not None:
            old.stop()
    _state.update({"lambda": lambdas, "glue": glue})
    if previous is None:
        _learn_endpoint()
    log.info("moto executors installed: work %s, warehouse %s, MWAA %s", settings.work_dir,
             settings.warehouse_dir, settings.mwaa_endpoint or "(none)")
    return settings


def current() -> Settings:
    """The settings of the last :func:`install` (ConfigurationError before any)."""
    settings = _state.get("settings")
    if settings is None:
        raise ConfigurationError("The moto executors are not installed in this process.",
                                 hint="Call m7etl.local.moto.executors.install(...) first.")
    return settings  # type: ignore[return-value]


def shutdown() -> None:
    """Kill what is still running (invocations, job runs): call it when the server stops."""
    for key in ("lambda", "glue"):
        executor = _state.get(key)
        if executor is not None:
            executor.stop()


def _learn_endpoint() -> None:
    """Wrap moto's WSGI application so the first request tells the server's address."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__

    @functools.wraps(original)
    def call(self, environ, start_response):
        settings = _state.get("settings")
        if settings is not None:
            settings.learn(environ)
        return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = call
