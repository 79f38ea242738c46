"""``m7etl sample``: write realistic sample CSV files, with faults, for the data contracts."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from m7etl.core.contracts import load_registry
from m7etl.core.layout import parse_day
from m7etl.devtools.sample import (
    FAULT_KINDS,
    SampleManifest,
    SampleOptions,
    applicable_faults,
    write_demo_set,
    write_sample,
)
from m7etl.exceptions import UsageError


def _parse_rate(text: str, what: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise UsageError(f"Fault rate {what}: '{text}' is not a number.",
                         hint="Give a rate between 0 and 1, e.g. 0.02.") from None
    if not 0 <= rate <= 1:
        raise UsageError(f"Fault rate {what}: {text} is outside [0, 1].",
                         hint="Give a rate between 0 and 1, e.g. 0.02 for 2%.")
    return rate


def parse_faults(specs: tuple[str, ...]) -> dict[str, float]:
    """``("wrong_type=0.01", ...)`` -> ``{"wrong_type": 0.01}``, checking kinds and rates."""
    faults: dict[str, float] = {}
    for spec in specs:
        kind, sep, rate = spec.partition("=")
        kind = kind.strip()
        if not sep:
            raise UsageError(f"Fault '{spec}' is not KIND=RATE.",
                             hint="Write it like --fault wrong_type=0.02.")
        if kind not in FAULT_KINDS:
            raise UsageError(f"Fault kind '{kind}' is unknown.",
                             hint=f"Use one of {', '.join(FAULT_KINDS)}.")
        faults[kind] = _parse_rate(rate.strip(), kind)
    return faults


def _describe(m: SampleManifest) -> str:
    size = f"{m.bytes / 1e6:.2f} MB" if m.bytes >= 100_000 else f"{m.bytes / 1e3:.1f} kB"
    faults = ", ".join(f"{k}={v}" for k, v in m.counts().items() if v) or "none"
    return f"{m.name}  {m.rows} rows  {size}  faults: {faults}  warned: {m.warned_rows}"


@click.command("sample")
@click.option("--out", "out_dir", default=".work/demo/landing", show_default=True,
              type=click.Path(file_okay=False), help="Folder to write the files into.")
@click.option("--day", help="Day in the file names, YYYYMMDD (default: today, UTC).")
@click.option("--dataset", "datasets", multiple=True,
              help="Dataset to write (repeatable; default: every contract).")
@click.option("--rows", type=int, help="Data rows per file (default 1000).")
@click.option("--size-mb", type=float, help="Approximate CSV size per file, in MB (10^6 bytes).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--fault", "fault_specs", multiple=True, metavar="KIND=RATE",
              help="Inject a fault kind at a rate in [0, 1] (repeatable): "
                   f"{', '.join(FAULT_KINDS)}.")
@click.option("--fault-rate", help="Rate for every fault kind the contract supports.")
@click.option("--warn-rate", type=float, default=0.0, show_default=True,
              help="Share of rows with a value in a warn: zone.")
@click.option("--multiline-rate", type=float, default=0.0, show_default=True,
              help="Share of rows with a quoted newline in a free-text column.")
@click.option("--delimiter", type=click.Choice([",", ";"]), default=",", show_default=True,
              help="Field delimiter of the files written.")
@click.option("--encoding", type=click.Choice(["utf-8", "utf-8-sig", "cp1252"]),
              default="utf-8", show_default=True, help="utf-8-sig writes a BOM.")
@click.option("--crlf", is_flag=True, help="End lines with CRLF instead of LF.")
@click.option("--gzip", "use_gzip", is_flag=True, help="Write .csv.gz files.")
@click.option("--demo", is_flag=True,
              help="Write the demo set (every dataset, mixed dialects, faults, two unreadable "
                   "files); other options except --out, --day and --seed are ignored.")
def command(out_dir: str, day: str | None, datasets: tuple[str, ...], rows: int | None,
            size_mb: float | None, seed: int, fault_specs: tuple[str, ...],
            fault_rate: str | None, warn_rate: float, multiline_rate: float, delimiter: str,
            encoding: str, crlf: bool, use_gzip: bool, demo: bool) -> None:
    """Write realistic sample CSV files for the data contracts, with faults on demand.

    The same seed and options always write the same bytes.

    Example: m7etl sample --dataset Viewing --rows 10000 --fault-rate 0.02 --out landing/
    """
    day = day or datetime.now(UTC).strftime("%Y%m%d")
    try:
        parse_day(day)
    except ValueError as exc:
        raise UsageError(f"--day: {exc}.",
                         hint="Give the day as YYYYMMDD, e.g. 20250501.") from None
    if demo:
        for m in write_demo_set(out_dir, day, seed=seed):
            click.echo(_describe(m))
        return
    if rows is not None and size_mb is not None:
        raise UsageError("--rows and --size-mb were both given.", hint="Pass only one of them.")
    if rows is None and size_mb is None:
        rows = 1000
    explicit = parse_faults(fault_specs)
    every = _parse_rate(fault_rate, "--fault-rate") if fault_rate is not None else None
    registry = load_registry()
    if datasets:
        known = {c.dataset.lower(): c for c in registry}
        contracts = []
        for name in datasets:
            if name.lower() not in known:
                raise UsageError(
                    f"Dataset '{name}' has no contract (known: "
                    f"{', '.join(sorted(c.dataset for c in registry))}).",
                    hint="Pick one of the known datasets or add a contract file.")
            contracts.append(known[name.lower()])
    else:
        contracts = sorted(registry, key=lambda c: c.dataset)
    for contract in contracts:
        faults = dict.fromkeys(applicable_faults(contract), every) if every is not None else {}
        faults.update(explicit)
        options = SampleOptions(
            rows=rows, size_mb=size_mb, seed=seed, faults=faults, warn_rate=warn_rate,
            delimiter=delimiter, encoding=encoding, line_ending="\r\n" if crlf else "\n",
            gzip=use_gzip, multiline_rate=multiline_rate)
        click.echo(_describe(write_sample(contract, day, out_dir, options)))
