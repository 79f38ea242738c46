"""The payloads and results of the Lambda functions: the DAG's XCom contract.

The DAG builds a request with ``to_payload()`` and the function reads it back with
``parse()``, so both sides share one definition of the fields, their checks and their
defaults. A malformed payload is an :class:`EventError` naming the field. Results are the
small dicts the functions return (far under Lambda's 6 MB); ``from_dict()`` reads one back.

Only the standard library and :mod:`m7etl.core.layout` are imported: every function zip
carries this module, and the packaging walker follows every import, so the core results
(``FileResult``, ``GoldResult``) are taken as they come rather than imported.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from m7etl.core import layout
from m7etl.exceptions import M7Error
from m7etl.orchestration.settings import data_bucket, env_percent

MAX_REASON = 500
RAW_KEY = r"raw/\d{8}/[^/]+"


class EventError(M7Error):
    """The invocation payload is malformed; names the field at fault. Not retryable."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"Invalid event: field '{field}' {problem}.",
                         hint="Fix the caller's payload (see docs/lambda.md).")
        self.field = field


# -- field checks ----------------------------------------------------------------------
def _mapping(event: Any, allowed: tuple[str, ...]) -> dict:
    if not isinstance(event, dict):
        raise EventError("(event)", f"must be a JSON object, got {type(event).__name__}")
    extra = sorted(set(event) - set(allowed))
    if extra:
        raise EventError(extra[0], f"is not a known field (allowed: {', '.join(allowed)})")
    return event


