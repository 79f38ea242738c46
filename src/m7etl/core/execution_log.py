"""The execution log ``logs/pipeline_execution_YYYYMMDD.json``.

Built from plain dicts (the per-file and per-gold results), so the local runner, the DAG
and the Lambdas' JSON summaries all feed the same function. The DAG runs many times a day
(each S3 upload asks for a run), so it merges its log into the day's earlier one
(:func:`merge_execution_log`) instead of replacing it, and so does the local runner. A
day's log is complete when it names every raw file of the day (:func:`unlogged_files`):
a run killed in the middle of a day leaves it incomplete, and the next run finishes it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from m7etl.core import layout
from m7etl.storage.base import Storage

LOG_VERSION = 1


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def totals(files: list[dict]) -> dict:
    keys = ("rows_read", "rows_valid", "rows_rejected", "rows_warned", "lines_blank")
    out = {k: sum(f.get(k, 0) for f in files) for k in keys}
    out["files"] = len(files)
    for status in ("ok", "failed_threshold", "quarantined"):
        out[f"files_{status}"] = sum(1 for f in files if f.get("status") == status)
    out["files_warning"] = sum(1 for f in files if f.get("warning"))
    return out


def run_status(files: list[dict]) -> str:
    """``ok`` when every file passed cleanly, else ``warning`` (the details are per file)."""
    clean = all(f.get("status") == "ok" and not f.get("warning") for f in files)
    return "ok" if clean else "warning"


def build_execution_log(*, run_id: str, day: str, started_at: str, finished_at: str,
                        parameters: dict, files: list[dict], gold: list[dict],
                        ingested: list[dict] | None = None, load: list[dict] | None = None) -> dict:
    log = {
        "version": LOG_VERSION,
        "run_id": run_id,
        "day": day,
        "started_at": started_at,
        "finished_at": finished_at,
        "status": run_status(files),
        "parameters": parameters,
        "totals": totals(files),
        "ingested": ingested or [],
        "files": files,
        "gold": gold,
    }
    if load is not None:
        log["load"] = load
    return log


def _run_entry(log: dict) -> dict:
    return {k: log.get(k) for k in ("run_id", "started_at", "finished_at")}


def _latest(earlier: list[dict], later: list[dict], key) -> list[dict]:
    """``earlier`` entries that ``later`` does not replace (same ``key``), then ``later``."""
    replaced = {key(e) for e in later}
    return [e for e in earlier if key(e) not in replaced] + list(later)


def merge_execution_log(previous: dict | None, new: dict) -> dict:
    """The day's log once ``new`` (this run's log of the day) joins ``previous``.

    What an earlier run recorded stays: a file keeps its entry unless this run processed
    the same ``source_key`` again (then the new one replaces it); gold and load entries are
    per dataset, the latest winning; ``ingested`` keeps every earlier entry and adds this
    run's (an entry carries the ``run_id`` that moved the file, so the same file landed
    again by a later run is a second entry, while a retried merge of one run adds nothing).
    ``run_id``, times and ``parameters`` are this run's; ``runs`` lists every run
    that wrote the day's log, oldest first; ``status`` and ``totals`` are recomputed over
    the merged files. A ``previous`` of another day, or none, leaves ``new`` as it is
    (with ``runs``). ValueError if ``previous`` is not an execution log.
    """
    runs = [_run_entry(new)]
    if previous is not None and not isinstance(previous, dict):
        raise ValueError(f"a JSON {type(previous).__name__}, not an object")
    if previous is None or previous.get("day") != new["day"]:
        return {**new, "runs": runs}
    for name in ("files", "gold", "ingested"):
        if not isinstance(previous.get(name, []), list):
            raise ValueError(f"field '{name}' is not a list")
    if not isinstance(previous.get("runs", []), list):
        raise ValueError("field 'runs' is not a list")
    earlier_runs = previous.get("runs") or [_run_entry(previous)]
    files = _latest(previous.get("files", []), new["files"], lambda f: f.get("source_key"))
    files.sort(key=lambda f: (layout.base_name(f.get("source_key") or ""), f.get("source_key") or ""))
    gold = _latest(previous.get("gold", []), new["gold"], lambda g: (g.get("dataset"), g.get("date")))
    gold.sort(key=lambda g: (g.get("dataset") or "", g.get("date") or ""))
    ingested = list(previous.get("ingested", []))
    ingested += [i for i in new.get("ingested", []) if i not in ingested]
    load = previous.get("load")
    if new.get("load") is not None:
        load = _latest(load or [], new["load"], lambda x: (x.get("dataset"), x.get("day")))
    merged = build_execution_log(
        run_id=new["run_id"], day=new["day"], started_at=new["started_at"],
        finished_at=new["finished_at"], parameters=new["parameters"], files=files, gold=gold,
        ingested=ingested, load=load)
    merged["runs"] = [r for r in earlier_runs if r.get("run_id") != new["run_id"]] + runs
    return merged


def unlogged_files(log: dict | None, raw_keys: list[str]) -> list[str]:
    """The day's raw files that ``log`` (the day's log, or None) has no entry for."""
    logged = {f.get("source_key") for f in (log or {}).get("files", []) if isinstance(f, dict)}
    return [k for k in raw_keys if k not in logged]


def read_execution_log(storage: Storage, day: str) -> dict | None:
    """The day's log, None if there is none; ValueError if the object is not a log."""
    key = layout.log_key(day)
    if not storage.exists(key):
        return None
    log = json.loads(storage.read_bytes(key))  # JSONDecodeError is a ValueError
    if not isinstance(log, dict) or log.get("day") != day or not isinstance(log.get("files", []), list):
        raise ValueError(f"not the execution log of {day}")
    return log


def write_execution_log(storage: Storage, log: dict) -> str:
    key = layout.log_key(log["day"])
    storage.write_bytes(key, json.dumps(log, indent=2, ensure_ascii=False).encode())
    return key
