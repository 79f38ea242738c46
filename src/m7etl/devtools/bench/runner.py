"""Run the cases: each contender in a fresh process, rounds interleaved, medians printed.

Rounds are interleaved (every contender once, then again) so a load change on a shared
machine hits all contenders alike. CPU seconds are the primary figure there: wall time
moves with the neighbours' load. Ratios are DuckDB's time over m7etl's: 1.00x or more
means m7etl is at least as fast.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from m7etl.core.contracts import load_registry
from m7etl.devtools.bench.cases import CASES, Case, Generated, generate, select
from m7etl.devtools.bench.checks import gold_checks, silver_checks
from m7etl.devtools.bench.contenders import CONTENDERS, DEFAULT, HIDE_PANDAS

PEAK_TARGET_MB = 1024  # the target is for a 2 GB file: below it at any size
PAIRS = (("silver", "duckdb-copy", "raw->silver vs DuckDB's copy"),
         ("gold", "duckdb-gold", "silver->gold vs DuckDB's gold SQL"))


def run_child(name: str, path: Path, out: Path, env: dict | None = None) -> dict:
    """One contender in a fresh interpreter; its JSON line, or {"error": its last line}."""
    proc = subprocess.run([sys.executable, "-m", "m7etl.devtools.bench.contenders", name,
                           str(path), str(out)], capture_output=True, text=True, check=False,
                          env=env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        return {"error": lines[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def medians(runs: list[dict]) -> dict:
    """The last run's counts with the median wall and CPU seconds and the highest peak."""
    if any("error" in r for r in runs):
        return next(r for r in runs if "error" in r)
    return dict(runs[-1], wall_s=statistics.median(r["wall_s"] for r in runs),
                cpu_s=statistics.median(r["cpu_s"] for r in runs),
                warm_cpu_s=statistics.median(r.get("warm_cpu_s", r["cpu_s"]) for r in runs),
                peak_mb=max(r["peak_mb"] for r in runs), runs=len(runs))


def run_case(case: Case, generated: Generated, names: list[str], repeat: int, work: Path,
             env: dict | None = None) -> dict:
    out = work / "out" / case.name
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _round in range(repeat):
        for name in names:
            runs[name].append(run_child(name, generated.path, out, env))
    results = {name: medians(done) for name, done in runs.items()}
    ok = {name: info for name, info in results.items() if "error" not in info}
    checks = silver_checks(generated, ok["silver"], out) if "silver" in ok else []
    contract = load_registry()[case.dataset]
    if "gold" in ok or "duckdb-gold" in ok:
        checks += gold_checks(contract, ok.get("silver"), ok.get("gold"), ok.get("duckdb-gold"), out)
    return {"case": case.name, "dataset": case.dataset, "note": case.note,
            "file": generated.path.name, "mb": generated.size_mb, "rows": generated.rows,
            "results": results, "checks": checks}


def _counts(info: dict) -> str:
    if "valid" in info:
        return f"{info['rows']:,} read, {info['valid']:,} valid, {info['rejected']:,} rejected"
    if "rows_in" in info:
        return f"{info['rows_in']:,} silver rows -> {info['rows']:,} gold rows"
    return f"{info['rows']:,} rows"


def ratios(results: dict, ours: str, theirs: str) -> tuple[float, float, float] | None:
    """(wall, CPU, warm CPU) of DuckDB's time over m7etl's, when both ran."""
    a, b = results.get(ours), results.get(theirs)
    if not a or not b or "error" in a or "error" in b:
        return None
    warm = b.get("warm_cpu_s", b["cpu_s"]) / max(a.get("warm_cpu_s", a["cpu_s"]), 1e-6)
    return b["wall_s"] / a["wall_s"], b["cpu_s"] / a["cpu_s"], warm


