"""The retention policy: which objects of the data bucket are old enough to delete.

Planning is pure (objects + policy + now -> the expired ones, with counts and bytes per
category) and streams: the prefixes are walked page by page (:meth:`Storage.walk`) and the
expired keys deleted in batches of 1000 (S3 ``DeleteObjects``' limit) as they come, so the
256 MB function never holds a whole listing. The report's full key list is spooled to a
temporary file and uploaded; the result keeps only the first keys. Categories, by key::

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
import tempfile
from collections.abc import Iterable, Iterator, Mapping
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
DELETE_BATCH = 1000  # keys per S3 DeleteObjects call (its maximum)
KEYS_KEPT = 1000  # keys kept in the result; the report lists them all


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


def expired(objects: Iterable[ObjectInfo], policy: RetentionPolicy, now: float,
            totals: dict[str, CategoryTotals]) -> Iterator[ObjectInfo]:
    """The objects older than their category's days, as they come; ``totals`` counts what
    was scanned and what expired per category (pure: no storage call)."""
    for obj in objects:
        name = category(obj.key)
        days = policy.keep_days(name) if name != "other" else 0
        if days <= 0:
            continue
        counts = totals.setdefault(name, CategoryTotals())
        counts.scanned += 1
        counts.scanned_bytes += obj.size
        if (now - obj.last_modified) >= days * DAY_S:
            counts.deleted += 1
            counts.deleted_bytes += obj.size
            yield obj


def plan_retention(objects: Iterable[ObjectInfo], policy: RetentionPolicy,
                   now: float) -> RetentionPlan:
    """The whole plan at once, sorted by key (for small listings and tests)."""
    plan = RetentionPlan(now, {c: policy.keep_days(c) for c in CATEGORIES})
    plan.to_delete = sorted(expired(objects, policy, now, plan.totals), key=lambda o: o.key)
    return plan


@dataclass
class RetentionResult:
    dry_run: bool
    now: str
    policy: dict[str, int]
    deleted: int = 0
    bytes_freed: int = 0
    per_category: dict[str, dict] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # the first KEYS_KEPT expired keys
    keys_total: int = 0  # all expired keys (listed in the report)
    report_key: str | None = None
    report_error: str | None = None  # the deletions stand even if the report cannot be written
    error: str | None = None  # the run stopped here (what was deleted before is in the report)

    def to_dict(self, max_keys: int | None = None) -> dict:
        data = asdict(self)
        shown = self.keys if max_keys is None else self.keys[:max_keys]
        data["keys"] = shown
        if self.keys_total > len(shown):
            data["keys_truncated"] = self.keys_total - len(shown)
        return data


def walk_for(storage: Storage, policy: RetentionPolicy) -> Iterator[ObjectInfo]:
    """Walk only the prefixes the policy acts on (gold is never listed when kept); they are
    distinct and disjoint, so no key comes twice, and in key order."""
    for prefix in sorted({PREFIXES[c] for c in policy.active}):
        yield from storage.walk(prefix)


def _batches(objects: Iterable[ObjectInfo], size: int) -> Iterator[list[ObjectInfo]]:
    batch: list[ObjectInfo] = []
    for obj in objects:
        batch.append(obj)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def apply_retention(storage: Storage, policy: RetentionPolicy, *, now: datetime | None = None,
                    dry_run: bool = False, write_report: bool = True,
                    keys_kept: int = KEYS_KEPT) -> RetentionResult:
    """Delete (or, in a dry run, only list) what the policy says is expired, batch by batch.

    ``now`` moves the clock (tests, dry-run previews); callers taking it from an invoker
    must allow it only in a dry run (the maintenance function does). If a delete fails, the
    report still says what went before, and the error is raised.
    """
    now = now or datetime.now(UTC)
    result = RetentionResult(dry_run=dry_run, now=now.isoformat(timespec="seconds"),
                             policy={c: policy.keep_days(c) for c in CATEGORIES})
    totals: dict[str, CategoryTotals] = {}
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:  # the report's key list
        try:
            found = expired(walk_for(storage, policy), policy, now.timestamp(), totals)
            for batch in _batches(found, DELETE_BATCH):
                keys = [o.key for o in batch]
                result.deleted += len(keys) if dry_run else storage.delete(keys)
                result.bytes_freed += sum(o.size for o in batch)
                result.keys_total += len(keys)
                result.keys.extend(keys[:max(0, keys_kept - len(result.keys))])
                spool.writelines(json.dumps(k) + "\n" for k in keys)
        except StorageError as exc:
            result.error = str(exc)
            raise
        finally:
            result.per_category = {name: asdict(t) for name, t in sorted(totals.items())}
            if write_report:
                _write_report(storage, result, spool, now)
    return result


def _write_report(storage: Storage, result: RetentionResult, spool, now: datetime) -> None:
    """``logs/maintenance_YYYYMMDD[.dry_run].json``: the summary and every key, streamed from
    the spool file into a second temporary file, then uploaded (never whole in memory)."""
    key = f"{REPORT_PREFIX}{layout.day_of(now)}{'.dry_run' if result.dry_run else ''}.json"
    summary = {k: v for k, v in result.to_dict().items()
               if k not in ("keys", "keys_truncated", "report_error")}
    summary["report_key"] = key
    spool.seek(0)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".json") as out:
        out.write(json.dumps(summary, indent=2)[:-2] + ',\n  "keys": [')
        for i, line in enumerate(spool):
            out.write(("," if i else "") + "\n    " + line.rstrip("\n"))
        out.write("\n  ]\n}\n")
        out.flush()
        try:
            storage.upload_file(out.name, key)
            result.report_key = key
        except StorageError as exc:
            result.report_error = str(exc)
