"""The stack deploy's AWS calls: the stack, the template, the change set, the deletion.

Thin on purpose: each function sends one request built by :mod:`m7etl.deploy.stack` with a
client it is given, and turns the errors a person can fix (access denied, a missing
template, an expired session, throttling) into a :class:`DeployError` naming the stack,
the cause and the next step. botocore's DEBUG log prints request parameters and response
bodies, so it is muted while a call may carry the Snowflake password.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from m7etl.deploy.stack import is_no_change, parse_s3_url
from m7etl.exceptions import DeployError
from m7etl.storage import errors

WIRE_LOGGERS = ("botocore", "urllib3")


@dataclass(frozen=True)
class Polling:
    """How often to ask and how long to wait. An MWAA environment takes 20 to 60+ minutes."""

    delay: float = 5.0
    max_wait: float = 2 * 3600.0


DEFAULT_POLLING = Polling()


@contextmanager
def quiet_wire_log() -> Iterator[None]:
    """Mute botocore's DEBUG wire log (it would print the password) for one call."""
    loggers = [logging.getLogger(name) for name in WIRE_LOGGERS]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.getEffectiveLevel() < logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _message(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")) or str(exc)


def aws_error(exc: Exception, what: str, permission: str) -> DeployError | None:
    """The DeployError for an error a person can act on, None for the others (the category
    from :func:`m7etl.storage.errors.classify`, the words for a deploy)."""
    code, category = _code(exc), errors.classify(exc)
    if category == errors.DENIED:
        return DeployError(f"AWS denied {what}: {_message(exc)}",
                           hint=f"Grant {permission} to the credentials in use (check --profile).")
    if category == errors.EXPIRED:
        return DeployError(f"The AWS session expired while {what}.",
                           hint="Refresh the credentials (aws sso login, or new keys), then run "
                                "again.")
    if category == errors.THROTTLED:
        return DeployError(f"AWS throttled {what} ({code}).",
                           hint="Wait a minute and run again.", retryable=True)
    if category == errors.TRANSIENT:
        return DeployError(f"AWS failed while {what} ({code or type(exc).__name__}, a transient "
                           "error).",
                           hint="Wait a minute and run again.", retryable=True)
    return None


def _guarded(what: str, permission: str) -> Callable:
    """Mute the wire log around the call and translate the errors a person can act on."""

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from botocore.exceptions import ClientError

            try:
                with quiet_wire_log():
                    return func(*args, **kwargs)
            except ClientError as exc:
                error = aws_error(exc, what, permission)
                if error is None:
                    raise
                raise error from None

        return wrapper

    return decorate


def find_stack(cf, name_or_id: str) -> dict[str, Any] | None:
    """The stack's description, or None when there is no such stack (errors untranslated)."""
    from botocore.exceptions import ClientError

    try:
        with quiet_wire_log():
            stacks = cf.describe_stacks(StackName=name_or_id)["Stacks"]
    except ClientError as exc:
        if _code(exc) == "ValidationError" and "does not exist" in _message(exc):
            return None
        raise
    return stacks[0] if stacks else None


describe_stack = _guarded("reading the stack", "cloudformation:DescribeStacks")(find_stack)


def read_template(s3, url: str) -> str:
    """The template CloudFormation will read at ``url`` (to check parameters before sending)."""
    from botocore.exceptions import ClientError

    bucket, key, version = parse_s3_url(url)
    where = f"s3://{bucket}/{key}"
    extra = {"VersionId": version} if version else {}
    try:
        body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    except ClientError as exc:
        code = _code(exc)
        if code in ("NoSuchKey", "404", "NoSuchVersion"):
            raise DeployError(f"The template is not in the code bucket: {where} does not exist.",
                              hint="Run 'm7etl upload' first (it uploads the template), or pass "
                                   "--template templates/etl-pipeline-mwaa.yaml.") from None
        if code == "NoSuchBucket":
            raise DeployError(f"Code bucket {bucket} does not exist.",
                              hint="Create it (versioned: a prerequisite of the guide), or set "
                                   "code_bucket in m7etl.toml.") from None
        error = aws_error(exc, f"reading the template {where}", "s3:GetObject")
        if error is None:
            raise
        raise error from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise DeployError(f"The template {where} is not UTF-8 text.",
                          hint="Upload the project's template again (m7etl upload).") from None


@dataclass(frozen=True)
class ChangeSetRef:
    id: str
    stack_id: str
    name: str


@_guarded("creating the change set", "cloudformation:CreateChangeSet (and iam:PassRole if a role "
          "is used)")
def create_change_set(cf, request: dict[str, Any]) -> ChangeSetRef | None:
    """Send CreateChangeSet; None when CloudFormation answers at once that nothing changes."""
    from botocore.exceptions import ClientError

    try:
        answer = cf.create_change_set(**request)
    except ClientError as exc:
        if _code(exc) == "ValidationError" and is_no_change(_message(exc)):
            return None
        if _code(exc) == "InsufficientCapabilitiesException":
            raise DeployError(f"CloudFormation refused stack {request['StackName']}: "
                              f"{_message(exc)}",
                              hint="The template needs a capability deploy did not detect: "
                                   "report it with the template.") from None
        if _code(exc) == "ValidationError":
            raise DeployError(f"CloudFormation refused the change set of stack "
                              f"{request['StackName']}: {_message(exc)}",
                              hint="Fix the template or the parameters, then deploy again.") from None
        raise
    return ChangeSetRef(answer["Id"], answer["StackId"], request["ChangeSetName"])


@_guarded("reading the change set", "cloudformation:DescribeChangeSet")
def wait_change_set(cf, ref: ChangeSetRef, polling: Polling = DEFAULT_POLLING, *,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll until the change set is made (or failed); its first description page."""
    start = clock()
    while True:
        page = cf.describe_change_set(ChangeSetName=ref.id)
        if page["Status"] not in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
            return page
        if clock() - start >= polling.max_wait:
            raise DeployError(f"Change set {ref.name} was still {page['Status']} after "
                              f"{polling.max_wait:.0f} s.",
                              hint="CloudFormation is slow right now: run deploy again.",
                              retryable=True)
        sleep(polling.delay)


@_guarded("reading the change set", "cloudformation:DescribeChangeSet")
def list_changes(cf, ref: ChangeSetRef, first: dict[str, Any] | None = None) -> list[dict]:
    """Every ``Changes`` entry, over DescribeChangeSet's pages."""
    page = first or cf.describe_change_set(ChangeSetName=ref.id)
    changes = list(page.get("Changes") or [])
    while page.get("NextToken"):
        page = cf.describe_change_set(ChangeSetName=ref.id, NextToken=page["NextToken"])
        changes.extend(page.get("Changes") or [])
    return changes


@_guarded("executing the change set", "cloudformation:ExecuteChangeSet")
def execute_change_set(cf, ref: ChangeSetRef) -> None:
    cf.execute_change_set(ChangeSetName=ref.id)


@_guarded("deleting the change set", "cloudformation:DeleteChangeSet")
def delete_change_set(cf, ref: ChangeSetRef) -> None:
    """Delete it; one already gone is fine."""
    from botocore.exceptions import ClientError

    try:
        cf.delete_change_set(ChangeSetName=ref.id)
    except ClientError as exc:
        if _code(exc) not in ("ChangeSetNotFound", "ChangeSetNotFoundException", "ValidationError"):
            raise


@_guarded("deleting the stack", "cloudformation:DeleteStack (and the rights to delete its "
          "resources)")
def delete_stack(cf, stack_id: str) -> None:
    """Start the deletion (watch it with :func:`m7etl.deploy.events.watch`)."""
    cf.delete_stack(StackName=stack_id)
