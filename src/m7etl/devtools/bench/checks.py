"""Nothing lost, checked after the timed runs: counts against the generator's manifest, the
output files against the reports, and m7etl's gold against DuckDB's, row for row.

Each check is (name, passed, what was compared); the runner prints the failed ones and
exits non-zero, so a faster run that loses rows never reads as a win.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from m7etl.core.contracts import Contract
from m7etl.core.gold import gold_schema
from m7etl.devtools.bench.cases import Generated
from m7etl.devtools.bench.contenders import DUCKDB_DIR, M7ETL_DIR
from m7etl.devtools.bench.gold_sql import quote

Check = tuple[str, bool, str]


def _equal(name: str, got: int, want: int, what: str) -> Check:
    return name, got == want, f"{what}: {got:,} (expected {want:,})"


def silver_checks(generated: Generated, info: dict, out: Path) -> list[Check]:
    """rows in = valid + rejected, and both as the generator and the output files say."""
    root = out / M7ETL_DIR
    checks = [
        _equal("rows read", info["rows"], generated.rows, "rows read vs rows generated"),
        _equal("conservation", info["valid"] + info["rejected"], info["rows"], "valid + rejected vs read"),
        _equal("rejects", info["rejected"], generated.rejected, "rows rejected vs faulty rows generated"),
    ]
    con = duckdb.connect()
    silver = info["outputs"].get("silver")
    if silver:
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{root / silver}')").fetchone()[0]
        checks.append(_equal("silver file", rows, info["valid"], "rows in the silver file vs valid"))
    rejects = info["outputs"].get("rejects")
    if rejects:
        rows = con.execute(f"SELECT count(DISTINCT line_number) FROM read_parquet('{root / rejects}')"
                           ).fetchone()[0]
        checks.append(_equal("rejects file", rows, info["rejected"], "lines in the rejects file vs rejected"))
    return checks


def _normalised(contract: Contract, path: Path) -> str:
    """The gold file's rows with doubles rounded (a mean's last bits depend on the summing order)."""
    columns = []
    for field in gold_schema(contract):
        name = quote(field.name)
        columns.append(f"round({name}, 6) AS {name}" if str(field.type) == "double" else name)
    return f"SELECT {', '.join(columns)} FROM read_parquet('{path}')"


def gold_checks(contract: Contract, silver_info: dict | None, gold: dict | None,
                duck: dict | None, out: Path) -> list[Check]:
    """Gold read every valid silver row, and holds exactly DuckDB's rows."""
    checks = []
    if gold and silver_info:
        checks.append(_equal("gold input", gold["rows_in"], silver_info["valid"],
                             "silver rows gold read vs valid"))
    if gold and duck:
        ours, theirs = out / M7ETL_DIR / gold["gold_key"], out / DUCKDB_DIR / "gold.parquet"
        a, b = _normalised(contract, ours), _normalised(contract, theirs)
        only_ours, only_theirs = duckdb.connect().execute(
            f"SELECT (SELECT count(*) FROM ({a} EXCEPT ALL {b})), "
            f"(SELECT count(*) FROM ({b} EXCEPT ALL {a}))").fetchone()
        checks.append(_equal("gold rows", gold["rows"], duck["rows"], "m7etl gold rows vs DuckDB's"))
        checks.append(("gold = DuckDB", only_ours == 0 and only_theirs == 0,
                       f"rows only in m7etl's gold: {only_ours:,}, only in DuckDB's: {only_theirs:,}"))
    return checks
