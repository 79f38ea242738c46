"""What the four handlers share: event-field checks, settings, storage, metrics helpers.

Packaged at the root of every function zip, beside the handler. Nothing here holds a
business rule; those live in the ``m7etl`` core.
"""

from __future__ import annotations

import os
import re
from typing import Any

from m7etl.exceptions import ConfigurationError, M7Error
from m7etl.storage import S3Storage

NAMESPACE = "M7Etl"
MAX_REASON = 500
_clients: dict[str, Any] = {}


class EventError(M7Error):
    """The invocation payload is malformed; names the field at fault. Not retryable."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"Invalid event: field '{field}' {problem}.",
                         hint="Fix the caller's payload (see docs/lambda.md).")
        self.field = field


def service_name(default: str) -> str:
    """``$POWERTOOLS_SERVICE_NAME`` (set by the template), else the handler's name."""
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or default


def metrics_namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE


def check_mapping(event: Any, allowed: tuple[str, ...]) -> dict:
    if not isinstance(event, dict):
        raise EventError("(event)", f"must be a JSON object, got {type(event).__name__}")
    extra = sorted(set(event) - set(allowed))
    if extra:
        raise EventError(extra[0], f"is not a known field (allowed: {', '.join(allowed)})")
    return event


def text_field(event: dict, name: str, *, required: bool = True, pattern: str | None = None,
               describe: str = "") -> str | None:
    value = event.get(name)
    if value is None:
        if required:
            raise EventError(name, "is missing")
        return None
    if not isinstance(value, str) or not value:
        raise EventError(name, f"must be a non-empty string, got {value!r}")
    if pattern and not re.fullmatch(pattern, value):
        raise EventError(name, f"must be {describe or pattern}, got {value!r}")
    return value


def percent_field(event: dict, name: str, default: float) -> float:
    value = event.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise EventError(name, f"must be a number from 0 to 100, got {value!r}")
    return float(value)


def bool_field(event: dict, name: str, default: bool = False) -> bool:
    value = event.get(name, default)
    if not isinstance(value, bool):
        raise EventError(name, f"must be true or false, got {value!r}")
    return value


def env_text(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, "").strip() or default
    if not value:
        raise ConfigurationError(f"Environment variable {name} is not set.",
                                 hint="The CloudFormation template sets it; set it for local runs.")
    return value


def env_percent(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{name}={text!r} is not a number.",
                                 hint="Use a percentage such as 5.0.") from None
    if not 0 <= value <= 100:
        raise ConfigurationError(f"{name}={text} is not a percentage.", hint="Use 0 to 100.")
    return value


def data_bucket(event_bucket: str | None = None) -> str:
    return event_bucket or env_text("M7_DATA_BUCKET")


def s3_client():
    """One S3 client per execution environment, created on first use (not at import)."""
    if "s3" not in _clients:
        from m7etl.storage.aws import client

        _clients["s3"] = client("s3")
    return _clients["s3"]


def storage(bucket: str) -> S3Storage:
    return S3Storage(bucket, client=s3_client())


def short(text: str | None, limit: int = MAX_REASON) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
