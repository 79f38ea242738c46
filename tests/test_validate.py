from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from m7etl.core.contracts import parse_contract
from m7etl.core.validate import silver_schema, silver_write_schema, validate_batch

CONTRACT = parse_contract({
    "dataset": "Box",
    "columns": [
        {"name": "box_id", "type": "string", "required": True, "pattern": "^B[0-9]{3}$"},
        {"name": "weight_g", "type": "integer", "min": 1, "max": 5000, "warn": {"max": 1000}},
        {"name": "ratio", "type": "float", "min": 0, "max": 1},
        {"name": "active", "type": "boolean"},
        {"name": "colour", "type": "string", "allowed": ["red", "blue"]},
        {"name": "label", "type": "string", "max_length": 5},
        {"name": "made_on", "type": "date", "min": "2020-01-01"},
        {"name": "start_at", "type": "timestamp"},
        {"name": "end_at", "type": "timestamp"},
        {"name": "eu_day", "type": "date", "format": "%d/%m/%Y"},
    ],
    "primary_key": ["box_id"],
    "checks": [{"name": "end_after_start", "column": "end_at", "greater_than": "start_at"}],
    "gold": {"kind": "snapshot"},
}, "<box>")

GOOD = {"box_id": "B001", "weight_g": "250", "ratio": "0.5", "active": "yes", "colour": "red",
        "label": "abc", "made_on": "2021-03-04", "start_at": "2025-05-01 10:00:00",
        "end_at": "2025-05-01 11:00:00", "eu_day": "31/12/2024"}


def run(rows: list[dict], **kwargs):
    names = CONTRACT.column_names
    batch = pa.RecordBatch.from_pydict({n: [r.get(n, "") for r in rows] for n in names},
                                       schema=pa.schema([(n, pa.string()) for n in names]))
    lines = np.arange(2, 2 + len(rows))
    return validate_batch(CONTRACT, batch, lines, "raw/20250501/Box_20250501.csv", **kwargs)


def test_a_good_row_is_typed_as_the_contract_says():
    out = run([GOOD])
    assert out.rows_rejected == 0 and out.valid.schema == silver_write_schema(CONTRACT)
    # the coded columns are dictionaries of the same strings: cast, the rows are the same
    assert out.valid.cast(silver_schema(CONTRACT)).to_pylist() == out.valid.to_pylist()
    row = out.valid.to_pylist()[0]
    assert row["weight_g"] == 250 and row["ratio"] == 0.5 and row["active"] is True
    assert str(row["made_on"]) == "2021-03-04" and str(row["eu_day"]) == "2024-12-31"
    assert row["_line_number"] == 2 and row["_warnings"] is None
    assert row["_source_key"] == "raw/20250501/Box_20250501.csv"


@pytest.mark.parametrize("column, value, rule", [
    ("box_id", "", "required"),
    ("box_id", "X001", "pattern"),
    ("weight_g", "12kg", "type"),
    ("weight_g", "0", "min"),
    ("weight_g", "9999", "max"),
    ("weight_g", "99999999999999999999", "type"),
    ("ratio", "1.5", "max"),
    ("ratio", "one", "type"),
    ("active", "maybe", "type"),
    ("colour", "green", "allowed"),
    ("label", "abcdef", "max_length"),
    ("made_on", "2025-02-30", "type"),
    ("made_on", "2025-2-3", "type"),
    ("made_on", "31/12/2025", "type"),
    ("made_on", "2019-12-31", "min"),
    ("start_at", "2025-05-01 25:00:00", "type"),
    ("start_at", "2025-05-01", "type"),
    ("eu_day", "31/02/2024", "type"),
    # Unicode digits pass str.isdigit but are no number: one rejected row, not a failed batch.
    ("weight_g", "\u0663", "type"),
    ("weight_g", "1\uff12", "type"),
    ("ratio", "\u0660.5", "type"),
    ("made_on", "2021-03-0\u0664", "type"),
    ("start_at", "2025-05-01 1\u0660:00:00", "type"),
    # Loose or impossible times: strptime would take them (unpadded, or rolled to the next minute).
    ("start_at", "2025-05-01  2:00:00", "type"),
    ("start_at", "2025-05-01 12:00:60", "type"),
    ("start_at", "2025-05-01T12:00:00", "type"),
    ("made_on", "0000-01-01", "type"),
    ("end_at", "2025-05-01 09:00:00", "end_after_start"),
])
def test_each_broken_rule_rejects_the_row_with_its_reason(column, value, rule):
    out = run([GOOD, {**GOOD, column: value}, GOOD])
    assert out.rows_rejected == 1 and out.valid.num_rows == 2
    rejects = out.rejects.to_pylist()
    assert [(r["column"], r["rule"], r["raw_value"], r["line_number"]) for r in rejects] == [
        (column, rule, value, 3)]
    assert json.loads(rejects[0]["record"])[column] == value
    assert rejects[0]["message"]


def test_a_row_breaking_two_rules_is_one_rejected_row_with_two_entries():
    out = run([{**GOOD, "weight_g": "abc", "colour": "green"}])
    assert out.rows_rejected == 1
    assert sorted(r["rule"] for r in out.rejects.to_pylist()) == ["allowed", "type"]


def test_soft_rules_keep_the_row_and_flag_it():
    out = run([{**GOOD, "weight_g": "2000"}, GOOD])
    assert out.rows_rejected == 0 and out.rows_warned == 1
    assert out.valid.column("_warnings").to_pylist() == ["weight_g:warn_max", None]


def test_optional_empty_values_become_null_not_errors():
    out = run([{**GOOD, "weight_g": "", "ratio": "", "active": "", "colour": "", "made_on": ""}])
    assert out.rows_rejected == 0
    row = out.valid.to_pylist()[0]
    assert row["weight_g"] is None and row["colour"] is None and row["made_on"] is None


def test_padded_numbers_are_trimmed_and_decimal_commas_accepted_for_semicolon_files():
    out = run([{**GOOD, "weight_g": " 42 ", "ratio": "0,25"}], decimal_comma=True)
    assert out.rows_rejected == 0
    assert out.valid.column("weight_g").to_pylist() == [42]
    assert out.valid.column("ratio").to_pylist() == [0.25]


def test_explicit_plus_sign_is_a_number():
    out = run([{**GOOD, "weight_g": "+42"}, {**GOOD, "weight_g": "+0"}, {**GOOD, "ratio": "+0.25"}])
    assert out.valid.column("weight_g").to_pylist() == [42, 250]
    assert [(r["rule"], r["raw_value"]) for r in out.rejects.to_pylist()] == [("min", "+0")]
    assert out.valid.column("ratio").to_pylist() == [0.5, 0.25]


def test_booleans_accept_common_spellings():
    values = ["true", "FALSE", "1", "0", "oui", "non", "Y", "n"]
    out = run([{**GOOD, "active": v} for v in values])
    assert out.valid.column("active").to_pylist() == [True, False, True, False, True, False, True, False]
