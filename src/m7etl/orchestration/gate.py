"""The DAG's quality gate and what follows it, as plain functions.

The gate reads the ``raw_to_silver`` summaries (the XComs): a file over ``error_threshold``
(status ``failed_threshold``: its silver was not promoted) or unreadable (``quarantined``)
fails the gate and is named; the others pass. Files whose warned rows are over
``warning_threshold`` are reported, and so is the share of warned rows of the run. A planned
file with no summary is one whose invocation failed: the run reports that task, and the
file, still pending, is processed again by the next run.

Gold is rebuilt for every dataset and day a summary touched, passed or not: a file that
failed the gate had its old silver dropped, so its day's gold must be rebuilt without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from m7etl.core import layout
from m7etl.orchestration.payloads import RawToSilverSummary, SilverToGoldRequest, SilverToGoldSummary

PASSED = "ok"


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


@dataclass(frozen=True)
class GateResult:
    """What the gate decided; ``to_dict()`` is its XCom (keys and small numbers only)."""

    passed: list[str]
    failed: list[dict]  # source_key, dataset, status, rejected_pct, reason
    warned: list[dict]  # source_key, dataset, warned_pct
    not_processed: list[str]  # planned files without a summary (their invocation failed)
    gold: list[tuple[str, str]]  # (dataset, day) to rebuild
    rows_read: int = 0
    rows_warned: int = 0
    warning_threshold: float = 0.0
    error_threshold: float = 0.0

    @property
    def warned_share(self) -> float:
        """Warned rows as a % of the rows read by this run."""
        return _pct(self.rows_warned, self.rows_read)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "failed": self.failed, "warned": self.warned,
                "not_processed": self.not_processed, "gold": [list(p) for p in self.gold],
                "rows_read": self.rows_read, "rows_warned": self.rows_warned,
                "warned_share": self.warned_share, "error_threshold": self.error_threshold,
                "warning_threshold": self.warning_threshold}

    def report(self) -> list[str]:
        """The lines the gate task logs."""
        lines = [f"{len(self.passed)} file(s) passed, {len(self.failed)} failed the gate "
                 f"(error_threshold {self.error_threshold}%)."]
        lines += [f"  FAILED {f['source_key']}: {f['reason'] or f['status']}" for f in self.failed]
        lines.append(f"Warned rows: {self.rows_warned} of {self.rows_read} ({self.warned_share}%); "
                     f"{len(self.warned)} file(s) over warning_threshold {self.warning_threshold}%.")
        lines += [f"  WARNING {w['source_key']}: {w['warned_pct']}% warned" for w in self.warned]
        if self.not_processed:
            lines.append(f"{len(self.not_processed)} planned file(s) have no result (their "
                         f"raw_to_silver task failed): {', '.join(self.not_processed)}")
        return lines


def _failure_reason(summary: RawToSilverSummary, error_threshold: float) -> str:
    if summary.reason:
        return summary.reason
    return (f"{summary.rejected_pct:.2f}% of rows rejected, above the error threshold of "
            f"{error_threshold}%")


def quality_gate(planned: Iterable[str], results: Iterable[dict | str], *,
                 error_threshold: float, warning_threshold: float) -> GateResult:
    """The gate over the function results (dicts, or the JSON text the operator returns)."""
    summaries = [RawToSilverSummary.from_dict(json.loads(r) if isinstance(r, str) else r)
                 for r in results]
    summaries.sort(key=lambda s: s.source_key)
    passed, failed, warned = [], [], []
    gold: set[tuple[str, str]] = set()
    for s in summaries:
        promoted = s.status == PASSED and s.rejected_pct <= error_threshold
        if promoted:
            passed.append(s.source_key)
        else:
            failed.append({"source_key": s.source_key, "dataset": s.dataset, "status": s.status,
                           "rejected_pct": s.rejected_pct,
                           "reason": _failure_reason(s, error_threshold)})
        if s.warned_pct > warning_threshold:
            warned.append({"source_key": s.source_key, "dataset": s.dataset,
                           "warned_pct": s.warned_pct})
        day = s.date or layout.day_of_raw_key(s.source_key)
        if s.dataset and day:
            gold.add((s.dataset, day))
    seen = {s.source_key for s in summaries}
    return GateResult(
        passed=passed, failed=failed, warned=warned,
        not_processed=sorted(set(planned) - seen), gold=sorted(gold),
        rows_read=sum(s.rows_read for s in summaries),
        rows_warned=sum(s.rows_warned for s in summaries),
        error_threshold=error_threshold, warning_threshold=warning_threshold)


def silver_to_gold_payloads(gold: Iterable[tuple[str, str]], bucket: str) -> list[str]:
    """One ``silver_to_gold`` payload per dataset and day (JSON text)."""
    return [json.dumps(SilverToGoldRequest(dataset, day, bucket).to_payload())
            for dataset, day in sorted(gold)]


@dataclass(frozen=True)
class LoadRequest:
    """One ``gold_to_snowflake`` run for the run's gold: its ``--days`` and ``--datasets``."""

    days: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)

    def script_args(self) -> dict[str, str]:
        return {"--days": ",".join(self.days), "--datasets": ",".join(self.datasets)}


def load_request(gold: Iterable[tuple[str, str]]) -> LoadRequest:
    """One job run for every rebuilt dataset and day (reloading a day is safe: the loader
    replaces it), so the load never waits on Glue's ``MaxConcurrentRuns``."""
    pairs = sorted(set(gold))
    return LoadRequest(sorted({d for _, d in pairs}), sorted({ds for ds, _ in pairs}))


def gold_results(results: Iterable[dict | str]) -> list[dict]:
    """The ``silver_to_gold`` summaries as dicts, checked against the contract."""
    return [SilverToGoldSummary.from_dict(json.loads(r) if isinstance(r, str) else r).to_dict()
            for r in results]
