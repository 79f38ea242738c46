"""moto's Glue jobs, run for real: StartJobRun runs the job's script with the stand-in's runner.

moto stores jobs (``CreateJob``, or CloudFormation's ``AWS::Glue::Job``) but its runs only
step through states, all with the id ``01``, and ignore the run's arguments. Here moto's
``GlueResponse`` answers ``StartJobRun``, ``GetJobRun``, ``GetJobRuns`` and
``BatchStopJobRun`` from the Glue stand-in's runner (``m7etl.local.standins.glue_jobs``):
the job as moto holds it (``Command.ScriptLocation``, ``DefaultArguments`` with
``--extra-py-files``, ``MaxConcurrentRuns``, ``Timeout``) is synced before each call, the
script and bundle are read from moto's own S3, and the run is a process of this venv's
Python with Glue's ``sys.argv``, fakesnow for Snowflake (with a warehouse folder) and this
server as ``AWS_ENDPOINT_URL``. When a run ends, its two log streams go to moto's
CloudWatch Logs (``/aws-glue/python-jobs/output`` and ``/error``, stream = run id).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from m7etl.exceptions import ConfigurationError
from m7etl.local.standins.glue_jobs import LOG_GROUP, GlueError, GlueStandin, JobRun, JobSpec

log = logging.getLogger("m7etl.local.moto")

OPERATIONS = {"start_job_run": "StartJobRun", "get_job_run": "GetJobRun",
              "get_job_runs": "GetJobRuns", "batch_stop_job_run": "BatchStopJobRun"}


# -- pure ----------------------------------------------------------------------------------
def job_request(job) -> dict:
    """CreateJob's request for a moto ``FakeJob``: what :meth:`JobSpec.from_api` reads."""
    request = {"Command": dict(job.command or {}),
               "DefaultArguments": {k: str(v) for k, v in (job.default_arguments or {}).items()},
               "ExecutionProperty": dict(job.execution_property or {}),
               "Description": job.description or "", "GlueVersion": job.glue_version or "3.0"}
    optional = {"Timeout": job.timeout, "Role": job.role, "MaxCapacity": job.max_capacity}
    return request | {k: v for k, v in optional.items() if v is not None}


def log_events(text: str, at_ms: int) -> list[dict]:
    """CloudWatch events of a log file's lines (moto wants at least one per put)."""
    return [{"timestamp": at_ms, "message": line} for line in text.splitlines() if line.strip()]


# -- moto's S3 as the runner's client ------------------------------------------------------------
class MotoS3:
    """``download_file`` over moto's S3 backend: the script and bundle read in-process."""

    def __init__(self, account: str, partition: str = "aws"):
        self.account, self.partition = account, partition

    def download_file(self, bucket: str, key: str, filename: str) -> None:
        from botocore.exceptions import ClientError
        from moto.s3.models import s3_backends

        try:
            found = s3_backends[self.account][self.partition].get_object(bucket, key)
        except Exception as exc:  # moto's MissingBucket
            raise ClientError({"Error": {"Code": getattr(exc, "error_type", "NoSuchBucket"),
                                         "Message": "The specified bucket does not exist"}},
                              "GetObject") from None
        if found is None:
            raise ClientError({"Error": {"Code": "NoSuchKey",
                                         "Message": "The specified key does not exist."}},
                              "GetObject")
        Path(filename).write_bytes(found.value)


class MotoGlue(GlueStandin):
    """The stand-in's runner for one moto account and region (it serves no HTTP itself)."""

    def __init__(self, cache_dir: Path, *, account: str, region: str, warehouse_dir: Path | None,
                 warehouse_lock: threading.Lock):
        super().__init__(cache_dir, warehouse_dir=warehouse_dir, s3_client=MotoS3(account))
        self.account, self.region = account, region
        self._warehouse = warehouse_lock  # one DuckDB writer, whatever the region

    def environment(self, bundles: list[str]) -> dict[str, str]:
        env = super().environment(bundles)
        for key in [k for k in env if k.startswith("AWS_ENDPOINT_URL_") and k not in self.env]:
            del env[key]  # this process's own endpoints are not the job's
        for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            env.pop(key, None)
        env.update({"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
                    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
        return env

    def _end(self, run: JobRun, state: str, message: str | None) -> None:
        super()._end(run, state, message)
        try:
            from moto.logs.models import logs_backends

            logs = logs_backends[self.account][self.region]
            at = int(time.time() * 1000)
            for stream in ("output", "error"):
                events = log_events(run.output(stream), at)
                group = f"{LOG_GROUP}/{stream}"
                logs.ensure_log_group(group)
                logs.create_log_stream(group, run.id)
                if events:
                    logs.put_log_events(group, run.id, events)
        except Exception:  # the logs are in the run's folder anyway
            log.warning("cannot write the logs of Glue run %s to moto's CloudWatch", run.id,
                        exc_info=True)


class GlueExecutor:
    """Runs moto's jobs; ``env`` gives the variables every run gets (the endpoints)."""

    def __init__(self, root: Path, warehouse_dir: Path | None, env: Callable[[], dict[str, str]]):
        self.root, self.warehouse_dir, self.env = root, warehouse_dir, env
        self._runners: dict[tuple[str, str], MotoGlue] = {}
        self._lock = threading.Lock()
        self._warehouse = threading.Lock()

    def runner(self, account: str, region: str) -> MotoGlue:
        with self._lock:
            if (account, region) not in self._runners:
                self._runners[account, region] = MotoGlue(
                    self.root / f"{account}-{region}", account=account, region=region,
                    warehouse_dir=self.warehouse_dir, warehouse_lock=self._warehouse)
            return self._runners[account, region]

    def call(self, operation: str, body: dict, backend, account: str, region: str) -> dict:
        """One operation of moto's Glue ``backend``, answered by the runner."""
        runner = self.runner(account, region)
        name = body.get("JobName")
        if name:
            runner.register(JobSpec.from_api(name, job_request(backend.get_job(name))))
        if operation == "StartJobRun":
            runner.env = self.env()
        return runner.call(operation, body)

    def stop(self) -> None:
        with self._lock:
            runners = list(self._runners.values())
        for runner in runners:
            runner.stop()


_current: dict[str, GlueExecutor] = {}


def _answer(response, operation: str) -> str:
    from moto.core.exceptions import JsonRESTError

    try:
        body = json.loads(response.body or "{}")
        answer = _current["executor"].call(operation, body, response.glue_backend,
                                           response.current_account, response.region)
    except GlueError as exc:
        error = JsonRESTError(exc.code, exc.message)
        error.code = exc.status
        raise error from None
    except ConfigurationError as exc:  # the job as moto holds it cannot run (no script...)
        raise JsonRESTError("InvalidInputException", str(exc)) from None
    return json.dumps(answer)


def install(executor: GlueExecutor) -> None:
    """Make moto's Glue answer the run operations through ``executor`` (patched once)."""
    from moto.glue.responses import GlueResponse

    _current["executor"] = executor
    if getattr(GlueResponse.start_job_run, "_m7etl", False):
        return
    for method, operation in OPERATIONS.items():
        def answer(self, operation=operation) -> str:
            return _answer(self, operation)

        answer._m7etl = True  # type: ignore[attr-defined]
        answer.__name__ = method
        setattr(GlueResponse, method, answer)
