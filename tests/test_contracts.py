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
