"""The benchmark's cases: one generated file each, cached, with what it must give back.

Every built-in dataset at the size asked (Channel at its realistic size: a line-up is a
few thousand rows whatever the size), with a share of faulty rows, plus a duplicate-heavy
Device snapshot (many rows, few keys: the day's states of a small fleet). The generator's
manifest is kept beside the file, so the checks know how many rows went in and how many
must be rejected.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from m7etl.core.contracts import load_registry
from m7etl.devtools.sample import FAULT_KINDS, SampleOptions, write_sample

DAY = "20250501"
CHANNEL_ROWS = 3_000  # a realistic line-up: a few thousand channels
DUPLICATE_RATE = 0.999  # about 50 keys per 50,000-row chunk: ~2,000 devices in 2M rows


@dataclass(frozen=True)
class Case:
    """One generated file: ``name`` (what ``--dataset`` picks) of contract ``dataset``."""

    name: str
    dataset: str
    note: str
    rows: int | None = None  # fixed rows (else the --size asked)
    duplicates: bool = False

    def options(self, size_mb: float, fault_rate: float) -> SampleOptions:
        if self.duplicates:
            faults = {"duplicate_key": DUPLICATE_RATE}
        else:
            faults = {k: fault_rate / len(FAULT_KINDS) for k in FAULT_KINDS} if fault_rate else {}
        if self.rows is not None:
            return SampleOptions(rows=self.rows, seed=1, faults=faults)
        return SampleOptions(rows=None, size_mb=size_mb, seed=1, faults=faults)

    def folder(self, work: Path, size_mb: float, fault_rate: float) -> Path:
        size = f"{self.rows}rows" if self.rows is not None else f"{size_mb:g}mb"
        rate = DUPLICATE_RATE if self.duplicates else fault_rate
        return work / f"{self.name}-{size}-{rate}"


CASES = (
    Case("Device", "Device", "snapshot; string patterns, allowed lists, a float"),
    Case("EPG", "EPG", "snapshot; patterns, max_length titles, a row check"),
    Case("Viewing", "Viewing", "aggregate; integers and timestamps"),
    Case("Channel", "Channel", f"snapshot at its realistic size ({CHANNEL_ROWS:,} rows)",
         rows=CHANNEL_ROWS),
    Case("Device-dups", "Device", "snapshot of few keys: ~0.1 % distinct devices", duplicates=True),
)


def select(names: str | None) -> list[Case]:
    """The cases named (comma-separated, any case), all when None; an unknown name is an error."""
    if not names:
        return list(CASES)
    by_name = {c.name.lower(): c for c in CASES}
    wanted = [n.strip().lower() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        known = ", ".join(c.name for c in CASES)
        raise SystemExit(f"bench: no case {', '.join(unknown)} (known: {known})")
    return [by_name[n] for n in wanted]


@dataclass(frozen=True)
class Generated:
    """A generated file and what its manifest says must come out of it."""

    path: Path
    rows: int  # data records written
    rejected: int  # records a validator must reject (every fault but duplicate_key)

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def generate(case: Case, work: Path, size_mb: float, fault_rate: float) -> Generated:
    """The case's file, generated once and cached under ``work`` with its manifest."""
    folder = case.folder(work, size_mb, fault_rate)
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        contract = load_registry()[case.dataset]
        manifest = write_sample(contract, DAY, folder, case.options(size_mb, fault_rate))
        summary = {"path": Path(manifest.path).name, "rows": manifest.rows,
                   "rejected": len(manifest.rejected_records())}
        manifest_path.write_text(json.dumps(summary))
        print(f"generated {case.name}: {manifest.bytes / 1e6:.1f} MB, {manifest.rows:,} rows in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    summary = json.loads(manifest_path.read_text())
    return Generated(folder / summary["path"], summary["rows"], summary["rejected"])
