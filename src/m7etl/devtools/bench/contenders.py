"""What each benchmark child process runs, timed from before its own imports.

Run as ``python -m m7etl.devtools.bench.contenders NAME FILE OUT``: it prints one JSON line
with the contender's counts, wall seconds, CPU seconds (user + system, all threads; in all,
and after its imports and set-up: what a warm process pays per file) and peak RSS. Only
the standard library is imported at the top, so each contender pays for the libraries it
uses (pyarrow, DuckDB) and nothing else.

- ``silver``: m7etl raw->silver, full contract validation, silver + rejects Parquet, report;
- ``duckdb-copy``: DuckDB's plain CSV -> Parquet COPY (zstd), dialect given, no validation;
- ``pyarrow``: pyarrow's bare multi-threaded ``read_csv``, no validation, no write;
- ``gold``: m7etl silver->gold over the silver ``silver`` wrote;
- ``duckdb-gold``: the same gold as SQL over the same silver (:mod:`.gold_sql`);
- ``pandas`` (on request): read_csv -> a hand-written validation -> to_parquet.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

DAY = "20250501"  # cases.DAY, repeated: importing cases would load the contracts here
M7ETL_DIR = "m7etl"  # under OUT: the LocalStorage root of raw/, silver/, gold/
DUCKDB_DIR = "duckdb"


def _dataset(path: Path) -> str:
    return path.name.split("_")[0]


def run_silver(path: Path, out: Path) -> dict:
    from m7etl.core.contracts import load_registry
    from m7etl.core.raw_to_silver import Thresholds, process_raw_file
    from m7etl.storage import LocalStorage

    registry = load_registry()
    ready()  # a warm Lambda has imported these at init and holds the contracts (lru_cache)
    root = out / M7ETL_DIR
    key = f"raw/{DAY}/{path.name}"
    target = root / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    os.link(path, target)
    result = process_raw_file(LocalStorage(root), key, registry, Thresholds(error_pct=100.0))
    return {"rows": result.rows_read, "valid": result.rows_valid, "rejected": result.rows_rejected,
            "status": result.status, "outputs": result.outputs}


def run_duckdb_copy(path: Path, out: Path) -> dict:
    import duckdb

    target = out / DUCKDB_DIR / "copy.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    ready()
    # The dialect is given: on a file with faulty rows DuckDB's sniffer settles for delim='|'
    # and no quoting, i.e. it copies each line as one string column (a much cheaper job).
    # Rows with the wrong number of fields (or a value its sniffed type refuses) are skipped.
    con.execute(f"COPY (SELECT * FROM read_csv('{path}', header=true, delim=',', quote='\"', "
                f"escape='\"', ignore_errors=true)) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    return {"rows": rows}


def run_pyarrow(path: Path, out: Path) -> dict:
    import pyarrow.csv as pacsv

    ready()
    skipped = []
    table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(
        invalid_row_handler=lambda row: skipped.append(1) or "skip"))
    return {"rows": table.num_rows + len(skipped)}


def run_gold(path: Path, out: Path) -> dict:
    from m7etl.core.contracts import load_registry
    from m7etl.core.silver_to_gold import process_gold
    from m7etl.storage import LocalStorage

    contract = load_registry()[_dataset(path)]
    ready()
    result = process_gold(LocalStorage(out / M7ETL_DIR), contract, DAY)
    if result.gold_key is None:
        raise RuntimeError("no silver: run the silver contender first")
    return {"rows_in": result.rows_in, "rows": result.rows_out, "gold_key": result.gold_key}


def silver_files(out: Path, dataset: str) -> list[str]:
    """The day's silver Parquet files m7etl wrote for ``dataset`` (what gold reads)."""
    from m7etl.core import layout

    folder = out / M7ETL_DIR / layout.silver_prefix(DAY, dataset)
    return sorted(str(p) for p in folder.glob("*.parquet"))


