"""Benchmark raw -> silver against the obvious alternatives, on one generated file.

Each contender runs in its own fresh interpreter, so its peak memory (max RSS) is its own:
- m7etl raw->silver: full contract validation, silver + rejects Parquet, report;
- m7etl silver->gold: the day's gold from that silver (streamed: memory follows the chunk
  and the groups, not the day);
- pyarrow read_csv: the bare multi-threaded CSV read, no validation, no write;
- DuckDB: a plain CSV -> Parquet COPY (zstd), dialect given, bad rows skipped, no validation;
- pandas: read_csv -> a hand-written validation -> to_parquet, the script people write first.

Usage: python scripts/bench.py [--size-mb 300] [--dataset Viewing] [--fault-rate 0.01]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".work" / "bench"
DAY = "20250501"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """User + system CPU of this process, all threads (wall time is noisy on a shared box)."""
    times = os.times()
    return times.user + times.system


def run_m7etl(path: Path, out: Path) -> dict:
    from m7etl.core.contracts import load_registry
    from m7etl.core.raw_to_silver import Thresholds, process_raw_file
    from m7etl.storage import LocalStorage

    storage = LocalStorage(out)
    key = f"raw/{DAY}/{path.name}"
    target = out / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    os.link(path, target)
    result = process_raw_file(storage, key, load_registry(), Thresholds(error_pct=100.0))
    return {"rows": result.rows_read, "valid": result.rows_valid, "rejected": result.rows_rejected}


def run_m7etl_gold(path: Path, out: Path) -> dict:
    """silver -> gold over the silver the raw->silver contender wrote (same folder)."""
    from m7etl.core.contracts import load_registry
    from m7etl.core.silver_to_gold import process_gold
    from m7etl.storage import LocalStorage

    dataset = path.name.split("_")[0]
    result = process_gold(LocalStorage(out), load_registry()[dataset], DAY)
    if result.gold_key is None:
        raise RuntimeError("no silver: run the m7etl raw->silver contender first")
    return {"silver_rows": result.rows_in, "gold_rows": result.rows_out}


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
    # The dialect is given: on a file with faulty rows DuckDB's sniffer settles for delim='|'
    # and no quoting, i.e. it copies each line as one string column (a much cheaper job).
    # Rows with the wrong number of fields are skipped, as pandas' on_bad_lines="skip" does.
    con.execute(f"COPY (SELECT * FROM read_csv('{path}', header=true, delim=',', quote='\"', "
                f"escape='\"', ignore_errors=true)) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    columns = len(con.execute(f"SELECT * FROM read_parquet('{target}') LIMIT 0").description)
    return {"rows": rows, "columns": columns}


def run_pandas(path: Path, out: Path) -> dict:
    """What a first script looks like: read, coerce, a few checks, write."""
    import pandas as pd

    from m7etl.core.contracts import load_registry

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
    "m7etl silver->gold (its output)": run_m7etl_gold,
    "pyarrow read_csv (bare read)": run_pyarrow,
    "duckdb CSV->Parquet (no checks)": run_duckdb,
    "pandas read->validate->parquet": run_pandas,
}


def child(name: str, path: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    started, cpu = time.perf_counter(), _cpu_seconds()
    info = CONTENDERS[name](path, out)
    info["seconds"] = time.perf_counter() - started
    info["cpu_s"] = _cpu_seconds() - cpu
    info["peak_mb"] = _peak_mb()
    print(json.dumps(info))


def generate(dataset: str, size_mb: float, fault_rate: float) -> Path:
    from m7etl.core.contracts import load_registry
    from m7etl.devtools.sample import FAULT_KINDS, SampleOptions, write_sample

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


def _run_child(name: str, path: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", name, "--file", str(path)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=300)
    parser.add_argument("--dataset", default="Viewing")
    parser.add_argument("--fault-rate", type=float, default=0.01)
    parser.add_argument("--only", help="run one contender (its name's first word)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per contender; the table shows medians (peak: the highest)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, WORK / "out" / args.child.split()[0])
        return
    path = generate(args.dataset, args.size_mb, args.fault_rate)
    size_mb = path.stat().st_size / 1e6
    runs = f", median of {args.repeat} runs" if args.repeat > 1 else ""
    print(f"\n{path.name}: {size_mb:.0f} MB, {os.cpu_count()} cores; each contender in a fresh "
          f"process{runs}")
    print("cpu s: user + system CPU of the contender, all threads (wall time is noisy on a shared "
          "machine)\n")
    print(f"{'contender':34} {'wall s':>7} {'cpu s':>7} {'MB/s':>7} {'peak MB':>8}  rows")
    results = {}
    for name in CONTENDERS:
        if args.only and not name.startswith(args.only):
            continue
        try:
            done = [_run_child(name, path) for _ in range(max(1, args.repeat))]
        except RuntimeError as exc:
            print(f"{name:34} failed: {exc}")
            continue
        info = dict(done[-1], seconds=_median(done, "seconds"), cpu_s=_median(done, "cpu_s"),
                    peak_mb=max(run["peak_mb"] for run in done))
        results[name] = info
        rows = ", ".join(f"{k}={v:,}" for k, v in info.items() if k not in ("seconds", "cpu_s", "peak_mb"))
        print(f"{name:34} {info['seconds']:7.2f} {info['cpu_s']:7.2f} {size_mb / info['seconds']:7.1f} "
              f"{info['peak_mb']:8.0f}  {rows}", flush=True)
    ours = results.get("m7etl raw->silver (validated)")
    duck = results.get("duckdb CSV->Parquet (no checks)")
    if ours and duck:
        print(f"\nm7etl / DuckDB throughput: {duck['seconds'] / ours['seconds']:.2f}x wall, "
              f"{duck['cpu_s'] / ours['cpu_s']:.2f}x CPU (target: >= 1.00x with full validation)")


if __name__ == "__main__":
    main()
