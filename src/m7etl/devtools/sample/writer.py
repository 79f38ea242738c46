"""One sample file on disk: its name, the gzip wrapper and an atomic write.

The file is written to ``<name>.part`` and renamed, so neither a reader nor a failed run
leaves half a file; gzip stores no name and ``mtime=0``, so the bytes depend on the inputs only.
"""

from __future__ import annotations

import gzip as gzip_module
import os
from pathlib import Path

from m7etl.core.contracts import Contract, load_registry
from m7etl.devtools.sample.generator import Generator
from m7etl.devtools.sample.options import (
    SampleManifest,
    SampleOptions,
    check_day,
    check_options,
    lookup,
)
from m7etl.exceptions import UsageError


def sample_file_name(contract: Contract, day: str, gzip: bool = False) -> str:
    """``<Dataset>_YYYYMMDD.csv`` (``.csv.gz``), checked against the contract's pattern."""
    suffix = ".csv.gz" if gzip else ".csv"
    for stem in (contract.dataset, contract.dataset.lower(), contract.dataset.upper()):
        name = f"{stem}_{day}{suffix}"
        if contract.match(name) == day:
            return name
    raise UsageError(
        f"Dataset {contract.dataset}: its file pattern {contract.pattern.pattern!r} does not "
        f"accept the name {contract.dataset}_{day}{suffix}.",
        hint="Use the default pattern <Dataset>_YYYYMMDD.csv(.gz) in the contract"
        + (" or drop --gzip." if gzip else "."),
    )


def write_sample(contract: Contract | str, day: str, out_dir: str | os.PathLike,
                 options: SampleOptions | None = None) -> SampleManifest:
    """Write one sample file for ``contract`` and ``day`` into ``out_dir``; return its manifest."""
    if isinstance(contract, str):
        contract = lookup(load_registry(), contract)
    day = check_day(day)
    options = options if options is not None else SampleOptions()
    check_options(contract, options)
    gen = Generator(contract, day, options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / sample_file_name(contract, day, options.gzip)
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as raw:
            sink = (gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6,
                                         mtime=0) if options.gzip else raw)
            try:
                gen.write(sink)
            finally:
                if sink is not raw:
                    sink.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return SampleManifest(
        dataset=contract.dataset, day=day, path=str(path), rows=gen.rows_written,
        bytes=path.stat().st_size, faults=gen.faults, warned_rows=len(gen.warned),
        warned=gen.warned, multiline_rows=gen.multiline_rows, text_bytes=gen.text_bytes,
    )