def _text(event: dict, name: str, *, required: bool = True, pattern: str | None = None,
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


def _percent(event: dict, name: str, default: float) -> float:
    value = event.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise EventError(name, f"must be a number from 0 to 100, got {value!r}")
    return float(value)


def _bool(event: dict, name: str, default: bool = False) -> bool:
    value = event.get(name, default)
    if not isinstance(value, bool):
        raise EventError(name, f"must be true or false, got {value!r}")
    return value


def short(text: str | None, limit: int = MAX_REASON) -> str | None:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


class _Result:
    """A function's result: ``to_dict()`` is what it returns, ``from_dict()`` reads it back."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        """The result from a returned dict (an XCom); a missing field is a KeyError, unless
        it has a default (a field added later: a function deployed before still answers)."""
        return cls(**{f.name: data[f.name] for f in fields(cls)
                      if f.name in data or f.default is MISSING})


# -- raw_to_silver ---------------------------------------------------------------------
@dataclass(frozen=True)
class RawToSilverRequest:
    """Validate one raw file: ``raw/YYYYMMDD/<file>``, defaults from the environment."""

    key: str
    bucket: str
    error_threshold: float
    warning_threshold: float

    FIELDS = ("key", "bucket", "error_threshold", "warning_threshold")

    @classmethod
    def parse(cls, event: object) -> RawToSilverRequest:
        event = _mapping(event, cls.FIELDS)
        key = _text(event, "key", pattern=RAW_KEY, describe="a raw/YYYYMMDD/<file> key")
        return cls(
            key=key,
            bucket=data_bucket(_text(event, "bucket", required=False)),
            error_threshold=_percent(event, "error_threshold",
                                     env_percent("M7_ERROR_THRESHOLD", 5.0)),
            warning_threshold=_percent(event, "warning_threshold",
                                       env_percent("M7_WARNING_THRESHOLD", 10.0)),
        )

    def to_payload(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RawToSilverSummary(_Result):
    """A core ``FileResult`` without its bulky parts (dialect, column lists)."""

    bucket: str
    source_key: str
    dataset: str | None
    date: str | None
    status: str
    reason: str | None
    warning: bool
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rows_warned: int
    rejected_pct: float
    warned_pct: float
    bytes_read: int
    missing_optional_columns: int  # how many
    extra_columns: int  # how many
    outputs: dict[str, str]
    duration_s: float
    lines_read: int = 0  # physical lines: header + valid + rejected + blank
    lines_blank: int = 0

    @classmethod
    def from_result(cls, result: Any, bucket: str) -> RawToSilverSummary:
        """``result`` is an ``m7etl.core.raw_to_silver.FileResult``."""
        return cls(
            bucket=bucket, source_key=result.source_key, dataset=result.dataset,
            date=result.date, status=result.status, reason=short(result.reason),
            warning=result.warning, rows_read=result.rows_read, rows_valid=result.rows_valid,
            rows_rejected=result.rows_rejected, rows_warned=result.rows_warned,
            rejected_pct=result.rejected_pct, warned_pct=result.warned_pct,
            bytes_read=result.bytes_read,
            missing_optional_columns=len(result.missing_optional_columns),
            extra_columns=len(result.extra_columns), outputs=result.outputs,
            duration_s=result.duration_s, lines_read=result.lines_read,
            lines_blank=result.lines_blank)


# -- silver_to_gold --------------------------------------------------------------------
@dataclass(frozen=True)
class SilverToGoldRequest:
    """Rebuild the gold file of one dataset and day."""

    dataset: str
    date: str
    bucket: str

    FIELDS = ("dataset", "date", "bucket")

    @classmethod
    def parse(cls, event: object, datasets: Collection[str]) -> SilverToGoldRequest:
        """``datasets``: the names with a contract (``registry.contracts``)."""
        event = _mapping(event, cls.FIELDS)
        dataset = _text(event, "dataset")
        if dataset not in datasets:
            known = ", ".join(sorted(datasets))
            raise EventError("dataset", f"names no known dataset ({dataset!r}; known: {known})")
        day = _text(event, "date")
        try:
            layout.parse_day(day)
        except ValueError as exc:
            raise EventError("date", f"must be a YYYYMMDD date ({exc})") from None
        return cls(dataset, day, data_bucket(_text(event, "bucket", required=False)))

    def to_payload(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SilverToGoldSummary(_Result):
    """A core ``GoldResult`` with its list of silver keys replaced by its length."""

    dataset: str
    date: str
    gold_key: str | None
    status: str
    rows_in: int
    rows_out: int
    duration_s: float
    rows_superseded: int
    silver_files: int
    bucket: str

    @classmethod
    def from_result(cls, result: Any, bucket: str) -> SilverToGoldSummary:
        """``result`` is an ``m7etl.core.silver_to_gold.GoldResult``."""
        return cls(
            dataset=result.dataset, date=result.date, gold_key=result.gold_key,
            status=result.status, rows_in=result.rows_in, rows_out=result.rows_out,
            duration_s=result.duration_s, rows_superseded=result.rows_superseded,
            silver_files=len(result.silver_keys), bucket=bucket)


# -- maintenance -----------------------------------------------------------------------
@dataclass(frozen=True)
class MaintenanceRequest:
    """The retention job; an EventBridge scheduled event is a real run, now."""

    dry_run: bool
    now: datetime

    FIELDS = ("dry_run", "now")

    @classmethod
    def parse(cls, event: object) -> MaintenanceRequest:
        if isinstance(event, dict) and event.get("detail-type") == "Scheduled Event":
            return cls(False, datetime.now(UTC))
        event = _mapping(event if event is not None else {}, cls.FIELDS)
        now_text = _text(event, "now", required=False)
        now = datetime.now(UTC)
        if now_text:
            try:
                now = datetime.fromisoformat(now_text.replace("Z", "+00:00"))
            except ValueError:
                raise EventError("now", f"must be an ISO date or datetime, got {now_text!r}"
                                 ) from None
            if now.tzinfo is None:
                now = now.replace(tzinfo=UTC)
        return cls(_bool(event, "dry_run"), now)

    def to_payload(self) -> dict:
        return {"dry_run": self.dry_run, "now": self.now.isoformat()}
