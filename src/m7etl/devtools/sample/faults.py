"""The fault kinds, the columns each kind can hit, and the bad text of a value fault.

One place decides what a fault is: the option checks, ``applicable_faults`` and the
generator all ask here, so they cannot disagree on which kinds a contract supports.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np

from m7etl.core.contracts import Contract
from m7etl.devtools.sample.columns import Col

FAULT_KINDS = ("wrong_type", "missing_required", "out_of_range", "duplicate_key",
               "wrong_column_count", "bad_date")


def applicable_faults(contract: Contract) -> tuple[str, ...]:
    """The fault kinds this contract has a column (or key) for."""
    return tuple(k for k in FAULT_KINDS if fault_columns(contract, k) is not None)


def fault_columns(contract: Contract, kind: str) -> list[str] | None:
    """Columns a fault kind can hit (``[]`` for row-level kinds), or None if not applicable."""
    cols = contract.columns
    if kind == "wrong_type":
        names = [c.name for c in cols if c.type in ("integer", "float", "boolean")]
    elif kind == "missing_required":
        names = [c.name for c in cols if c.required]
    elif kind == "out_of_range":
        names = [c.name for c in cols if c.type != "boolean" and (
            c.rules.min is not None or c.rules.max is not None or c.rules.allowed)]
    elif kind == "bad_date":
        names = [c.name for c in cols if c.type in ("date", "timestamp")]
    elif kind == "duplicate_key":
        return [] if contract.primary_key else None
    else:  # wrong_column_count
        return []
    return names or None


_WRONG_TYPE = {
    "integer": ("abc", "12x", "1.5.2", "douze", "#12"),
    "float": ("abc", "1.2.3", "douze", "--1", "5..0"),
    "boolean": ("maybe", "abc", "peut-être", "nope", "2"),
}
_NOT_ALLOWED = ("unknown", "other", "legacy", "zz-test", "inconnu", "TBD")


def _is_valid_temporal(text: str, fmt: str) -> bool:
    try:
        datetime.strptime(text, fmt)
    except ValueError:
        return False
    return True


def _bad_date(col: Col, rng: np.random.Generator, value: int) -> str:
    """An impossible date in the column's format, or a date in another format."""
    fmt = col.c.format
    when = col.as_datetime(value)
    y = when.year
    candidates = []
    for month, dday in ((2, 30), (4, 31), (13, 1), (2, 29 if y % 4 else 30), (6, 31), (0, 12)):
        text = fmt.replace("%Y", f"{y:04d}").replace("%y", f"{y % 100:02d}")
        text = text.replace("%m", f"{month:02d}").replace("%d", f"{dday:02d}")
        candidates.append(when.strftime(text))
    other = "%d/%m/%Y" if fmt.startswith("%Y-%m-%d") else "%Y-%m-%d"
    if col.type == "timestamp":
        other += " %H:%M"
    candidates += [when.strftime(other)] * 3
    for j in rng.permutation(len(candidates)):
        if not _is_valid_temporal(candidates[j], fmt):
            return candidates[j]
    return "2025-02-30"


def _out_of_range(col: Col, rng: np.random.Generator) -> str:
    r = col.c.rules
    options = []
    if col.type in ("integer", "float", "date", "timestamp"):
        step = {"integer": 1000, "float": 1000 * col.scale, "date": 400, "timestamp": 86400 * 30}
        k = int(rng.integers(1, step[col.type] + 1))
        if r.max is not None:
            options.append(col.format_one(col.to_units(r.max, False) + k))
        if r.min is not None:
            options.append(col.format_one(col.to_units(r.min, True) - k))
    if r.allowed:
        lowered = {a.lower() for a in r.allowed}
        if col.type == "integer":
            nums = [int(a) for a in r.allowed if re.fullmatch(r"-?\d+", a)]
            options.append(str((max(nums) if nums else 0) + int(rng.integers(1, 50))))
        else:
            bad = [v for v in _NOT_ALLOWED if v.lower() not in lowered]
            if col.maxlen is not None:
                bad = [v for v in bad if len(v) <= col.maxlen]
            if bad:
                options.append(bad[int(rng.integers(0, len(bad)))])
    if not options:
        return "0"
    return options[int(rng.integers(0, len(options)))]


def bad_value(kind: str, col: Col, rng: np.random.Generator, values, row: int,
              day_start: int) -> str:
    """The text of a value fault in ``row`` of ``col``, whose clean ``values`` are given."""
    if kind == "wrong_type":
        choices = _WRONG_TYPE[col.type]
        return choices[int(rng.integers(0, len(choices)))]
    if kind == "missing_required":
        return ""
    if kind == "out_of_range":
        return _out_of_range(col, rng)
    return _bad_date(col, rng, int(values[row]) if col.numeric else
                     (day_start // 86400 if col.type == "date" else day_start))