def run_duckdb_gold(path: Path, out: Path) -> dict:
    import duckdb

    from m7etl.core.contracts import load_registry
    from m7etl.devtools.bench.gold_sql import copy_statement, gold_query

    contract = load_registry()[_dataset(path)]
    silver = silver_files(out, contract.dataset)
    if not silver:
        raise RuntimeError("no silver: run the silver contender first")
    target = out / DUCKDB_DIR / "gold.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    ready()
    con.execute(copy_statement(gold_query(contract, silver, DAY), str(target)))
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    return {"rows": rows}


def run_pandas(path: Path, out: Path) -> dict:
    """What a first script looks like: read, coerce, a few checks, write."""
    import pandas as pd

    from m7etl.core.contracts import load_registry

    contract = load_registry().identify(path.name)[0]
    ready()
    df = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip")
    bad = pd.Series(False, index=df.index)
    for c in contract.columns:
        col = df[c.name]
        if c.required:
            bad |= col == ""
        if c.type in ("integer", "float"):
            num = pd.to_numeric(col, errors="coerce")
            bad |= num.isna() & (col != "")
            if c.rules.min is not None:
                bad |= num < c.rules.min
            if c.rules.max is not None:
                bad |= num > c.rules.max
            df[c.name] = num
        elif c.type in ("date", "timestamp"):
            parsed = pd.to_datetime(col, format=c.format, errors="coerce")
            bad |= parsed.isna() & (col != "")
            df[c.name] = parsed
        elif c.rules.allowed:
            bad |= ~col.isin(c.rules.allowed) & (col != "")
        if c.rules.pattern:
            bad |= ~col.str.match(c.rules.pattern) & (col != "")
        if c.rules.max_length:
            bad |= col.str.len() > c.rules.max_length
    target = out / "pandas" / "silver.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    df[~bad].to_parquet(target, compression="zstd")
    return {"rows": len(df), "valid": int((~bad).sum())}


CONTENDERS = {
    "silver": ("m7etl raw->silver (validated)", run_silver),
    "duckdb-copy": ("DuckDB CSV->Parquet (no checks)", run_duckdb_copy),
    "pyarrow": ("pyarrow read_csv (bare read)", run_pyarrow),
    "gold": ("m7etl silver->gold", run_gold),
    "duckdb-gold": ("DuckDB gold SQL, same silver", run_duckdb_gold),
    "pandas": ("pandas read->validate->parquet", run_pandas),
}
DEFAULT = ("silver", "duckdb-copy", "pyarrow", "gold", "duckdb-gold")


def _peak_mb() -> float:
    """This process's peak RSS. Linux's ru_maxrss survives exec (it would report the parent's
    peak when that was higher); VmHWM belongs to this program's memory only."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """User + system CPU of this process, all threads, to the microsecond (os.times counts
    clock ticks of 10 ms: too coarse for a small file's warm cost)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_READY: dict[str, float] = {}


def ready() -> None:
    """Called by a contender once its libraries are imported and set up: what follows is
    what a warm process (a warm Lambda) pays per file, the ``warm_cpu_s`` figure."""
    _READY["cpu"] = _cpu_seconds()


def measure(name: str, path: Path, out: Path) -> dict:
    """Run one contender here and return its counts with wall s, CPU s (all of it, and
    after ``ready``) and peak MB."""
    out.mkdir(parents=True, exist_ok=True)
    _READY.clear()
    started, cpu = time.perf_counter(), _cpu_seconds()
    info = CONTENDERS[name][1](path, out)
    info["wall_s"] = time.perf_counter() - started
    end = _cpu_seconds()
    info["cpu_s"] = end - cpu
    info["warm_cpu_s"] = end - _READY.get("cpu", cpu)
    info["peak_mb"] = _peak_mb()
    return info


HIDE_PANDAS = "M7_BENCH_HIDE_PANDAS"  # set: pandas cannot be imported, as in the Lambda layer


class _NoPandas:
    """An import hook refusing pandas. pyarrow imports pandas (0.3-0.5 CPU s) the first time
    it builds an array from Python objects when pandas is installed; the Lambda layer has no
    pandas, so this shows what the deployed functions pay."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the bench)", name=name)
        return None


if __name__ == "__main__":
    if os.environ.get(HIDE_PANDAS) and sys.argv[1] != "pandas":
        sys.meta_path.insert(0, _NoPandas())
    print(json.dumps(measure(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))))
