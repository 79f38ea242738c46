"""The data-contract model: frozen dataclasses for a dataset's columns, rules, row checks,
CSV dialect and gold spec, and the vocabularies (column types, aggregations, comparisons)
that a contract file may use. Nothing here reads files; see :mod:`.loading`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TYPES = ("string", "integer", "float", "boolean", "date", "timestamp")
DEFAULT_FORMATS = {"date": "%Y-%m-%d", "timestamp": "%Y-%m-%d %H:%M:%S"}
AGGREGATIONS = ("count", "count_distinct", "sum", "min", "max", "mean")
COMPARISONS = {"greater_than": ">", "greater_or_equal": ">=", "less_than": "<", "less_or_equal": "<="}


@dataclass(frozen=True)
class Rules:
    """Value rules of one column; the same shape serves hard rules and soft warnings."""

    min: Any = None
    max: Any = None
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    max_length: int | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.min, self.max, self.allowed, self.pattern, self.max_length))


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    format: str | None = None  # strptime format of date and timestamp columns
    rules: Rules = field(default_factory=Rules)
    warn: Rules = field(default_factory=Rules)
    description: str = ""


@dataclass(frozen=True)
class RowCheck:
    """A rule between two columns of one row, e.g. ``end_time`` greater than ``start_time``."""

    name: str
    column: str
    op: str
    other: str
    severity: str = "error"


@dataclass(frozen=True)
class Metric:
    name: str
    agg: str
    column: str | None = None


@dataclass(frozen=True)
class GoldSpec:
    """What gold holds: the latest record per key (snapshot) or group-by aggregates."""

    kind: str  # "snapshot" or "aggregate"
    order_by: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    metrics: tuple[Metric, ...] = ()


@dataclass(frozen=True)
class CsvDialect:
    delimiters: tuple[str, ...] = (",",)
    encodings: tuple[str, ...] = ("utf-8",)
    header: bool = True


@dataclass(frozen=True)
class Contract:
    dataset: str
    description: str
    pattern: re.Pattern
    dialect: CsvDialect
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    gold: GoldSpec
    checks: tuple[RowCheck, ...] = ()
    source: str = ""
    grain: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def match(self, file_name: str) -> str | None:
        """The file's date ``YYYYMMDD`` if the name is one of this dataset's, else None."""
        m = self.pattern.match(file_name)
        return m.group("date") if m else None
