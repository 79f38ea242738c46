"""`m7etl run --local` with its load step: fakesnow on disk, the COPY from a file:// stage.

fakesnow does not check roles, grants, Parquet logical types (DuckDB always honours them),
``s3://`` stage URLs or storage integrations; the local run exercises none of them.
"""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.devtools.sample import SampleOptions, write_sample
from m7etl.local.warehouse import stage_url
from warehouse.support import DAY1

LOAD_KEYS = {"dataset", "day", "status", "table", "rows_in_file", "rows_loaded", "source_key",
             "checksum", "path", "message"}


def table_rows(output: str) -> dict[str, tuple[str, ...]]:
    """The rows of the load summary: table -> (status, file rows, loaded, table rows)."""
    part = output.split("gold -> warehouse", 1)[1]
    rows = {}
    for line in part.splitlines():
        m = re.match(r"^(CHANNEL|DEVICE|EPG|VIEWING)\s+(\S+)\s*(.*)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), *m.group(3).split())
    return rows


def run(data, warehouse, *extra):
    result = CliRunner().invoke(cli, ["run", "--local", "--data-dir", str(data),
                                      "--warehouse-dir", str(warehouse), *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_run_local_loads_and_reloads(tmp_path):
    data, warehouse = tmp_path / "data", tmp_path / "wh" / "db"
    write_sample("Device", DAY1, data / "landing", SampleOptions(rows=50))
    write_sample("EPG", DAY1, data / "landing", SampleOptions(rows=30))
    first = run(data, warehouse)
    assert f"Day {DAY1}: gold -> warehouse (fakesnow in {warehouse}, COPY from @M7_GOLD_STAGE" \
        in first
    assert table_rows(first) == {
        "CHANNEL": ("skipped_no_input", "0"),
        "DEVICE": ("loaded", "50", "50", "50"),
        "EPG": ("loaded", "30", "30", "30"),
        "VIEWING": ("skipped_no_input", "0"),
    }
    assert "CHANNEL: No input for Channel on 20250501" in first
    assert (warehouse / "M7_ETL.db").is_file()  # the warehouse persists between runs
    log = json.loads((data / "logs" / f"pipeline_execution_{DAY1}.json").read_text())
    assert [x["dataset"] for x in log["load"]] == ["Channel", "Device", "EPG", "Viewing"]
    assert all(set(x) >= LOAD_KEYS for x in log["load"])
    assert {x["path"] for x in log["load"] if x["status"] == "loaded"} == {"copy"}

    again = run(data, warehouse)  # replays the day from raw/: same counts, no duplicates
    assert table_rows(again) == table_rows(first)


def test_no_load_skips_the_warehouse(tmp_path):
    data, warehouse = tmp_path / "data", tmp_path / "wh"
    write_sample("Device", DAY1, data / "landing", SampleOptions(rows=10))
    output = run(data, warehouse, "--no-load")
    assert "gold -> warehouse" not in output
    assert not warehouse.exists()
    log = json.loads((data / "logs" / f"pipeline_execution_{DAY1}.json").read_text())
    assert log.get("load") is None


def test_strict_fails_on_a_failed_load(tmp_path):
    data, warehouse = tmp_path / "data", tmp_path / "wh"
    write_sample("EPG", DAY1, data / "landing", SampleOptions(rows=10))
    run(data, warehouse)
    # A table that no longer matches the contract makes the next load fail.
    import fakesnow
    import snowflake.connector

    with fakesnow.patch(db_path=str(warehouse)):
        conn = snowflake.connector.connect(database="M7_ETL", schema="GOLD")
        conn.cursor().execute("DROP TABLE EPG")
        conn.cursor().execute("CREATE TABLE EPG (business_date DATE)")
        conn.close()
    result = CliRunner().invoke(cli, ["run", "--local", "--data-dir", str(data),
                                      "--warehouse-dir", str(warehouse), "--strict"])
    assert result.exit_code == 2
    assert "EPG: Table EPG lacks column(s) programme_id" in result.output


def test_stage_url_points_at_the_gold_folder(tmp_path):
    assert stage_url(tmp_path / "data") == f"file://{(tmp_path / 'data').resolve()}/gold/"
