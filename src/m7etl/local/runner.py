"""The local runner: the whole pipeline on one machine, over any :class:`Storage`.

landing -> raw (ingest), raw -> silver per file, silver -> gold per dataset, then the
execution log of each day, merged into the day's earlier log. What a run moved is logged
as soon as it is moved (the day's log then says ``incomplete``), so a run killed later
loses no record. Days processed (:func:`plan_days`): ``--date`` if given (and only that
day's files leave landing/); else the days of the files just ingested and every day whose
log does not name all its raw files (a killed run's unfinished days); else the latest day
already in ``raw/`` (a replay).

:func:`run_local` runs it on a data folder alone: the folder's run lock, the leftovers of
killed runs cleaned, the stages' temporary files in one work folder of the run.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from m7etl.core import layout
from m7etl.core.contracts import Registry
from m7etl.core.execution_log import (
    build_execution_log,
    merge_execution_log,
    read_execution_log,
    unlogged_files,
    utc_now,
    write_execution_log,
)
from m7etl.core.ingest import LEFT, MOVED, SKIPPED, IngestResult, ingest, landing_day
from m7etl.core.raw_to_silver import (
    DEFAULT_THRESHOLDS,
    STATUS_QUARANTINED,
    FileResult,
    Thresholds,
    process_raw_file,
)
from m7etl.core.silver_to_gold import GoldResult, process_gold
from m7etl.exceptions import StorageError, UsageError
from m7etl.local.leftovers import Leftover, remove_abandoned, work_folder
from m7etl.local.lock import FolderLock
from m7etl.storage import LocalStorage, Storage

RUN_LOCK = ".m7etl-run.lock"  # in the data folder: one run at a time works on it
# Where a run writes; a killed run's partial writes there are removed by the next run.
# Not landing/: producers write there.
OUTPUT_PREFIXES = (layout.RAW, layout.SILVER, layout.GOLD, layout.QUARANTINE, layout.LOGS)
INCOMPLETE = "incomplete"  # the status of a day's log while a run is still at work on it


@dataclass
class DayResult:
    day: str
    files: list[FileResult] = field(default_factory=list)
    gold: list[GoldResult] = field(default_factory=list)
    log_key: str | None = None
    load: list[dict] | None = None  # filled by the warehouse step when it runs
    load_report: Any = None  # the local warehouse's LoadReport, for the CLI
    log_aside: str | None = None  # where an unreadable earlier log of the day was moved


@dataclass
class RunResult:
    run_id: str
    ingested: list[IngestResult]
    days: list[DayResult]
    waiting: list[str] = field(default_factory=list)  # unfinished days --date left for later
    cleaned: list[Leftover] = field(default_factory=list)  # killed runs' leftovers removed


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def ingest_landing(storage: Storage, registry: Registry, arrival_day: str,
                   only_day: str | None = None) -> list[IngestResult]:
    """Ingest every file of landing/ (only ``only_day``'s if given); never stops at one entry.

    A folder entry that is not a plain readable file (a link, a FIFO, ...) is skipped with
    its reason, as is a file whose move fails; the others go on.
    """
    unusable = storage.unusable(layout.LANDING) if isinstance(storage, LocalStorage) else {}
    results = [IngestResult(key, SKIPPED, reason=reason) for key, reason in unusable.items()]
    for obj in storage.list(layout.LANDING):
        if obj.key not in unusable:
            results.append(_ingest_one(storage, obj.key, registry, arrival_day, only_day))
    return results


def _ingest_one(storage: Storage, key: str, registry: Registry, arrival_day: str,
                only_day: str | None) -> IngestResult:
    if only_day and layout.is_input_file(key) and "/" not in key[len(layout.LANDING):]:
        day = landing_day(key, registry, arrival_day)
        if day != only_day:
            return IngestResult(key, LEFT, date=day, reason=(
                f"a file of {day}, not of --date {only_day}; a run without --date takes it"))
    try:
        return ingest(storage, key, registry, arrival_day)
    except StorageError as exc:
        if exc.retryable:
            raise
        return IngestResult(key, SKIPPED, reason=str(exc))


def raw_days(storage: Storage) -> list[str]:
    return sorted({d for d in (layout.day_of_raw_key(o.key) for o in storage.list(layout.RAW)) if d})


def _readable_log(storage: Storage, day: str) -> dict | None:
    try:
        return read_execution_log(storage, day)
    except ValueError:
        return None  # not a log: the day counts as unfinished; writing its log sets it aside


def unfinished_days(storage: Storage) -> list[str]:
    """Days a run left unfinished: raw files the day's log does not all name (or no log), or
    a log still ``incomplete`` (its run moved files, then died: a file landed again under a
    name the log already has, or one quarantined on arrival, is seen this way)."""
    by_day: dict[str, list[str]] = {}
    for obj in storage.list(layout.RAW):
        day = layout.day_of_raw_key(obj.key)
        if day and layout.is_input_file(obj.key):
            by_day.setdefault(day, []).append(obj.key)
    for obj in storage.list(layout.LOGS):
        if match := layout.LOG_KEY.match(obj.key):
            by_day.setdefault(match.group(1), [])
    unfinished = []
    for day in sorted(by_day):
        log = _readable_log(storage, day)
        if (log or {}).get("status") == INCOMPLETE or unlogged_files(log, by_day[day]):
            unfinished.append(day)
    return unfinished


def plan_days(requested: str | None, ingested: list[IngestResult], storage: Storage,
              unfinished: list[str] | None = None) -> list[str]:
    """``requested``, else the days moved now and the unfinished ones, else the latest raw day."""
    if requested:
        return [requested]
    unfinished = unfinished_days(storage) if unfinished is None else unfinished
    days = sorted({r.date for r in ingested if r.status in MOVED and r.date} | set(unfinished))
    if days:
        return days
    existing = raw_days(storage)
    if not existing:
        skipped = "; ".join(f"{r.source_key}: {r.reason}" for r in ingested if r.status == SKIPPED)
        raise UsageError(
            f"Nothing to process in {storage.url}: landing/ has no usable CSV file and raw/ has no "
            f"day.{f' Skipped: {skipped}.' if skipped else ''}",
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
                on_file: Callable[[str, FileResult], None] | None = None, *,
                tmp_dir: str | None = None) -> DayResult:
    """raw -> silver for every raw file of the day, then gold for every dataset."""
    result = DayResult(day)
    keys = [o.key for o in storage.list(layout.raw_prefix(day)) if layout.is_input_file(o.key)]
    for key in keys:
        file_result = process_raw_file(storage, key, registry, thresholds, tmp_dir=tmp_dir)
        result.files.append(file_result)
        if on_file:
            on_file(key, file_result)
    seen = {f.source_key for f in result.files}
    earlier = [q for q in quarantined_files(storage, day) if q.source_key not in seen]
    result.files = sorted(result.files + earlier, key=lambda f: f.source_key.rsplit("/", 1)[-1])
    for contract in registry:
        gold = process_gold(storage, contract, day, tmp_dir=tmp_dir)
        if gold.status != "no_input" or any(f.dataset == contract.dataset for f in result.files):
            result.gold.append(gold)
    return result


def merge_into_day_log(storage: Storage, log: dict, run_id: str) -> tuple[str, str | None]:
    """Write ``log`` merged into the day's earlier log; return the key and, if the earlier
    object was not a log, where it was set aside (kept, never overwritten unseen)."""
    key, aside = layout.log_key(log["day"]), None
    try:
        previous = read_execution_log(storage, log["day"])
        merged = merge_execution_log(previous, log)
    except ValueError:
        aside = f"{key}.unreadable-{run_id}"
        storage.move(key, aside)
        merged = merge_execution_log(None, log)
    if log["status"] == INCOMPLETE:
        merged["status"] = INCOMPLETE
    return write_execution_log(storage, merged), aside


def run_pipeline(storage: Storage, registry: Registry, *, day: str | None = None,
                 thresholds: Thresholds = DEFAULT_THRESHOLDS,
                 on_plan: Callable[[list[str], int], None] | None = None,
                 on_file: Callable[[str, FileResult], None] | None = None,
                 after_day: Callable[[DayResult], None] | None = None,
                 run_id: str | None = None, tmp_dir: str | None = None) -> RunResult:
    """Run every stage for the planned days and merge one execution log per day."""
    if day is not None:
        try:
            layout.parse_day(day)
        except ValueError as exc:
            raise UsageError(f"--date: {exc}.", hint="Use YYYYMMDD, e.g. 20250501.") from None
    run_id = run_id or new_run_id()
    started = utc_now()
    ingested = ingest_landing(storage, registry, datetime.now(UTC).strftime("%Y%m%d"), only_day=day)
    unfinished = unfinished_days(storage)
    days = plan_days(day, ingested, storage, unfinished)
    parameters = {"error_threshold": thresholds.error_pct,
                  "warning_threshold": thresholds.warning_pct, "days": days, "storage": storage.url}

    def day_log(d: str, day_result: DayResult | None) -> dict:
        moved = [{**i.to_dict(), "run_id": run_id} for i in ingested if i.date == d and i.status in MOVED]
        log = build_execution_log(
            run_id=run_id, day=d, started_at=started,
            finished_at=utc_now() if day_result else None, parameters=parameters,
            files=[f.to_dict() for f in day_result.files] if day_result else [],
            gold=[g.to_dict() for g in day_result.gold] if day_result else [],
            ingested=moved, load=day_result.load if day_result else None)
        if day_result is None:
            log["status"] = INCOMPLETE
        return log

    asides = {}  # day -> where an earlier object at the day's log key was set aside
    for d in sorted({i.date for i in ingested if i.status in MOVED and i.date}):
        _key, asides[d] = merge_into_day_log(storage, day_log(d, None), run_id)  # logged at once
    if on_plan:
        total = sum(len([o for o in storage.list(layout.raw_prefix(d)) if layout.is_input_file(o.key)])
                    for d in days)
        on_plan(days, total)
    results = []
    for d in days:
        day_result = process_day(storage, registry, d, thresholds, on_file, tmp_dir=tmp_dir)
        if after_day:
            after_day(day_result)  # e.g. the warehouse load, which fills day_result.load
        day_result.log_key, aside = merge_into_day_log(storage, day_log(d, day_result), run_id)
        day_result.log_aside = aside or asides.get(d)
        results.append(day_result)
    return RunResult(run_id, ingested, results, waiting=[d for d in unfinished if d not in days])


class Warehouse(Protocol):
    """The load step :func:`run_local` takes: reserved for the whole run, called per day."""

    def reserve(self) -> AbstractContextManager[object]: ...
    def __call__(self, day_result: DayResult) -> None: ...


def run_local(storage: LocalStorage, registry: Registry, *, warehouse: Warehouse | None = None,
              tmp_root: str | Path | None = None, **options: Any) -> RunResult:
    """:func:`run_pipeline` on a data folder, alone on it and on its warehouse.

    Checked before any work: no other run holds the folder (its run lock), nor the
    warehouse. Then the partial writes of a killed run in the folder and the work folders
    of dead runs in the temp folder are removed, and this run's stages keep their temporary
    files in its own work folder (removed at the end, Ctrl-C included). ``options`` go to
    :func:`run_pipeline`. UsageError naming the other run if the folder is busy.
    """
    lock = FolderLock(storage.root / RUN_LOCK)
    try:
        holder = lock.try_acquire()
    except OSError as exc:
        raise UsageError(f"Cannot lock the data folder {storage.root}: {exc.strerror}.",
                         hint="A run writes in it: check that it is writable.") from None
    if holder is not None:
        raise UsageError(f"Another run ({holder.describe()}) is working on {storage.root}.",
                         hint="Wait for it to end (a killed run frees the folder at once), "
                              "or use another --data-dir.")
    try:
        with contextlib.ExitStack() as stack:
            if warehouse is not None:
                stack.enter_context(warehouse.reserve())
            cleaned = [Leftover(storage.describe(o.key), o.size)
                       for o in storage.remove_partial_writes(OUTPUT_PREFIXES)]
            cleaned += remove_abandoned(tmp_root)
            work = stack.enter_context(work_folder(tmp_root))
            result = run_pipeline(storage, registry, after_day=warehouse, tmp_dir=str(work),
                                  **options)
    finally:
        lock.release()
    result.cleaned = cleaned
    return result
