from __future__ import annotations

import textwrap

import pytest

from m7etl.core.contracts import load_contract_file, load_registry, parse_contract
from m7etl.exceptions import ContractError

MINIMAL = {
    "dataset": "Box",
    "columns": [{"name": "box_id", "type": "string", "required": True}],
    "primary_key": ["box_id"],
    "gold": {"kind": "snapshot"},
}


BOX_ID = MINIMAL["columns"][0]


def _with(**changes):
    data = {k: v for k, v in MINIMAL.items()}
    data.update(changes)
    return data


def test_builtin_contracts_cover_the_four_datasets(registry):
    assert {c.dataset for c in registry} >= {"Device", "EPG", "Channel", "Viewing"}


@pytest.mark.parametrize("name, expected", [
    ("Device_20250501.csv", ("Device", "20250501")),
    ("EPG_20250502.csv.gz", ("EPG", "20250502")),
    ("Viewing_20250501.csv", ("Viewing", "20250501")),
    # a delivery split into parts: <Dataset>_YYYYMMDD_<part>.csv[.gz]
    ("Viewing_20250501_01.csv", ("Viewing", "20250501")),
    ("Viewing_20250501_02.csv.gz", ("Viewing", "20250501")),
    ("Device_20250501_3.csv", ("Device", "20250501")),
    ("EPG_20250502_001.csv", ("EPG", "20250502")),
    ("Channel_20250501_10.csv.gz", ("Channel", "20250501")),
    ("Viewing_20250501_.csv", None),
    ("Viewing_20250501_a1.csv", None),
    ("Viewing_20250501_01_02.csv", None),
    ("Device_2025050.csv", None),
    ("device_20250501.csv", None),
    ("Billing_20250501.csv", None),
])
def test_file_names_identify_dataset_and_day(registry, name, expected):
    found = registry.identify(name)
    assert (None if found is None else (found[0].dataset, found[1])) == expected


@pytest.mark.parametrize("data, key", [
    (_with(columns=[{"name": "box_id", "type": "text"}]), "columns.box_id.type"),
    (_with(columns=[{"name": "BoxId", "type": "string"}]), "columns[0].name"),
    (_with(primary_key=["nope"]), "primary_key"),
    (_with(gold={"kind": "cube"}), "gold.kind"),
    (_with(gold={"kind": "aggregate", "group_by": ["box_id"],
                 "metrics": [{"name": "s", "agg": "sum", "column": "box_id"}]}), "gold.metrics[0].column"),
    (_with(file={"pattern": "^Box_[0-9]{8}\\.csv$"}), "file.pattern"),
    (_with(csv={"delimiter": "||"}), "csv.delimiter"),
    (_with(csv={"encoding": "klingon"}), "csv.encoding"),
    (_with(columns=[{"name": "box_id", "type": "string", "required": True, "min": 3}]), "columns.box_id.min"),
    (_with(columns=[{"name": "box_id", "type": "string", "required": True, "colour": "red"}]),
     "columns[0].colour"),
    (_with(checks=[{"name": "c", "column": "box_id", "greater_than": "missing"}]), "checks[0]"),
    ({k: v for k, v in MINIMAL.items() if k != "gold"}, "gold"),
    # Found by fuzzing the built-in contracts (each used to raise a TypeError or pass):
    (_with(gold={"kind": "aggregate", "group_by": ["box_id"],
                 "metrics": [{"name": "n", "agg": "count", "column": {"a": 1}}]}), "gold.metrics[0].column"),
    (_with(columns=[BOX_ID, {"name": "day", "type": "date", "format": True}]), "columns.day.format"),
    (_with(columns=[BOX_ID, {"name": "day", "type": "date", "format": "%d/%m"}]), "columns.day.format"),
    (_with(columns=[BOX_ID, {"name": "day", "type": "date", "format": "%Q"}]), "columns.day.format"),
    (_with(columns=[BOX_ID, {"name": "size", "type": "string", "allowed": ["S", {"M": 1}]}]),
     "columns.size.allowed"),
])
def test_invalid_contract_names_the_key_at_fault(data, key):
    with pytest.raises(ContractError) as err:
        parse_contract(data, "contracts/box.yaml")
    assert "contracts/box.yaml" in str(err.value)
    assert f"key '{key}'" in str(err.value)


