"""End to end: `m7etl run --local` on generated data, checked against the generator's manifest."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.devtools.sample import write_demo_set

DAY = "20250501"


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """A run cleans killed runs' leftovers in the temp folder: here the test's, not /tmp."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


@pytest.fixture
def demo(tmp_path):
    data = tmp_path / "data"
    manifests = write_demo_set(data / "landing", DAY, seed=11)
    return data, {Path(m.path).name: m for m in manifests}


def run(*args: str):
    return CliRunner().invoke(cli, ["run", "--local", "--no-load", *args], catch_exceptions=False)


def outputs(data: Path) -> dict[str, bytes]:
    return {p.relative_to(data).as_posix(): p.read_bytes() for p in sorted(data.rglob("*"))
            if p.is_file() and p.suffix == ".parquet"}


def test_every_row_is_accounted_for_against_the_generator(demo):
    data, manifests = demo
    result = run("--data-dir", str(data))
    assert result.exit_code == 0, result.output
    log = json.loads((data / "logs" / f"pipeline_execution_{DAY}.json").read_text())
    by_name = {f["source_key"].rsplit("/", 1)[-1]: f for f in log["files"]}
    assert set(by_name) == set(manifests)
    for name, m in manifests.items():
        f = by_name[name]
        if m.rows == 0:
            assert f["status"] == "quarantined" and f["reason"]
            assert (data / f["outputs"]["quarantine"]).is_file()
            continue
        assert f["rows_read"] == m.rows
        assert f["rows_read"] == f["rows_valid"] + f["rows_rejected"]
        assert f["rows_rejected"] == len(m.rejected_records())
        assert f["rows_warned"] == m.warned_rows
        assert f["status"] == ("failed_threshold" if f["rejected_pct"] > 5.0 else "ok")
        assert name in result.output
    assert log["totals"]["rows_read"] == sum(m.rows for m in manifests.values())
    assert {g["dataset"]: g["status"] for g in log["gold"]}["Channel"] == "no_input"
    assert "(nothing promoted: Channel_20250501.csv failed_threshold)" in result.output
    assert not list((data / "landing").iterdir())


def test_a_second_run_replays_the_day_with_identical_outputs(demo):
    data, _ = demo
    assert run("--data-dir", str(data)).exit_code == 0
    first = outputs(data)
    again = run("--data-dir", str(data))
    assert again.exit_code == 0 and f"Day {DAY}" in again.output
    assert outputs(data) == first and first
    log = json.loads((data / "logs" / f"pipeline_execution_{DAY}.json").read_text())
    quarantined = sorted(f["source_key"] for f in log["files"] if f["status"] == "quarantined")
    assert quarantined == ["landing/Billing_20250501.csv", "raw/20250501/Viewing_20250501.csv"]
    assert "Billing_20250501.csv: unknown_dataset: The name" in again.output


def test_strict_exits_2_when_a_file_fails(demo):
    data, _ = demo
    assert run("--data-dir", str(data), "--strict").exit_code == 2


@pytest.mark.parametrize("args, message", [
    (["--data-dir", "/nonexistent/m7"], "Data folder /nonexistent/m7 does not exist"),
    (["--date", "2025-05-01"], "--date: '2025-05-01' is not a date in YYYYMMDD form"),
    (["--date", "20250230"], "'20250230' is not a real calendar date"),
    (["--error-threshold", "150"], "--error-threshold 150.0 is not a percentage"),
])
def test_user_errors_give_one_line_and_exit_1(tmp_path, args, message):
    (tmp_path / "landing").mkdir()
    if "--data-dir" not in args:
        args = ["--data-dir", str(tmp_path), *args]
    result = run(*args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_a_bad_contract_names_the_file_and_key(tmp_path):
    (tmp_path / "landing").mkdir()
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "box.yaml").write_text("dataset: Box\ncolumns: [{name: id, type: uuid}]\n"
                                        "gold: {kind: snapshot}\n")
    result = run("--data-dir", str(tmp_path), "--contracts", str(contracts))
    assert result.exit_code == 1
    assert "box.yaml: key 'columns.id.type'" in result.output
    assert "Traceback" not in result.output


def test_an_empty_folder_says_what_to_do(tmp_path):
    result = run("--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "Nothing to process" in result.output and "landing/" in result.output


def test_a_day_with_no_files_says_so_instead_of_empty_tables(tmp_path):
    (tmp_path / "landing").mkdir()
    result = run("--data-dir", str(tmp_path), "--date", "20250502")
    assert result.exit_code == 0
    assert "Day 20250502: no file under raw/20250502/" in result.output and "--date" in result.output
    assert "rej %" not in result.output and "gold rows" not in result.output
    assert json.loads((tmp_path / "logs/pipeline_execution_20250502.json").read_text())["files"] == []


def test_run_requires_local():
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 1 and "Add --local" in result.output


def test_the_local_load_replaces_the_day_and_shares_the_run_id(demo, tmp_path):
    from m7etl.local.warehouse import local_connection

    data, _ = demo
    warehouse = tmp_path / "warehouse"
    args = ["run", "--local", "--data-dir", str(data), "--warehouse-dir", str(warehouse)]
    for _ in range(2):  # the second run reloads the same day: counts must not double
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        log = json.loads((data / "logs" / f"pipeline_execution_{DAY}.json").read_text())
        gold = {g["dataset"]: g["rows_out"] for g in log["gold"] if g["status"] == "ok"}
        loads = {x["dataset"]: x for x in log["load"]}
        assert {d: loads[d]["rows_loaded"] for d in gold} == gold
        assert loads["Channel"]["status"] == "skipped_no_input"
        assert "gold -> warehouse" in result.output
    with local_connection(warehouse) as conn:
        cur = conn.cursor()
        for dataset, rows in gold.items():
            cur.execute(f"SELECT COUNT(*) FROM {dataset.upper()}")
            assert cur.fetchone()[0] == rows
        cur.execute(f"SELECT COUNT(*) FROM LOAD_AUDIT WHERE run_id = '{log['run_id']}'")
        assert cur.fetchone()[0] == len(gold)  # one audit row per table loaded by the last run
