"""The local runner: the whole pipeline on one machine, over any :class:`Storage`.

landing -> raw (ingest), raw -> silver per file, silver -> gold per dataset, then the
execution log of each day. Days processed: ``--date`` if given, else the days of the
files just ingested, else the latest day already in ``raw/`` (a replay).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from m7etl.core import layout
from m7etl.core.contracts import Registry
from m7etl.core.execution_log import build_execution_log, utc_now, write_execution_log
from m7etl.core.ingest import IGNORED, IngestResult, ingest
from m7etl.core.raw_to_silver import (
    DEFAULT_THRESHOLDS,
    STATUS_QUARANTINED,
    FileResult,
    Thresholds,
    process_raw_file,
)
from m7etl.core.silver_to_gold import GoldResult, process_gold
from m7etl.exceptions import UsageError
from m7etl.storage import Storage


@dataclass
class DayResult:
    day: str
    files: list[FileResult] = field(default_factory=list)
    gold: list[GoldResult] = field(default_factory=list)
    log_key: str | None = None
    load: list[dict] | None = None  # filled by the warehouse step when it runs
    load_report: Any = None  # the local warehouse's LoadReport, for the CLI


@dataclass
class RunResult:
    run_id: str
    ingested: list[IngestResult]
    days: list[DayResult]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def ingest_landing(storage: Storage, registry: Registry, arrival_day: str) -> list[IngestResult]:
    keys = [o.key for o in storage.list(layout.LANDING)]
    return [ingest(storage, key, registry, arrival_day) for key in keys]


def raw_days(storage: Storage) -> list[str]:
    return sorted({d for d in (layout.day_of_raw_key(o.key) for o in storage.list(layout.RAW)) if d})


def plan_days(requested: str | None, ingested: list[IngestResult], storage: Storage) -> list[str]:
    if requested:
        return [requested]
    days = sorted({r.date for r in ingested if r.status != IGNORED and r.date})
    if days:
        return days
    existing = raw_days(storage)
    if not existing:
        raise UsageError(
            f"Nothing to process in {storage.url}: landing/ has no CSV file and raw/ has no day.",
            hint="Put CSV files in landing/ (make demo generates some) or pass --date.")
    return existing[-1:]


def quarantined_files(storage: Storage, day: str) -> list[FileResult]:
    """The day's quarantined files, from their ``.reason.json`` notes.

    Read back from the bucket rather than remembered, so a replay of the day (which no
    longer sees those files in ``raw/``) still lists them in the execution log.
    """
    results = []
    for obj in storage.list(f"{layout.QUARANTINE}{day}/"):
        if not obj.key.endswith(".reason.json"):
            continue
        note = json.loads(storage.read_bytes(obj.key))
        results.append(FileResult(
            source_key=note["source_key"], dataset=note.get("dataset"), date=day,
            status=STATUS_QUARANTINED, reason=f"{note['reason']}: {note['message']}",
            outputs={"quarantine": note["quarantine_key"]}))
    return results


def process_day(storage: Storage, registry: Registry, day: str, thresholds: Thresholds,
                on_file: Callable[[str, FileResult], None] | None = None) -> DayResult:
    """raw -> silver for every raw file of the day, then gold for every dataset."""
    result = DayResult(day)
    keys = [o.key for o in storage.list(layout.raw_prefix(day)) if layout.is_input_file(o.key)]
    for key in keys:
        file_result = process_raw_file(storage, key, registry, thresholds)
        result.files.append(file_result)
        if on_file:
            on_file(key, file_result)
    seen = {f.source_key for f in result.files}
    earlier = [q for q in quarantined_files(storage, day) if q.source_key not in seen]
    result.files = sorted(result.files + earlier, key=lambda f: f.source_key.rsplit("/", 1)[-1])
    for contract in registry:
        gold = process_gold(storage, contract, day)
        if gold.status != "no_input" or any(f.dataset == contract.dataset for f in result.files):
            result.gold.append(gold)
    return result


def run_pipeline(storage: Storage, registry: Registry, *, day: str | None = None,
                 thresholds: Thresholds = DEFAULT_THRESHOLDS,
                 on_plan: Callable[[list[str], int], None] | None = None,
                 on_file: Callable[[str, FileResult], None] | None = None,
                 after_day: Callable[[DayResult], None] | None = None,
                 run_id: str | None = None) -> RunResult:
    """Run every stage for the planned days and write one execution log per day."""
    if day is not None:
        try:
            layout.parse_day(day)
        except ValueError as exc:
            raise UsageError(f"--date: {exc}.", hint="Use YYYYMMDD, e.g. 20250501.") from None
    run_id = run_id or new_run_id()
    started = utc_now()
    ingested = ingest_landing(storage, registry, datetime.now(UTC).strftime("%Y%m%d"))
    days = plan_days(day, ingested, storage)
    if on_plan:
        total = sum(len([o for o in storage.list(layout.raw_prefix(d)) if layout.is_input_file(o.key)])
                    for d in days)
        on_plan(days, total)
    results = []
    for d in days:
        day_result = process_day(storage, registry, d, thresholds, on_file)
        if after_day:
            after_day(day_result)  # e.g. the warehouse load, which fills day_result.load
        log = build_execution_log(
            run_id=run_id, day=d, started_at=started, finished_at=utc_now(),
            parameters={"error_threshold": thresholds.error_pct,
                        "warning_threshold": thresholds.warning_pct, "days": days,
                        "storage": storage.url},
            files=[f.to_dict() for f in day_result.files],
            gold=[g.to_dict() for g in day_result.gold],
            ingested=[i.to_dict() for i in ingested if i.date == d],
            load=day_result.load,
        )
        day_result.log_key = write_execution_log(storage, log)
        results.append(day_result)
    return RunResult(run_id, ingested, results)