@pytest.mark.parametrize("pattern", [r"^(?=B)B\d+$", r"^(B)\1$", r"^B(?!X)"])
def test_a_pattern_python_accepts_but_re2_refuses_is_a_contract_error(pattern):
    """Validation runs patterns in Arrow's RE2: caught at load, not as every file's parse error."""
    data = _with(columns=[{"name": "box_id", "type": "string", "required": True, "pattern": pattern}])
    with pytest.raises(ContractError, match=r"key 'columns.box_id.pattern' is not a regular expression "
                                            r"that RE2.*accepts"):
        parse_contract(data, "contracts/box.yaml")


def test_invalid_yaml_names_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(ContractError, match="broken.yaml: not valid YAML"):
        load_contract_file(bad)


@pytest.mark.parametrize("text, where, problem", [
    # line 4 is indented one space less than the list item it continues
    ("dataset: Box\ncolumns:\n  - name: box_id\n   type: string\n", "line 4, column 4",
     "expected <block end>, but found '<block mapping start>'"),
    ("dataset: Box\n\tcolumns: []\n", "line 2, column 1",
     "found character '\\t' that cannot start any token"),
    ("dataset: Box\ndescription: a\x00b\n", "line 2, column 15", "unacceptable character #x0000"),
    # libyaml (CSafeLoader) accepts a tab after a value; the Python parser, the one used, not
    ("dataset: Box\ndescription:\tcounted\n", "line 2, column 13",
     "found character '\\t' that cannot start any token"),
])
def test_a_yaml_syntax_error_is_one_line_naming_the_file_and_the_line(tmp_path, text, where, problem):
    bad = tmp_path / "broken.yaml"
    bad.write_text(text)
    with pytest.raises(ContractError) as err:
        load_contract_file(bad)
    message = err.value.message
    assert message.startswith(f"Contract {bad}: not valid YAML at {where} (") and message.endswith(").")
    assert problem in message and "\n" not in message and "<unicode string>" not in message
    assert err.value.hint == "Fix the contract file and run again."


def test_a_contract_not_in_utf8_is_one_line_naming_the_file_and_the_line(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"dataset: Box\ndescription: Bo\xeete\n")  # cp1252 'î' at line 2, column 16
    with pytest.raises(ContractError) as err:
        load_contract_file(bad)
    assert err.value.message == (f"Contract {bad}: not valid UTF-8 at line 2, column 16 "
                                 "(byte 0xee: invalid continuation byte).")
    assert "UTF-8" in err.value.hint and "\n" not in str(err.value)


def test_a_registry_folder_with_a_non_utf8_contract_fails_with_a_contract_error(tmp_path):
    (tmp_path / "box.yaml").write_bytes(b"dataset: Box\n# caf\xe9\n")
    with pytest.raises(ContractError, match=r"box.yaml: not valid UTF-8 at line 2, column 6"):
        load_registry(tmp_path)


def test_aggregate_order_by_decides_the_latest_record_per_key():
    gold = {"kind": "aggregate", "group_by": ["box_id"], "order_by": ["seen"],
            "metrics": [{"name": "n", "agg": "count"}]}
    columns = [BOX_ID, {"name": "seen", "type": "timestamp"}]
    assert parse_contract(_with(columns=columns, gold=gold), "c.yaml").gold.order_by == ("seen",)
    with pytest.raises(ContractError, match=r"key 'gold.order_by' .*needs a primary_key"):
        parse_contract(_with(columns=columns, gold=gold, primary_key=[]), "c.yaml")
    with pytest.raises(ContractError, match=r"key 'gold.order_by' names unknown column 'nope'"):
        parse_contract(_with(columns=columns, gold={**gold, "order_by": ["nope"]}), "c.yaml")


def test_adding_a_dataset_is_adding_a_file(tmp_path):
    (tmp_path / "box.yaml").write_text(textwrap.dedent("""
        dataset: Box
        columns:
          - {name: box_id, type: string, required: true}
          - {name: weight_g, type: integer, min: 0}
        primary_key: [box_id]
        gold: {kind: snapshot}
    """))
    registry = load_registry(tmp_path)
    contract, day = registry.identify("Box_20250501.csv")
    assert (contract.dataset, day) == ("Box", "20250501")
    assert contract.column("weight_g").rules.min == 0


def test_two_contracts_for_one_dataset_are_refused(tmp_path):
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(
            "dataset: Box\ncolumns: [{name: box_id, type: string, required: true}]\n"
            "primary_key: [box_id]\ngold: {kind: snapshot}\n")
    with pytest.raises(ContractError, match="already defined"):
        load_registry(tmp_path)
