"""The retention policy: which objects of the data bucket are old enough to delete.

Planning is pure (listed objects + policy + now -> the keys to delete, with counts and
bytes per category); executing is a thin loop over :meth:`Storage.delete`, which batches
1000 keys per S3 ``DeleteObjects``. Categories, by key::

    landing     landing/...                      files never ingested (leftovers)
    raw         raw/YYYYMMDD/...                 the replay source
    rejects     silver/YYYYMMDD/_rejects/...     rejected rows with their reasons
    silver      silver/... (other)               clean rows and per-file reports
    quarantine  quarantine/...                   unreadable files and their reasons
    logs        logs/...                         execution logs
    gold        gold/...                         kept forever unless configured
    other       anything else                    never touched

A category whose days are 0 or absent is kept forever. Age is counted from the object's
last modification, in whole days.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from m7etl.core import layout
from m7etl.exceptions import ConfigurationError, StorageError
from m7etl.storage.base import ObjectInfo, Storage

CATEGORIES = ("landing", "raw", "silver", "rejects", "quarantine", "logs", "gold")
# The prefix to list for each category (rejects live under silver/).
PREFIXES = {"landing": layout.LANDING, "raw": layout.RAW, "silver": layout.SILVER,
            "rejects": layout.SILVER, "quarantine": layout.QUARANTINE, "logs": layout.LOGS,
            "gold": layout.GOLD}
ENV_PREFIX = "M7_RETENTION_DAYS_"
DAY_S = 86400
REPORT_PREFIX = f"{layout.LOGS}maintenance_"


def category(key: str) -> str:
    top, _, rest = key.partition("/")
    top += "/"
    if top == layout.SILVER:
        parts = rest.split("/")
        return "rejects" if len(parts) > 1 and parts[1] == layout.REJECTS_DIR else "silver"
    for name in ("landing", "raw", "quarantine", "logs", "gold"):
        if top == PREFIXES[name]:
            return name
    return "other"


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep per category; 0 (or absent) keeps forever."""

    days: Mapping[str, int]

    def __post_init__(self) -> None:
        for name, value in self.days.items():
            if name not in CATEGORIES:
                raise ConfigurationError(f"Retention category '{name}' is unknown.",
                                         hint=f"Use one of {', '.join(CATEGORIES)}.")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"Retention days for '{name}' must be a whole number "
                                         f">= 0, got {value!r}.", hint="0 keeps forever.")

    def keep_days(self, name: str) -> int:
        return self.days.get(name, 0)

    @property
    def active(self) -> list[str]:
        return [c for c in CATEGORIES if self.keep_days(c) > 0]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetentionPolicy:
        """Read ``M7_RETENTION_DAYS_<CATEGORY>`` (integers; missing or empty = keep)."""
        environ = os.environ if environ is None else environ
        days = {}
        for name in CATEGORIES:
            var = f"{ENV_PREFIX}{name.upper()}"
            text = (environ.get(var) or "").strip()
            if not text:
                continue
            try:
                days[name] = int(text)
            except ValueError:
                raise ConfigurationError(f"{var}={text!r} is not a whole number of days.",
                                         hint="Set it to an integer; 0 keeps forever.") from None
            if days[name] < 0:
                raise ConfigurationError(f"{var}={text} is negative.", hint="0 keeps forever.")
        return cls(days)


@dataclass
class CategoryTotals:
    scanned: int = 0
    scanned_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0


@dataclass
class RetentionPlan:
    now: float
    policy: dict[str, int]
    to_delete: list[ObjectInfo] = field(default_factory=list)
    totals: dict[str, CategoryTotals] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.to_delete)


def plan_retention(objects: Iterable[ObjectInfo], policy: RetentionPolicy,
                   now: float) -> RetentionPlan:
    """The objects older than their category's days (pure: no storage call)."""
    plan = RetentionPlan(now, {c: policy.keep_days(c) for c in CATEGORIES})
    seen: set[str] = set()
    for obj in objects:
        if obj.key in seen:  # silver/ is listed once for silver and rejects
            continue
        seen.add(obj.key)
        name = category(obj.key)
        days = policy.keep_days(name) if name != "other" else 0
        if days <= 0:
            continue
        totals = plan.totals.setdefault(name, CategoryTotals())
        totals.scanned += 1
        totals.scanned_bytes += obj.size
        if (now - obj.last_modified) >= days * DAY_S:
            plan.to_delete.append(obj)
            totals.deleted += 1
            totals.deleted_bytes += obj.size
    plan.to_delete.sort(key=lambda o: o.key)
    return plan


@dataclass
class RetentionResult:
    dry_run: bool
    now: str
    policy: dict[str, int]
    deleted: int
    bytes_freed: int
    per_category: dict[str, dict]
    keys: list[str]
    report_key: str | None = None
    report_error: str | None = None  # the deletions stand even if the report cannot be written

    def to_dict(self, max_keys: int | None = None) -> dict:
        data = asdict(self)
        if max_keys is not None and len(self.keys) > max_keys:
            data["keys"] = self.keys[:max_keys]
            data["keys_truncated"] = len(self.keys) - max_keys
        return data


def list_for(storage: Storage, policy: RetentionPolicy) -> list[ObjectInfo]:
    """List only the prefixes the policy acts on (gold is never listed when kept)."""
    prefixes = sorted({PREFIXES[c] for c in policy.active})
    found: list[ObjectInfo] = []
    for prefix in prefixes:
        found.extend(storage.list(prefix))
    return found


def apply_retention(storage: Storage, policy: RetentionPolicy, *, now: datetime | None = None,
                    dry_run: bool = False, write_report: bool = True) -> RetentionResult:
    """Delete (or, in a dry run, only list) what the policy says is expired."""
    now = now or datetime.now(UTC)
    plan = plan_retention(list_for(storage, policy), policy, now.timestamp())
    keys = [o.key for o in plan.to_delete]
    deleted = len(keys) if dry_run else storage.delete(keys)
    result = RetentionResult(
        dry_run=dry_run, now=now.isoformat(timespec="seconds"), policy=plan.policy,
        deleted=deleted, bytes_freed=plan.bytes,
        per_category={name: asdict(t) for name, t in sorted(plan.totals.items())}, keys=keys)
    if write_report:
        suffix = ".dry_run.json" if dry_run else ".json"
        key = f"{REPORT_PREFIX}{layout.day_of(now)}{suffix}"
        try:
            storage.write_bytes(key, json.dumps({**result.to_dict(), "report_key": key},
                                                indent=2).encode())
            result.report_key = key
        except StorageError as exc:
            result.report_error = str(exc)
    return result
