"""Every table and summary the CLI prints, in one package (the library returns values).

One module per topic; this one holds the plain-text table and the local run's summary.
"""

from __future__ import annotations

from collections.abc import Iterator

from m7etl.core.layout import raw_prefix

LOADED = "loaded"  # m7etl.warehouse.loader.LOADED, without importing the loader for it


def text_table(headers: list[str], rows: list[list[object]], right: set[int] | None = None) -> str:
    """Aligned columns; ``right`` holds the indexes of right-aligned (numeric) columns."""
    right = right or set()
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs]
        return "  ".join(parts).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


def run_summary(result) -> Iterator[str]:
    """The summary ``m7etl run --local`` prints: per day, files, gold, load, log key."""
    if result.cleaned:
        size = sum(c.size for c in result.cleaned) / 1e6
        yield f"\nRemoved {len(result.cleaned)} leftover(s) of interrupted runs ({size:.1f} MB):"
        yield from (f"  {c.path}" for c in result.cleaned)
    moved = [i for i in result.ingested if i.status in ("raw", "quarantined")]
    if moved:
        yield f"\nIngested {len(moved)} file(s) from landing/."
    for ignored in (i for i in result.ingested if i.status == "ignored"):
        yield f"Left in landing/: {ignored.source_key} ({ignored.reason})"
    other_days: dict[str, list[str]] = {}
    for left in (i for i in result.ingested if i.status == "left"):
        other_days.setdefault(left.date, []).append(left.source_key.rsplit("/", 1)[-1])
    for day, names in sorted(other_days.items()):
        yield (f"Left in landing/ for a run without --date: {len(names)} file(s) of {day}: "
               f"{', '.join(names)}")
    for skipped in (i for i in result.ingested if i.status == "skipped"):
        yield f"Skipped in landing/: {skipped.source_key}: {skipped.reason}"
    if result.waiting:
        yield (f"\nNot processed by this --date run: {', '.join(result.waiting)} (raw files "
               "without a complete execution log); a run without --date finishes them.")
    for day in result.days:
        if day.log_aside:
            yield (f"\nDay {day.day}: the earlier {day.log_key} was not an execution log; "
                   f"kept as {day.log_aside}.")
        if not day.files:
            yield (f"\nDay {day.day}: no file under {raw_prefix(day.day)} and none for that day in "
                   "landing/: nothing to process. Put the day's CSV files in landing/, or pick "
                   "another day with --date.")
            yield from load_lines(day.load_report)
            yield f"\nExecution log: {day.log_key}"
            continue
        rows = []
        for f in day.files:
            rows.append([f.source_key.rsplit("/", 1)[-1], f.dataset or "?", f.rows_read, f.rows_valid,
                         f.rows_rejected, f"{f.rejected_pct:.2f}", f"{f.warned_pct:.2f}",
                         f.status + (" (warning)" if f.warning else "")])
        yield f"\nDay {day.day}: raw -> silver"
        yield text_table(["file", "dataset", "rows", "valid", "rejected", "rej %", "warn %", "status"],
                         rows, right={2, 3, 4, 5, 6})
        for f in day.files:
            if f.reason:
                yield f"  {f.source_key.rsplit('/', 1)[-1]}: {f.reason}"
            where = f.outputs.get("quarantine") or (f.status != "ok" and f.outputs.get("rejects"))
            if where:
                yield f"    -> {where}"
        yield f"\nDay {day.day}: silver -> gold"
        yield text_table(["dataset", "silver rows", "gold rows", "gold key"],
                         [[g.dataset, g.rows_in, g.rows_out, g.gold_key or _no_gold(day, g.dataset)]
                          for g in day.gold],
                         right={1, 2})
        yield from load_lines(day.load_report)
        yield f"\nExecution log: {day.log_key}"


def _no_gold(day, dataset: str) -> str:
    """Why a dataset has no gold file: no file that day, or none of its files was promoted."""
    held = [f"{f.source_key.rsplit('/', 1)[-1]} {f.status}" for f in day.files
            if f.dataset == dataset and f.status != "ok"]
    return f"(nothing promoted: {', '.join(held)})" if held else "(no input)"


def load_lines(report) -> Iterator[str]:
    """The local load's summary: one line per table with its row count after the load."""
    if report is None:
        return
    how = f"COPY from @{report.stage}" if report.stage else "write_pandas"
    yield (f"\nDay {report.day}: gold -> warehouse (fakesnow in {report.warehouse_dir}, {how}, "
           f"{report.seconds:.2f} s)")
    rows = [[r.table, r.status, r.rows_in_file, r.rows_loaded, report.counts.get(r.table)]
            for r in report.results]
    yield from text_table(["table", "status", "file rows", "loaded", "table rows"], rows,
                          right={2, 3, 4}).splitlines()
    for r in report.results:
        if r.status != LOADED:
            yield f"  {r.table}: {r.message}"
