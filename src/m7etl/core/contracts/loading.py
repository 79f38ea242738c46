"""Reading a contract: parse the YAML of one file into a :class:`~.model.Contract`,
checking every key and failing with a :class:`ContractError` naming the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from m7etl.core.contracts.model import (
    AGGREGATIONS,
    COMPARISONS,
    DEFAULT_FORMATS,
    TYPES,
    Column,
    Contract,
    CsvDialect,
    GoldSpec,
    Metric,
    RowCheck,
    Rules,
)
from m7etl.exceptions import ContractError

DATASET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
COLUMN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PART = r"(?:_(?P<part>\d+))?"  # a delivery split into parts: Viewing_20250501_01.csv


class _Reader:
    """Reads one YAML mapping, remembering the path of keys for error messages."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, problem: str) -> ContractError:
        return ContractError(
            f"Contract {self.source}: key '{key}' {problem}.",
            hint="Fix the contract file and run again.",
        )

    def mapping(self, obj: Any, key: str) -> dict:
        if not isinstance(obj, dict):
            raise self.fail(key, f"must be a mapping, got {type(obj).__name__}")
        return obj

    def unknown(self, obj: dict, key: str, allowed: Iterable[str]) -> None:
        extra = sorted(set(obj) - set(allowed))
        if extra:
            where = f"{key}.{extra[0]}" if key else extra[0]
            raise self.fail(where, f"is not a known setting (allowed: {', '.join(sorted(allowed))})")

    def text(self, obj: dict, key: str, path: str, *, default: Any = ...) -> str:
        if key not in obj:
            if default is ...:
                raise self.fail(path, "is missing")
            return default
        value = obj[key]
        if not isinstance(value, str) or not value:
            raise self.fail(path, "must be a non-empty string")
        return value

    def str_list(self, obj: dict, key: str, path: str, default: tuple = ()) -> tuple[str, ...]:
        value = obj.get(key, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise self.fail(path, "must be a string or a list of strings")
        return tuple(value)


def _rules(r: _Reader, obj: dict, path: str, column_type: str, fmt: str | None) -> Rules:
    r.unknown(obj, path, ("min", "max", "allowed", "pattern", "max_length"))
    bounds = {}
    for key in ("min", "max"):
        if key not in obj:
            continue
        value = obj[key]
        if column_type in ("integer", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise r.fail(f"{path}.{key}", "must be a number")
        elif column_type in ("date", "timestamp"):
            value = str(value)
            try:
                datetime.strptime(value, fmt or DEFAULT_FORMATS[column_type])
            except ValueError:
                raise r.fail(f"{path}.{key}", f"must be written in the column's format {fmt!r}") from None
        else:
            raise r.fail(f"{path}.{key}", f"is not supported for {column_type} columns")
        bounds[key] = value
    allowed = None
    if "allowed" in obj:
        values = obj["allowed"]
        if not isinstance(values, list) or not values:
            raise r.fail(f"{path}.allowed", "must be a non-empty list")
        if any(v is None or isinstance(v, (dict, list)) for v in values):
            raise r.fail(f"{path}.allowed", "must be a list of plain values (strings or numbers)")
        allowed = tuple(str(v) for v in values)
    pattern = obj.get("pattern")
    if pattern is not None:
        if column_type != "string":
            raise r.fail(f"{path}.pattern", "applies to string columns only")
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise r.fail(f"{path}.pattern", f"is not a valid regular expression ({exc})") from None
        problem = _re2_problem(pattern)
        if problem:
            raise r.fail(f"{path}.pattern", f"is not a regular expression that RE2, the engine validation "
                                            f"runs it with, accepts ({problem}); RE2 has no lookaround "
                                            "and no backreferences")
    max_length = obj.get("max_length")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise r.fail(f"{path}.max_length", "must be a positive integer")
    return Rules(bounds.get("min"), bounds.get("max"), allowed, pattern, max_length)


@lru_cache(maxsize=256)
def _re2_problem(pattern: str) -> str | None:
    """Why Arrow's RE2 refuses ``pattern`` (validation runs column patterns there, not in
    Python's re), or None. pyarrow is imported only for contracts that have patterns."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        # A null, not pa.array([""]): building an array from Python objects makes pyarrow
        # import pandas (0.3-0.5 CPU-s of a Lambda's start) and the kernel compiles the
        # pattern all the same.
        pc.match_substring_regex(pa.nulls(1, pa.string()), pattern)
    except pa.ArrowInvalid as exc:
        return str(exc)
    return None


_FORMAT_PROBE = datetime(2025, 12, 31, 23, 59, 58)


def _check_format(r: _Reader, fmt: Any, path: str) -> None:
    """A strptime format that writes and reads back a day (year, month and day all in it)."""
    if not isinstance(fmt, str) or not fmt:
        raise r.fail(path, "must be a strptime format string, e.g. '%d/%m/%Y'")
    try:
        back = datetime.strptime(_FORMAT_PROBE.strftime(fmt), fmt)
    except ValueError as exc:
        raise r.fail(path, f"is not a usable strptime format ({exc})") from None
    if back.date() != _FORMAT_PROBE.date():
        raise r.fail(path, f"{fmt!r} must hold the year, the month and the day, e.g. '%d/%m/%Y'")


def _column(r: _Reader, obj: Any, index: int) -> Column:
    path = f"columns[{index}]"
    obj = r.mapping(obj, path)
    r.unknown(obj, path, ("name", "type", "required", "format", "description", "min", "max",
                          "allowed", "pattern", "max_length", "warn"))
    name = r.text(obj, "name", f"{path}.name")
    if not COLUMN_NAME.match(name):
        raise r.fail(f"{path}.name", f"'{name}' must be snake_case (letters, digits, _)")
    path = f"columns.{name}"
    ctype = r.text(obj, "type", f"{path}.type")
    if ctype not in TYPES:
        raise r.fail(f"{path}.type", f"'{ctype}' is not one of {', '.join(TYPES)}")
    required = obj.get("required", False)
    if not isinstance(required, bool):
        raise r.fail(f"{path}.required", "must be true or false")
    fmt = obj.get("format")
    if fmt is not None and ctype not in ("date", "timestamp"):
        raise r.fail(f"{path}.format", "applies to date and timestamp columns only")
    if fmt is not None:
        _check_format(r, fmt, f"{path}.format")
    if ctype in DEFAULT_FORMATS:
        fmt = fmt or DEFAULT_FORMATS[ctype]
    hard = {k: obj[k] for k in ("min", "max", "allowed", "pattern", "max_length") if k in obj}
    warn = r.mapping(obj.get("warn", {}), f"{path}.warn")
    return Column(
        name=name,
        type=ctype,
        required=required,
        format=fmt,
        rules=_rules(r, hard, path, ctype, fmt),
        warn=_rules(r, warn, f"{path}.warn", ctype, fmt),
        description=str(obj.get("description", "")),
    )


def _checks(r: _Reader, items: Any, columns: dict[str, Column]) -> tuple[RowCheck, ...]:
    if not isinstance(items, list):
        raise r.fail("checks", "must be a list")
    checks = []
    for i, obj in enumerate(items):
        path = f"checks[{i}]"
        obj = r.mapping(obj, path)
        r.unknown(obj, path, ("name", "column", "severity", *COMPARISONS))
        name = r.text(obj, "name", f"{path}.name")
        column = r.text(obj, "column", f"{path}.column")
        ops = [k for k in COMPARISONS if k in obj]
        if len(ops) != 1:
            raise r.fail(path, f"must have exactly one of {', '.join(COMPARISONS)}")
        other = r.text(obj, ops[0], f"{path}.{ops[0]}")
        for ref in (column, other):
            if ref not in columns:
                raise r.fail(f"{path}", f"names unknown column '{ref}'")
        if columns[column].type != columns[other].type:
            raise r.fail(path, f"compares '{column}' and '{other}' of different types")
        severity = obj.get("severity", "error")
        if severity not in ("error", "warning"):
            raise r.fail(f"{path}.severity", "must be 'error' or 'warning'")
        checks.append(RowCheck(name, column, COMPARISONS[ops[0]], other, severity))
    return tuple(checks)


def _gold(r: _Reader, obj: Any, columns: dict[str, Column], key: tuple[str, ...]) -> GoldSpec:
    obj = r.mapping(obj, "gold")
    r.unknown(obj, "gold", ("kind", "order_by", "group_by", "metrics"))
    kind = r.text(obj, "kind", "gold.kind")
    if kind not in ("snapshot", "aggregate"):
        raise r.fail("gold.kind", f"'{kind}' must be 'snapshot' or 'aggregate'")
    if kind == "snapshot" and not key:
        raise r.fail("gold.kind", "'snapshot' needs a primary_key")
    # The latest record of a key wins by these columns (then the later file, the later
    # line): a snapshot keeps it, an aggregate counts it once.
    order_by = r.str_list(obj, "order_by", "gold.order_by")
    if order_by and not key:
        raise r.fail("gold.order_by", "picks the latest record per key: it needs a primary_key")
    for name in order_by:
        if name not in columns:
            raise r.fail("gold.order_by", f"names unknown column '{name}'")
    if kind == "snapshot":
        return GoldSpec(kind, order_by=order_by)
    group_by = r.str_list(obj, "group_by", "gold.group_by")
    if not group_by:
        raise r.fail("gold.group_by", "is missing (an aggregate needs group-by columns)")
    for name in group_by:
        if name not in columns:
            raise r.fail("gold.group_by", f"names unknown column '{name}'")
    raw_metrics = obj.get("metrics")
    if not isinstance(raw_metrics, list) or not raw_metrics:
        raise r.fail("gold.metrics", "must be a non-empty list")
    metrics = []
    for i, m in enumerate(raw_metrics):
        path = f"gold.metrics[{i}]"
        m = r.mapping(m, path)
        r.unknown(m, path, ("name", "agg", "column"))
        name = r.text(m, "name", f"{path}.name")
        agg = r.text(m, "agg", f"{path}.agg")
        if agg not in AGGREGATIONS:
            raise r.fail(f"{path}.agg", f"'{agg}' is not one of {', '.join(AGGREGATIONS)}")
        column = m.get("column")
        if column is not None and not isinstance(column, str):
            raise r.fail(f"{path}.column", "must be a column name")
        if agg != "count" and column is None:
            raise r.fail(f"{path}.column", f"is missing ('{agg}' needs a column)")
        if column is not None and column not in columns:
            raise r.fail(f"{path}.column", f"names unknown column '{column}'")
        if agg in ("sum", "mean") and columns[column].type not in ("integer", "float"):
            raise r.fail(f"{path}.column", f"'{column}' is not numeric, cannot {agg} it")
        metrics.append(Metric(name, agg, column))
    return GoldSpec(kind, order_by=order_by, group_by=group_by, metrics=tuple(metrics))


def parse_contract(data: Any, source: str) -> Contract:
    """Build a :class:`Contract` from parsed YAML, checking every key."""
    r = _Reader(source)
    data = r.mapping(data, "(top level)")
    r.unknown(data, "", ("dataset", "description", "grain", "file", "csv", "columns",
                         "primary_key", "checks", "gold"))
    dataset = r.text(data, "dataset", "dataset")
    if not DATASET_NAME.match(dataset):
        raise r.fail("dataset", f"'{dataset}' must be letters and digits, starting with a letter")
    file_spec = r.mapping(data.get("file", {}), "file")
    r.unknown(file_spec, "file", ("pattern",))
    default_pattern = rf"^{dataset}_(?P<date>\d{{8}}){PART}\.csv(\.gz)?$"
    pattern_text = r.text(file_spec, "pattern", "file.pattern", default=default_pattern)
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise r.fail("file.pattern", f"is not a valid regular expression ({exc})") from None
    if "date" not in pattern.groupindex:
        raise r.fail("file.pattern", "must capture the date in a group named 'date' (?P<date>\\d{8})")
    csv_spec = r.mapping(data.get("csv", {}), "csv")
    r.unknown(csv_spec, "csv", ("delimiter", "encoding", "header"))
    delimiters = r.str_list(csv_spec, "delimiter", "csv.delimiter", (",",))
    if not delimiters or any(len(d) != 1 for d in delimiters):
        raise r.fail("csv.delimiter", "must be one character or a list of single characters")
    encodings = r.str_list(csv_spec, "encoding", "csv.encoding", ("utf-8",))
    for enc in encodings:
        try:
            "".encode(enc)
        except LookupError:
            raise r.fail("csv.encoding", f"'{enc}' is not a known encoding") from None
    header = csv_spec.get("header", True)
    if header is not True:
        raise r.fail("csv.header", "must be true (files without a header are not supported)")
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        raise r.fail("columns", "must be a non-empty list")
    columns = tuple(_column(r, c, i) for i, c in enumerate(raw_columns))
    by_name: dict[str, Column] = {}
    for c in columns:
        if c.name in by_name:
            raise r.fail(f"columns.{c.name}", "is declared twice")
        by_name[c.name] = c
    key = r.str_list(data, "primary_key", "primary_key")
    for name in key:
        if name not in by_name:
            raise r.fail("primary_key", f"names unknown column '{name}'")
        if not by_name[name].required:
            raise r.fail("primary_key", f"column '{name}' must be required: true")
    checks = _checks(r, data.get("checks", []), by_name)
    if "gold" not in data:
        raise r.fail("gold", "is missing")
    gold = _gold(r, data["gold"], by_name, key)
    return Contract(
        dataset=dataset,
        description=str(data.get("description", "")),
        pattern=pattern,
        dialect=CsvDialect(delimiters, encodings, True),
        columns=columns,
        primary_key=key,
        gold=gold,
        checks=checks,
        source=source,
        grain=str(data.get("grain", "")),
    )


def parse_contract_bytes(data: bytes, source: str) -> Contract:
    """A contract from the bytes of its file: UTF-8 YAML, else a one-line
    :class:`ContractError` naming the file and the line at fault."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _line_and_column(data, exc.start, b"\n")
        raise ContractError(
            f"Contract {source}: not valid UTF-8 at line {line}, column {column} "
            f"(byte 0x{data[exc.start]:02x}: {exc.reason}).",
            hint="Save the contract file as UTF-8 (contracts are UTF-8 YAML) and run again.") from None
    try:
        # PyYAML's Python parser, not libyaml's (CSafeLoader, 25 ms less per cold start): the
        # C one accepts tabs and block-scalar comments the Python one refuses and reads a
        # bare tag as '' instead of None, so a contract would mean what the build decides.
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"Contract {source}: not valid YAML{_yaml_problem(exc, text)}.",
                            hint="Fix the contract file and run again.") from None
    return parse_contract(parsed, source)


def _line_and_column(text: str | bytes, offset: int, newline: str | bytes) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``text``."""
    start = text.rfind(newline, 0, offset) + 1
    return text.count(newline, 0, offset) + 1, offset - start + 1


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """`` at line L, column C (problem; context)`` on one line, from PyYAML's error (whose
    own text spans lines, quotes the source and calls the file "<unicode string>")."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}"
        context = f"; {exc.context}" if exc.context else ""
        if exc.context and exc.context_mark is not None and exc.context_mark.line != mark.line:
            context += f" started at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
        return f"{where} ({exc.problem}{context})"
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = _line_and_column(text, exc.position, "\n")
        return f" at line {line}, column {column} (unacceptable character #x{exc.character:04x})"
    return f" ({' '.join(str(exc).split())})"


def load_contract_file(path: Path) -> Contract:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContractError(f"Contract {path}: cannot be read ({exc.strerror}).",
                            hint="Check the file's path and permissions, then run again.") from None
    return parse_contract_bytes(data, str(path))
