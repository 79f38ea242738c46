"""landing -> raw: file a newly landed CSV under its day, or quarantine it.

Shared by the S3-event Lambda and the local runner. The day comes from the file name
(the contract's pattern, else any ``YYYYMMDD`` in it), else from the arrival time. The
move is copy, verify, delete, and it is idempotent: a retried event whose object already
moved reports where it went instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from m7etl.core import layout
from m7etl.core.contracts import Registry
from m7etl.storage.base import Storage

INGESTED = "raw"
QUARANTINED = "quarantined"
IGNORED = "ignored"
ALREADY = "already_ingested"
SKIPPED = "skipped"  # an entry that cannot be taken (a link, a FIFO, unreadable...): left as it is
LEFT = "left"  # a file of another day than the one asked for: left in landing/ for a later run
MOVED = (INGESTED, QUARANTINED, ALREADY)  # the statuses that filed the file under a day


@dataclass
class IngestResult:
    source_key: str
    status: str
    target_key: str | None = None
    dataset: str | None = None
    date: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def landing_day(key: str, registry: Registry, arrival_day: str) -> str:
    """The day :func:`ingest` would file ``key`` under (the contract's, the name's, else arrival)."""
    name = layout.base_name(key)
    found = registry.identify(name)
    if found is not None:
        return found[1]
    return layout.day_in_name(name) or arrival_day


def ingest(storage: Storage, key: str, registry: Registry, arrival_day: str) -> IngestResult:
    """Move ``landing/<file>`` to ``raw/YYYYMMDD/<file>`` (or quarantine); never raises for bad input."""
    if not key.startswith(layout.LANDING) or "/" in key[len(layout.LANDING):]:
        return IngestResult(key, IGNORED, reason="not directly under landing/")
    if not layout.is_input_file(key):
        return IngestResult(key, IGNORED, reason="not a .csv or .csv.gz file")
    name = layout.base_name(key)
    found = registry.identify(name)
    if found is None:
        day = layout.day_in_name(name) or arrival_day
        target = layout.quarantine_key(day, key)
        known = ", ".join(sorted(c.dataset for c in registry))
        message = f"The name {name!r} matches no contract (known datasets: {known})."
        reason = f"unknown_dataset: {message}"
        if not _move(storage, key, target):
            return IngestResult(key, ALREADY, target, None, day, reason)
        storage.write_bytes(layout.quarantine_reason_key(day, key), json.dumps({
            "source_key": key, "quarantine_key": target, "dataset": None,
            "reason": "unknown_dataset", "message": message}, indent=2).encode())
        return IngestResult(key, QUARANTINED, target, None, day, reason)
    contract, day = found
    target = layout.raw_key(day, name)
    status = INGESTED if _move(storage, key, target) else ALREADY
    return IngestResult(key, status, target, contract.dataset, day)


def _move(storage: Storage, source: str, target: str) -> bool:
    """True if this call moved the object; False if an earlier call already had."""
    if storage.exists(source):
        storage.move(source, target)
        return True
    if storage.exists(target):
        return False
    storage.move(source, target)  # raises a clear "does not exist" error
    return True
