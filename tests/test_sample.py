"""The sample generator, checked against the contracts by an independent oracle.

``hard_problems`` below re-reads every contract rule with plain Python (csv, re, strptime)
and shares no code with the generator or the pipeline's validator.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from datetime import datetime
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from m7etl.cli.errors import ErrorBoundaryGroup
from m7etl.cli.sample import command
from m7etl.core.contracts import Column, Contract, Rules, load_registry, parse_contract
from m7etl.devtools.sample import (
    FAULT_KINDS,
    SampleOptions,
    applicable_faults,
    write_demo_set,
    write_sample,
)
from m7etl.exceptions import UsageError

DAY = "20250501"
REGISTRY = load_registry()
CONTRACTS = sorted(REGISTRY, key=lambda c: c.dataset)
IDS = [c.dataset for c in CONTRACTS]
TRUE = {"true", "t", "yes", "y", "1", "oui", "vrai"}
FALSE = {"false", "f", "no", "n", "0", "non", "faux"}
OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
       "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}

GENERIC = {
    "dataset": "Widget",
    "file": {"pattern": r"^Widget_(?P<date>\d{8})\.csv(\.gz)?$"},
    "columns": [
        {"name": "shop", "type": "string", "required": True, "pattern": r"^[A-Z]{2}-\d{3}$"},
        {"name": "sku", "type": "string", "required": True,
         "pattern": r"^(ab|cd)_[0-9a-f]{4,6}(-x)?$"},
        {"name": "label", "type": "string", "max_length": 12, "warn": {"max_length": 8}},
        {"name": "price", "type": "float", "required": True, "min": 0.5, "max": 99.99,
         "warn": {"max": 80}},
        {"name": "qty", "type": "integer", "min": -5, "max": 5},
        {"name": "grade", "type": "integer", "allowed": [1, 2, 3]},
        {"name": "flag", "type": "boolean"},
        {"name": "made_on", "type": "date", "format": "%d/%m/%Y", "required": True,
         "min": "01/01/2020"},
        {"name": "sold_on", "type": "date", "format": "%d/%m/%Y", "required": True},
        {"name": "seen_at", "type": "timestamp", "format": "%Y%m%dT%H%M%S",
         "max": "20300101T000000"},
    ],
    "primary_key": ["shop", "sku"],
    "checks": [{"name": "sold_after_made", "column": "made_on", "less_or_equal": "sold_on"}],
    "gold": {"kind": "snapshot", "order_by": ["seen_at"]},
}


@pytest.fixture(scope="module")
def widget() -> Contract:
    return parse_contract(GENERIC, "test:widget")


# --------------------------------------------------------------------------- oracle


def parse(column: Column, text: str):
    """The typed value, or raise ValueError."""
    t = column.type
    if t == "integer":
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(text)
        return int(text)
    if t == "float":
        if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
            raise ValueError(text)
        return float(text)
    if t == "boolean":
        if text.lower() not in TRUE | FALSE:
            raise ValueError(text)
        return text.lower() in TRUE
    if t in ("date", "timestamp"):
        return datetime.strptime(text, column.format)
    return text


def bound(column: Column, value):
    return datetime.strptime(str(value), column.format) if column.type in ("date", "timestamp") \
        else value


def rule_problems(column: Column, rules: Rules, text: str, value) -> list[str]:
    out = []
    if rules.min is not None and value < bound(column, rules.min):
        out.append("min")
    if rules.max is not None and value > bound(column, rules.max):
        out.append("max")
    if rules.allowed is not None and text not in rules.allowed:
        out.append("allowed")
    if rules.pattern is not None and not re.search(rules.pattern, text):
        out.append("pattern")
    if rules.max_length is not None and len(text) > rules.max_length:
        out.append("max_length")
    return out


def row_problems(contract: Contract, row: list[str], soft: bool = False) -> list[tuple]:
    """(column, rule) pairs the row breaks: hard rules, or the warn: rules if ``soft``."""
    if len(row) != len(contract.columns):
        return [] if soft else [(None, "column_count")]
    out, typed = [], {}
    for column, text in zip(contract.columns, row, strict=True):
        if text == "":
            if column.required and not soft:
                out.append((column.name, "required"))
            continue
        try:
            typed[column.name] = value = parse(column, text)
        except ValueError:
            if not soft:
                out.append((column.name, "type"))
            continue
        rules = column.warn if soft else column.rules
        out += [(column.name, r) for r in rule_problems(column, rules, text, value)]
    for check in contract.checks:
        if (check.severity == "warning") != soft:
            continue
        if check.column in typed and check.other in typed and not OPS[check.op](
                typed[check.column], typed[check.other]):
            out.append((check.column, check.name))
    return out


def read_rows(path: str | Path, encoding: str = "utf-8", delimiter: str = ",") -> list[list[str]]:
    data = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        data = gzip.decompress(data)
    text = data.decode(encoding)
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def oracle(contract: Contract, rows: list[list[str]]):
    """Rejected records, warned records and duplicate-key records, by record number."""
    rejected, warned, dups, seen = {}, set(), set(), {}
    names = contract.column_names
    for number, row in enumerate(rows, start=1):
        problems = row_problems(contract, row)
        if problems:
            rejected[number] = problems
            continue
        if row_problems(contract, row, soft=True):
            warned.add(number)
        if contract.primary_key:
            key = tuple(row[names.index(k)] for k in contract.primary_key)
            if key in seen:
                dups.add(number)
            seen.setdefault(key, number)
    return rejected, warned, dups


# --------------------------------------------------------------------------- tests


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    contract = REGISTRY["EPG"]
    opts = SampleOptions(rows=3000, seed=5, faults={"wrong_type": 0.02, "duplicate_key": 0.02},
                         warn_rate=0.05, multiline_rate=0.02, gzip=True)
    a = write_sample(contract, DAY, tmp_path / "a", opts)
    b = write_sample(contract, DAY, tmp_path / "b", opts)
    c = write_sample(contract, DAY, tmp_path / "c", SampleOptions(**{**opts.__dict__, "seed": 6}))
    assert Path(a.path).read_bytes() == Path(b.path).read_bytes()
    assert a.faults == b.faults
    assert Path(a.path).read_bytes() != Path(c.path).read_bytes()


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_rows_target_and_name(tmp_path, contract):
    m = write_sample(contract, DAY, tmp_path, SampleOptions(rows=777, seed=1))
    rows = read_rows(m.path)
    assert rows[0] == contract.column_names
    assert len(rows) - 1 == m.rows == 777
    assert Path(m.path).name == f"{contract.dataset}_{DAY}.csv"
    assert contract.match(Path(m.path).name) == DAY
    assert m.bytes == Path(m.path).stat().st_size


def test_size_target(tmp_path):
    m = write_sample("Viewing", DAY, tmp_path, SampleOptions(rows=None, size_mb=2.5, seed=2))
    assert abs(m.bytes - 2_500_000) < 2_500_000 * 0.01
    assert len(read_rows(m.path)) - 1 == m.rows


def test_dialects_read_back_to_the_same_values(tmp_path):
    base = dict(rows=1500, seed=9, faults={"bad_date": 0.02, "wrong_type": 0.02},
                multiline_rate=0.05)
    variants = [
        dict(), dict(delimiter=";", encoding="cp1252", line_ending="\r\n"),
        dict(encoding="utf-8-sig", line_ending="\r\n"), dict(gzip=True, delimiter=";"),
    ]
    results = []
    for i, extra in enumerate(variants):
        m = write_sample("EPG", DAY, tmp_path / str(i), SampleOptions(**base, **extra))
        raw = Path(m.path).read_bytes()
        if extra.get("gzip"):
            raw = gzip.decompress(raw)
        assert raw.startswith(b"\xef\xbb\xbf") == (extra.get("encoding") == "utf-8-sig")
        ending = extra.get("line_ending", "\n").encode()
        assert raw.split(b"\n", 1)[0].endswith(b"\r") == (ending == b"\r\n")
        encoding = extra.get("encoding", "utf-8")
        results.append(read_rows(m.path, encoding, extra.get("delimiter", ",")))
        assert m.multiline_rows > 0
    assert all(r == results[0] for r in results[1:])
    titles = [row[2] for row in results[0][1:]]
    assert any("\n" in t for t in titles)
    assert any("," in t for t in titles) and any('"' in t for t in titles)
    assert any(ch in "".join(titles) for ch in "éèàç")


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_clean_rows_pass_every_hard_rule(tmp_path, contract):
    m = write_sample(contract, DAY, tmp_path, SampleOptions(rows=3000, seed=4, multiline_rate=0.05))
    rejected, warned, dups = oracle(contract, read_rows(m.path)[1:])
    assert rejected == {} and dups == set() and warned == set()
    assert m.faults == [] and m.warned_rows == 0


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_warn_zone_rows_are_the_manifest_ones(tmp_path, contract):
    m = write_sample(contract, DAY, tmp_path, SampleOptions(rows=2000, seed=4, warn_rate=0.1))
    rejected, warned, _ = oracle(contract, read_rows(m.path)[1:])
    assert rejected == {}
    has_warn = any(not c.warn.is_empty() for c in contract.columns)
    assert m.warned_rows == (200 if has_warn else 0)
    assert warned == {w.record_number for w in m.warned}


def _check_faults(contract: Contract, path: str, manifest, rows: int, rate: float):
    data = read_rows(path)[1:]
    names = contract.column_names
    rejected, _, dups = oracle(contract, data)
    kinds = applicable_faults(contract)
    counts = manifest.counts()
    for kind in kinds:
        assert abs(counts[kind] - round(rate * rows)) <= 1, kind
    # the oracle rejects exactly the records the manifest says, for the named reason
    assert set(rejected) == manifest.rejected_records()
    assert dups == manifest.duplicate_records()
    expected_rule = {"wrong_type": {"type"}, "missing_required": {"required"},
                     "out_of_range": {"min", "max", "allowed"}, "bad_date": {"type"},
                     "wrong_column_count": {"column_count"}}
    for f in manifest.faults:
        if f.kind == "duplicate_key":
            row = data[f.record_number - 1]
            key = [row[names.index(k)] for k in contract.primary_key]
            earlier = [r for r in data[: f.record_number - 1]
                       if len(r) == len(names)
                       and [r[names.index(k)] for k in contract.primary_key] == key]
            assert earlier and earlier[0] != row
            continue
        problems = rejected[f.record_number]
        assert len({c for c, _ in problems}) == 1 or f.kind == "out_of_range", problems
        assert any(c == f.column and r in expected_rule[f.kind] for c, r in problems), (f, problems)
        if f.kind == "bad_date":
            assert contract.column(f.column).type in ("date", "timestamp")


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_each_fault_kind_at_its_rate_and_breaking_its_rule(tmp_path, contract):
    rate = 0.03
    faults = dict.fromkeys(applicable_faults(contract), rate)
    opts = SampleOptions(rows=2000, seed=11, faults=faults, warn_rate=0.02)
    m = write_sample(contract, DAY, tmp_path, opts)
    assert m.rows == 2000
    _check_faults(contract, m.path, m, 2000, rate)


def test_single_fault_kind_only(tmp_path):
    for kind in FAULT_KINDS:
        m = write_sample("Device", DAY, tmp_path / kind,
                         SampleOptions(rows=500, seed=3, faults={kind: 0.1}))
        assert m.counts() == {k: (50 if k == kind else 0) for k in FAULT_KINDS}


def test_faults_across_chunks_and_with_size_target(tmp_path, monkeypatch):
    import m7etl.devtools.sample.generator as generator
    monkeypatch.setattr(generator, "CHUNK_ROWS", 700)
    contract = REGISTRY["Viewing"]
    opts = SampleOptions(rows=None, size_mb=0.4, seed=8,
                         faults=dict.fromkeys(applicable_faults(contract), 0.02))
    m = write_sample(contract, DAY, tmp_path, opts)
    assert m.rows > 2000
    _check_faults(contract, m.path, m, m.rows, 0.02)


def test_generic_contract(tmp_path, widget):
    assert applicable_faults(widget) == FAULT_KINDS
    opts = SampleOptions(rows=3000, seed=2, faults=dict.fromkeys(FAULT_KINDS, 0.02),
                         warn_rate=0.05, delimiter=";")
    m = write_sample(widget, DAY, tmp_path, opts)
    rows = read_rows(m.path, delimiter=";")
    rejected, warned, dups = oracle(widget, rows[1:])
    assert set(rejected) == m.rejected_records() and dups == m.duplicate_records()
    assert warned == {w.record_number for w in m.warned} and m.warned_rows == 150
    clean = [r for i, r in enumerate(rows[1:], 1) if i not in rejected]
    assert any(r[1].endswith("-x") for r in clean) and any(r[1].startswith("cd_") for r in clean)


def test_generic_contract_clean(tmp_path, widget):
    m = write_sample(widget, DAY, tmp_path, SampleOptions(rows=2000, seed=3))
    assert oracle(widget, read_rows(m.path)[1:]) == ({}, set(), set())


def test_gzip_output_decompresses(tmp_path):
    m = write_sample("Device", DAY, tmp_path, SampleOptions(rows=400, gzip=True))
    assert m.path.endswith("Device_20250501.csv.gz")
    data = gzip.decompress(Path(m.path).read_bytes())
    assert data.startswith(b"device_id,") and len(data) == m.text_bytes > m.bytes
    assert len(read_rows(m.path)) == 401


def test_invalid_options_raise_usage_errors(tmp_path, widget):
    with pytest.raises(UsageError, match="fault kind 'typo' is unknown"):
        write_sample("EPG", DAY, tmp_path, SampleOptions(faults={"typo": 0.1}))
    with pytest.raises(UsageError, match=r"outside \[0, 1\]"):
        write_sample("EPG", DAY, tmp_path, SampleOptions(faults={"bad_date": 1.5}))
    with pytest.raises(UsageError, match="add up to more than 1"):
        write_sample("EPG", DAY, tmp_path, SampleOptions(faults=dict.fromkeys(FAULT_KINDS, 0.2)))
    with pytest.raises(UsageError, match="exactly one of rows or size_mb"):
        write_sample("EPG", DAY, tmp_path, SampleOptions(rows=10, size_mb=1))
    with pytest.raises(UsageError, match="not a real calendar date"):
        write_sample("EPG", "20250230", tmp_path)
    with pytest.raises(UsageError, match="Dataset 'Nope' has no contract"):
        write_sample("Nope", DAY, tmp_path)
    with pytest.raises(UsageError, match="more distinct keys"):
        write_sample("Channel", DAY, tmp_path, SampleOptions(rows=10_000))
    odd = parse_contract({**GENERIC, "columns": [
        {"name": "code", "type": "string", "required": True, "pattern": r"^\bcode\b$"}],
        "primary_key": ["code"], "checks": [], "gold": {"kind": "snapshot"}}, "test:odd")
    with pytest.raises(UsageError, match="cannot produce values for the pattern"):
        write_sample(odd, DAY, tmp_path)
    no_dates = parse_contract({**GENERIC, "columns": GENERIC["columns"][:3], "checks": [],
                               "gold": {"kind": "snapshot"}}, "test:nodates")
    with pytest.raises(UsageError, match="'bad_date' cannot be injected"):
        write_sample(no_dates, DAY, tmp_path, SampleOptions(faults={"bad_date": 0.1}))
    assert not list(tmp_path.iterdir())


def test_demo_set(tmp_path):
    manifests = write_demo_set(tmp_path, DAY)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(m.name for m in manifests)
    assert len(names) == len(REGISTRY) + 2
    by_name = {m.name: m for m in manifests}
    assert by_name[f"Billing_{DAY}.csv"].rows == 0
    assert REGISTRY.identify(f"Billing_{DAY}.csv") is None
    garbage = [m for m in manifests if m.rows == 0 and m.dataset != "Billing"]
    assert len(garbage) == 1 and REGISTRY.identify(garbage[0].name)[1] == DAY
    raw = Path(garbage[0].path).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert not raw.startswith(b"\x1f\x8b")
    rates = {m.dataset: len(m.faults) / m.rows for m in manifests if m.rows}
    assert sorted(rates) == IDS
    assert sum(r > 0.05 for r in rates.values()) == 1
    assert all(0.01 <= r <= 0.03 or r >= 0.15 for r in rates.values())
    assert any(n.endswith(".csv.gz") for n in by_name if by_name[n].rows)
    assert any(m.rows and b";" in _first_line(m.path) for m in manifests)
    assert any(m.rows and _first_line(m.path).startswith(b"\xef\xbb\xbf") for m in manifests)
    # the demo's own faults match the oracle too
    for m in manifests:
        if m.rows:
            contract = REGISTRY[m.dataset]
            raw = Path(m.path).read_bytes()
            raw = gzip.decompress(raw) if m.path.endswith(".gz") else raw
            encoding = "cp1252" if b";" in _first_line(m.path) else "utf-8-sig"
            rows = list(csv.reader(io.StringIO(raw.decode(encoding), newline=""),
                                   delimiter=";" if b";" in _first_line(m.path) else ","))
            rejected, _, dups = oracle(contract, rows[1:])
            assert set(rejected) == m.rejected_records() and dups == m.duplicate_records()


def _first_line(path: str) -> bytes:
    raw = Path(path).read_bytes()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.split(b"\n", 1)[0]


# --------------------------------------------------------------------------- CLI


@pytest.fixture()
def cli() -> click.Group:
    group = ErrorBoundaryGroup("m7etl")
    group.add_command(command)
    return group


def test_cli_writes_files(tmp_path, cli):
    out = tmp_path / "landing"
    result = CliRunner().invoke(cli, ["sample", "--out", str(out), "--day", DAY, "--dataset",
                                      "device", "--dataset", "EPG", "--rows", "300",
                                      "--fault", "wrong_type=0.1", "--crlf", "--gzip"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [f"Device_{DAY}.csv.gz", f"EPG_{DAY}.csv.gz"]
    assert f"Device_{DAY}.csv.gz  300 rows" in result.output
    assert "wrong_type=30" in result.output


def test_cli_fault_rate_applies_to_every_supported_kind(tmp_path, cli):
    result = CliRunner().invoke(cli, ["sample", "--out", str(tmp_path), "--day", DAY,
                                      "--dataset", "Viewing", "--fault-rate", "0.01"])
    assert result.exit_code == 0, result.output
    for kind in FAULT_KINDS:
        assert f"{kind}=10" in result.output


def test_cli_demo(tmp_path, cli):
    result = CliRunner().invoke(cli, ["sample", "--demo", "--out", str(tmp_path), "--day", DAY])
    assert result.exit_code == 0, result.output
    assert f"Billing_{DAY}.csv" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "Billing"], "Dataset 'Billing' has no contract (known: Channel, Device, EPG"),
    (["--day", "2025-05-01"], "--day: '2025-05-01' is not a date in YYYYMMDD form."),
    (["--day", "20250231"], "'20250231' is not a real calendar date"),
    (["--fault", "bogus=0.1"], "Fault kind 'bogus' is unknown. Use one of wrong_type,"),
    (["--fault", "bad_date=2"], "Fault rate bad_date: 2 is outside [0, 1]."),
    (["--fault", "bad_date"], "Fault 'bad_date' is not KIND=RATE."),
    (["--fault-rate", "-0.1"], "Fault rate --fault-rate: -0.1 is outside [0, 1]."),
    (["--rows", "5", "--size-mb", "1"], "--rows and --size-mb were both given."),
])
def test_cli_errors(tmp_path, cli, args, message):
    day = [] if "--day" in args else ["--day", DAY]
    result = CliRunner().invoke(cli, ["sample", "--out", str(tmp_path), *day, *args])
    assert result.exit_code == 1
    assert message in result.output
    assert not list(tmp_path.iterdir())


def test_contract_yaml_of_generic_test_is_valid(tmp_path):
    # the generic contract above is also loadable from a file, like a user's own dataset
    (tmp_path / "widget.yaml").write_text(yaml.safe_dump(GENERIC), encoding="utf-8")
    registry = load_registry(tmp_path)
    m = write_sample(registry["Widget"], DAY, tmp_path / "out", SampleOptions(rows=50))
    assert Path(m.path).name == f"Widget_{DAY}.csv"
