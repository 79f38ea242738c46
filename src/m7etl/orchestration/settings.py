"""The settings the CloudFormation template gives the functions, read from the environment.

Read when a request is parsed or a batch is filed (not at import), so a test or a local
run can set them first. A missing or malformed one is a :class:`ConfigurationError` naming
the variable.
"""

from __future__ import annotations

import os

from m7etl.exceptions import ConfigurationError

NAMESPACE = "M7Etl"


def service_name(default: str) -> str:
    """``$POWERTOOLS_SERVICE_NAME`` (set by the template), else the function's name."""
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or default


def metrics_namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE


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
    """The bucket a request names, else ``$M7_DATA_BUCKET``."""
    return event_bucket or env_text("M7_DATA_BUCKET")
