"""The execution log ``logs/pipeline_execution_YYYYMMDD.json``.

Built from plain dicts (the per-file and per-gold results), so the local runner, the DAG
and the Lambdas' JSON summaries all feed the same function.
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
    keys = ("rows_read", "rows_valid", "rows_rejected", "rows_warned")
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


def write_execution_log(storage: Storage, log: dict) -> str:
    key = layout.log_key(log["day"])
    storage.write_bytes(key, json.dumps(log, indent=2, ensure_ascii=False).encode())
    return key
