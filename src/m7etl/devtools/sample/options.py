"""What a caller asks for (:class:`SampleOptions`) and gets back (:class:`SampleManifest`).

The options are checked here, before any byte is written, so a bad option is a
:class:`~m7etl.exceptions.UsageError` with a hint rather than a half-written file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from m7etl.core.contracts import Contract, Registry
from m7etl.core.layout import parse_day
from m7etl.devtools.sample.dialects import DELIMITERS, ENCODINGS, LINE_ENDINGS
from m7etl.devtools.sample.faults import FAULT_KINDS, applicable_faults, fault_columns
from m7etl.exceptions import UsageError


@dataclass(frozen=True)
class SampleOptions:
    rows: int | None = 1000  # exactly one of rows / size_mb
    size_mb: float | None = None
    seed: int = 0
    faults: dict[str, float] = field(default_factory=dict)  # kind -> rate in [0, 1]
    warn_rate: float = 0.0
    delimiter: str = ","
    encoding: str = "utf-8"  # "utf-8", "utf-8-sig" (BOM), "cp1252"
    line_ending: str = "\n"  # or "\r\n"
    gzip: bool = False
    multiline_rate: float = 0.0  # share of rows with a quoted newline in a free-text column


@dataclass
class InjectedFault:
    record_number: int
    kind: str
    column: str | None


@dataclass
class SampleManifest:
    dataset: str
    day: str
    path: str
    rows: int
    bytes: int
    faults: list[InjectedFault]
    warned_rows: int
    warned: list[InjectedFault] = field(default_factory=list)  # kind "warn", one per warned row
    multiline_rows: int = 0
    text_bytes: int = 0  # CSV bytes before gzip (equals ``bytes`` without gzip)

    def counts(self) -> dict[str, int]:
        """Injected faults by kind (every kind present, 0 if none)."""
        found = Counter(f.kind for f in self.faults)
        return {kind: found.get(kind, 0) for kind in FAULT_KINDS}

    def rejected_records(self) -> set[int]:
        """Record numbers a validator must reject (every fault except ``duplicate_key``)."""
        return {f.record_number for f in self.faults if f.kind != "duplicate_key"}

    def duplicate_records(self) -> set[int]:
        return {f.record_number for f in self.faults if f.kind == "duplicate_key"}

    @property
    def name(self) -> str:
        return Path(self.path).name


def lookup(registry: Registry, dataset: str) -> Contract:
    for c in registry:
        if c.dataset.lower() == dataset.lower():
            return c
    known = ", ".join(sorted(c.dataset for c in registry))
    raise UsageError(f"Dataset '{dataset}' has no contract (known: {known}).",
                     hint="Pick one of the known datasets or add a contract file.")


def check_day(day: str) -> str:
    try:
        return parse_day(str(day))
    except ValueError as exc:
        raise UsageError(f"Day {exc}.", hint="Give the day as YYYYMMDD, e.g. 20250501.") from None


def check_options(contract: Contract, o: SampleOptions) -> None:
    def bad(what: str, hint: str) -> UsageError:
        return UsageError(f"Sample options for {contract.dataset}: {what}.", hint=hint)

    if (o.rows is None) == (o.size_mb is None):
        raise bad("give exactly one of rows or size_mb", "Pass --rows N or --size-mb M.")
    if o.rows is not None and (not isinstance(o.rows, int) or o.rows < 0):
        raise bad(f"rows {o.rows!r} is not a whole number >= 0", "Pass --rows 1000, say.")
    if o.size_mb is not None and not o.size_mb > 0:
        raise bad(f"size_mb {o.size_mb!r} must be > 0", "Pass --size-mb 10, say.")
    for kind, rate in o.faults.items():
        if kind not in FAULT_KINDS:
            raise bad(f"fault kind '{kind}' is unknown",
                      f"Use one of {', '.join(FAULT_KINDS)}.")
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise bad(f"fault rate {kind}={rate!r} is outside [0, 1]",
                      "Give a rate such as 0.02 (2%).")
        if rate > 0 and fault_columns(contract, kind) is None:
            raise bad(f"fault kind '{kind}' cannot be injected (no column or key it applies to)",
                      f"Drop it; this contract supports {', '.join(applicable_faults(contract))}.")
    if sum(o.faults.values()) > 1:
        raise bad("the fault rates add up to more than 1", "Lower the rates.")
    for name, rate in (("warn_rate", o.warn_rate), ("multiline_rate", o.multiline_rate)):
        if not 0 <= rate <= 1:
            raise bad(f"{name} {rate!r} is outside [0, 1]", "Give a rate such as 0.02.")
    if o.delimiter not in DELIMITERS:
        raise bad(f"delimiter {o.delimiter!r} is not supported", "Use ',' or ';'.")
    if o.encoding.lower() not in ENCODINGS:
        raise bad(f"encoding {o.encoding!r} is not supported",
                  f"Use one of {', '.join(ENCODINGS)}.")
    if o.line_ending not in LINE_ENDINGS:
        raise bad(f"line ending {o.line_ending!r} is not supported", "Use '\\n' or '\\r\\n'.")