def print_case(report: dict, repeat: int) -> None:
    runs = f", median of {repeat} runs" if repeat > 1 else ""
    print(f"\n{report['case']}: {report['file']}, {report['mb']:.1f} MB, {report['rows']:,} rows "
          f"({report['note']}){runs}")
    print(f"  {'contender':34} {'wall s':>7} {'cpu s':>7} {'warm':>6} {'MB/s':>7} {'peak MB':>8}  rows")
    for name, info in report["results"].items():
        label = CONTENDERS[name][0]
        if "error" in info:
            print(f"  {label:34} failed: {info['error']}")
            continue
        warm = info.get("warm_cpu_s", info["cpu_s"])
        print(f"  {label:34} {info['wall_s']:7.2f} {info['cpu_s']:7.2f} {warm:6.2f} "
              f"{report['mb'] / info['wall_s']:7.1f} {info['peak_mb']:8.0f}  {_counts(info)}")
    for ours, theirs, label in PAIRS:
        found = ratios(report["results"], ours, theirs)
        if found:
            wall, cpu, warm = found
            verdict = "met" if cpu >= 1.0 else "below"
            print(f"  {label}: {wall:.2f}x wall, {cpu:.2f}x CPU, {warm:.2f}x warm CPU "
                  f"(target >= 1.00x CPU: {verdict})")
    failed = [c for c in report["checks"] if not c[1]]
    print(f"  checks: {len(report['checks']) - len(failed)} of {len(report['checks'])} passed"
          + "".join(f"\n    FAILED {name}: {detail}" for name, _ok, detail in failed))


def print_summary(reports: list[dict]) -> None:
    print(f"\n{'case':12} {'MB':>7}  {'silver/copy CPU':>15} {'warm':>6} {'wall':>6}  "
          f"{'gold/SQL CPU':>12} {'warm':>6} {'wall':>6}  {'m7 peak':>7}  checks")
    for report in reports:
        cells = []
        for ours, theirs, _label in PAIRS:
            found = ratios(report["results"], ours, theirs)
            cells.append(tuple(f"{found[k]:.2f}x" for k in (1, 2, 0)) if found else ("-", "-", "-"))
        peaks = [i["peak_mb"] for name, i in report["results"].items()
                 if name in ("silver", "gold") and "error" not in i]
        peak = max(peaks) if peaks else 0
        failed = sum(1 for c in report["checks"] if not c[1])
        print(f"{report['case']:12} {report['mb']:7.1f}  {cells[0][0]:>15} {cells[0][1]:>6} "
              f"{cells[0][2]:>6}  {cells[1][0]:>12} {cells[1][1]:>6} {cells[1][2]:>6}  {peak:7.0f}  "
              + ("ok" if not failed else f"{failed} FAILED"))
    print(f"(DuckDB's time over m7etl's; targets: >= 1.00x CPU, peak < {PEAK_TARGET_MB} MB; warm: "
          "the CPU after imports and set-up, what a warm process pays per file)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench", description="m7etl raw->silver and silver->gold beside DuckDB and pyarrow, "
                                  "every dataset, each contender in a fresh process.")
    parser.add_argument("--size", "--size-mb", dest="size", type=float, default=200,
                        help="MB of CSV per generated file (Channel keeps its realistic size)")
    parser.add_argument("--dataset", help="cases to run, comma-separated (default: all of "
                                          + ", ".join(c.name for c in CASES) + ")")
    parser.add_argument("--fault-rate", type=float, default=0.01, help="share of faulty rows")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; medians shown")
    parser.add_argument("--contenders", default=",".join(DEFAULT),
                        help="comma-separated, of: " + ", ".join(CONTENDERS))
    parser.add_argument("--work", type=Path, default=Path(".work") / "bench",
                        help="where files are generated (cached) and outputs written")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--with-pandas", action="store_true",
                        help="let the contenders import pandas, as in this venv (pyarrow imports "
                             "it when installed: 0.2-0.5 CPU s); by default it is hidden, as in "
                             "the Lambda layer the functions run with")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}; known: {', '.join(CONTENDERS)}")
    args.names = names
    if args.repeat < 1 or args.size <= 0:
        parser.error("--repeat must be at least 1 and --size above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases = select(args.dataset)
    print(f"{os.cpu_count()} cores; each contender in a fresh process; cpu s = user + system CPU "
          "of the contender, all threads (wall time is noisy on a shared machine)")
    env = None if args.with_pandas else dict(os.environ, **{HIDE_PANDAS: "1"})
    print("pandas importable by the contenders (as in this venv)" if args.with_pandas else
          "pandas hidden from the contenders, as in the Lambda layer (--with-pandas: as in this venv)")
    reports = []
    for case in cases:
        generated = generate(case, args.work, args.size, args.fault_rate)
        report = run_case(case, generated, args.names, args.repeat, args.work, env)
        print_case(report, args.repeat)
        reports.append(report)
    if len(reports) > 1:
        print_summary(reports)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    broken = any(not c[1] for r in reports for c in r["checks"]) or any(
        "error" in i for r in reports for i in r["results"].values())
    return 1 if broken else 0
