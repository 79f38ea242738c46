"""The DAG runs that filed files ask for: one per day, with a run id derived from the input.

The run id is a digest of the bucket, the landing keys and their S3 ``sequencer``s, so a
retried or duplicated event asks for the same run (MWAA answers "already exists", which
:func:`m7etl.orchestration.mwaa.trigger_dag` counts as a success) and a new upload of the
same name, which S3 gives a new sequencer, asks for a new one. The run's conf::

    {"date": "YYYYMMDD", "raw_keys": [...], "trigger": "s3_event"}
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from m7etl.core.ingest import ALREADY, INGESTED, IngestResult

S3_EVENT = "s3_event"


class Upload(Protocol):
    """One uploaded object version: its key and the S3 ``sequencer`` of its event."""

    @property
    def key(self) -> str: ...

    @property
    def sequencer(self) -> str: ...


U = TypeVar("U", bound=Upload)


@dataclass(frozen=True)
class RunRequest:
    """A DAG run to ask for: the day, its id and its conf."""

    day: str
    dag_run_id: str
    conf: dict


def dag_run_id(day: str, bucket: str, uploads: Iterable[Upload]) -> str:
    """``s3_<day>_<16 hex>``: stable for the same event (retries, duplicates), new for a
    new upload; the order of the uploads does not matter."""
    text = "\n".join(sorted(f"{bucket}/{u.key}@{u.sequencer}" for u in uploads))
    return f"s3_{day}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def run_conf(day: str, raw_keys: Iterable[str], trigger: str = S3_EVENT) -> dict:
    """The conf of a triggered run (raw keys sorted)."""
    return {"date": day, "raw_keys": sorted(raw_keys), "trigger": trigger}


def files_per_day(filed: Iterable[tuple[U, IngestResult]]
                  ) -> dict[str, list[tuple[U, IngestResult]]]:
    """The uploads now under ``raw/`` (moved by this call or an earlier one), by day."""
    by_day: dict[str, list[tuple[U, IngestResult]]] = {}
    for upload, result in filed:
        if result.status in (INGESTED, ALREADY) and result.date:
            by_day.setdefault(result.date, []).append((upload, result))
    return by_day


def run_requests(bucket: str, filed: Iterable[tuple[Upload, IngestResult]]) -> list[RunRequest]:
    """One run per day touched, in day order."""
    return [RunRequest(day, dag_run_id(day, bucket, [u for u, _ in items]),
                       run_conf(day, [r.target_key for _, r in items]))
            for day, items in sorted(files_per_day(filed).items())]
