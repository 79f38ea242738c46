"""Benchmark raw -> silver against the obvious alternatives, on one generated file.

Each contender runs in its own fresh interpreter, so its peak memory (max RSS) is its own:
- m7etl raw->silver: full contract validation, silver + rejects Parquet, report;
- pyarrow read_csv: the bare multi-threaded CSV read, no validation, no write;
- DuckDB: a plain CSV -> Parquet COPY, no validation;
- pandas: read_csv -> a hand-written validation -> to_parquet, the script people write first.

Usage: python scripts/bench.py [--size-mb 300] [--dataset Viewing] [--fault-rate 0.01]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".work" / "bench"
DAY = "20250501"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_m7etl(path: Path, out: Path) -> dict:
    from m7etl.contracts import load_registry
    from m7etl.raw_to_silver import Thresholds, process_raw_file
    from m7etl.storage import LocalStorage

    storage = LocalStorage(out)
    key = f"raw/{DAY}/{path.name}"
    target = out / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    os.link(path, target)
    result = process_raw_file(storage, key, load_registry(), Thresholds(error_pct=100.0))
    return {"rows": result.rows_read, "valid": result.rows_valid, "rejected": result.rows_rejected}


def run_pyarrow(path: Path, out: Path) -> dict:
    import pyarrow.csv as pacsv

    skipped = []
    table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(
        invalid_row_handler=lambda row: skipped.append(1) or "skip"))
    return {"rows": table.num_rows + len(skipped)}


def run_duckdb(path: Path, out: Path) -> dict:
    import duckdb

    target = out / "duckdb.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{path}', header=true)) TO '{target}' "
                "(FORMAT parquet, COMPRESSION zstd)")
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    return {"rows": rows}


def run_pandas(path: Path, out: Path) -> dict:
    """What a first script looks like: read, coerce, a few checks, write."""
    import pandas as pd

    from m7etl.contracts import load_registry

    contract = load_registry().identify(path.name)[0]
    df = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip")
    bad = pd.Series(False, index=df.index)
    for c in contract.columns:
        col = df[c.name]
        if c.required:
            bad |= col == ""
        if c.type == "integer":
            num = pd.to_numeric(col, errors="coerce")
            bad |= num.isna() & (col != "")
            if c.rules.min is not None:
                bad |= num < c.rules.min
            if c.rules.max is not None:
                bad |= num > c.rules.max
            df[c.name] = num.astype("Int64")
        elif c.type in ("date", "timestamp"):
            parsed = pd.to_datetime(col, format=c.format, errors="coerce")
            bad |= parsed.isna() & (col != "")
            df[c.name] = parsed
        elif c.rules.allowed:
            bad |= ~col.isin(c.rules.allowed) & (col != "")
        if c.rules.pattern:
            bad |= ~col.str.match(c.rules.pattern) & (col != "")
    df[~bad].to_parquet(out / "pandas.parquet", compression="zstd")
    return {"rows": len(df), "valid": int((~bad).sum())}


CONTENDERS = {
    "m7etl raw->silver (validated)": run_m7etl,
    "pyarrow read_csv (bare read)": run_pyarrow,
    "duckdb CSV->Parquet (no checks)": run_duckdb,
    "pandas read->validate->parquet": run_pandas,
}


def child(name: str, path: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    info = CONTENDERS[name](path, out)
    info["seconds"] = time.perf_counter() - started
    info["peak_mb"] = _peak_mb()
    print(json.dumps(info))


def generate(dataset: str, size_mb: float, fault_rate: float) -> Path:
    from m7etl.contracts import load_registry
    from m7etl.sample import FAULT_KINDS, SampleOptions, write_sample

    folder = WORK / f"{dataset}-{int(size_mb)}mb-{fault_rate}"
    contract = load_registry()[dataset]
    path = folder / f"{dataset}_{DAY}.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        faults = {k: fault_rate / len(FAULT_KINDS) for k in FAULT_KINDS} if fault_rate else {}
        write_sample(contract, DAY, folder, SampleOptions(rows=None, size_mb=size_mb, seed=1,
                                                          faults=faults))
        took = time.perf_counter() - started
        print(f"generated {path.name}: {path.stat().st_size / 1e6:.0f} MB in {took:.1f} s", flush=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=300)
    parser.add_argument("--dataset", default="Viewing")
    parser.add_argument("--fault-rate", type=float, default=0.01)
    parser.add_argument("--only", help="run one contender (its name's first word)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, WORK / "out" / args.child.split()[0])
        return
    path = generate(args.dataset, args.size_mb, args.fault_rate)
    size_mb = path.stat().st_size / 1e6
    print(f"\n{path.name}: {size_mb:.0f} MB, 2 cores; each contender in a fresh process\n")
    print(f"{'contender':34} {'seconds':>8} {'MB/s':>8} {'peak MB':>8}  rows")
    results = {}
    for name in CONTENDERS:
        if args.only and not name.startswith(args.only):
            continue
        proc = subprocess.run([sys.executable, __file__, "--child", name, "--file", str(path)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{name:34} failed: {proc.stderr.strip().splitlines()[-1]}")
            continue
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        results[name] = info
        rows = ", ".join(f"{k}={v:,}" for k, v in info.items() if k not in ("seconds", "peak_mb"))
        print(f"{name:34} {info['seconds']:8.2f} {size_mb / info['seconds']:8.1f} "
              f"{info['peak_mb']:8.0f}  {rows}", flush=True)
    ours = results.get("m7etl raw->silver (validated)")
    duck = results.get("duckdb CSV->Parquet (no checks)")
    if ours and duck:
        print(f"\nm7etl / DuckDB throughput: {duck['seconds'] / ours['seconds']:.2f}x "
              "(target: >= 1.00x with full validation)")


if __name__ == "__main__":
    main()
