"""The demo landing folder for ``make demo``: every dataset, mixed dialects, two bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from m7etl.core.contracts import Registry, load_registry
from m7etl.devtools.sample.columns import Col, key_space
from m7etl.devtools.sample.faults import applicable_faults
from m7etl.devtools.sample.flavours import Flavour
from m7etl.devtools.sample.options import SampleManifest, SampleOptions, check_day
from m7etl.devtools.sample.writer import write_sample
from m7etl.exceptions import UsageError


def write_demo_set(out_dir: str | os.PathLike, day: str, seed: int = 7,
                   registry: Registry | None = None) -> list[SampleManifest]:
    """Write a varied landing folder for ``make demo`` and return one manifest per file.

    Every dataset of the registry gets one ``<Dataset>_<day>`` file with about 2% faults
    (all applicable kinds, about equally) and 3% warned rows, in mixed dialects so the
    reader meets them all (with the built-in contracts):

    * ``Device_<day>.csv`` - ``;`` delimiter, cp1252 (accented regions), LF;
    * ``EPG_<day>.csv`` - UTF-8 with BOM, CRLF, titles with commas, quotes, accents and
      (2% of rows) a quoted newline;
    * ``Viewing_<day>.csv.gz`` - gzip, UTF-8, LF, 5000 rows;
    * ``Channel_<day>.csv`` - plain ``,`` UTF-8 LF, but 20% faults: it fails the default
      5% quality gate (its silver is not promoted, the run reports it).

    Other contracts take the dialects in turn (the first free-text one gets the BOM/CRLF
    variant); the smallest snapshot dataset is the failing one. Two more files must end in
    quarantine without stopping the run; their names collide with no valid file:

    * ``Billing_<day>.csv`` - well-formed CSV of a dataset no contract knows;
    * ``Viewing_<day>.csv`` (the gzip dataset's name with the plain ``.csv`` suffix) -
      binary garbage (a zip header, NUL and undecodable bytes): neither UTF-8 nor cp1252.

    Unreadable files get a manifest with ``rows=0`` and no faults.
    """
    day = check_day(day)
    registry = registry if registry is not None else load_registry()
    contracts = sorted(registry, key=lambda c: c.dataset)
    if not contracts:
        raise UsageError("The contract registry is empty.", hint="Add contract files and retry.")
    sizes = {"Device": 2000, "EPG": 1500, "Viewing": 5000, "Channel": 200}
    cp1252 = dict(delimiter=";", encoding="cp1252")
    bom = dict(encoding="utf-8-sig", line_ending="\r\n", multiline_rate=0.02)
    gz = dict(gzip=True)
    snapshots = [c for c in contracts if c.gold.kind == "snapshot"] or contracts
    failing = min(snapshots, key=lambda c: (sizes.get(c.dataset, 800), c.dataset)).dataset
    dialects: dict[str, dict] = {"Device": cp1252, "EPG": bom, "Viewing": gz}
    dialects = {k: v for k, v in dialects.items() if k in registry.contracts and k != failing}
    free = [c.dataset for c in contracts if c.dataset not in dialects and c.dataset != failing
            and any(Col(col, 0, Flavour(), 0).is_text for col in c.columns
                    if col.type == "string")]
    for variant in (bom, gz, cp1252):
        if variant in dialects.values():
            continue
        pick = [d for d in (free if variant is bom else []) + [c.dataset for c in contracts]
                if d not in dialects and d != failing]
        if pick:
            dialects[pick[0]] = variant
    manifests = []
    for i, contract in enumerate(contracts):
        kinds = applicable_faults(contract)
        rate = 0.2 if contract.dataset == failing else 0.02
        per_kind = round(rate / max(1, len(kinds)), 4)
        rows = sizes.get(contract.dataset, 800)
        if contract.primary_key:
            rows = min(rows, max(1, key_space(contract) // 2))
        opts = SampleOptions(rows=rows, seed=seed + i, faults=dict.fromkeys(kinds, per_kind),
                             warn_rate=0.03, **dialects.get(contract.dataset, {}))
        manifests.append(write_sample(contract, day, out_dir, opts))
    out = Path(out_dir)
    rng = np.random.default_rng([seed, 99])
    unknown = next(n for n in ("Billing", "Invoices", "UnknownFeed")
                   if registry.identify(f"{n}_{day}.csv") is None)
    billing = out / f"{unknown}_{day}.csv"
    lines = ["invoice_id,subscriber_id,amount_eur,issued_on"]
    lines += [f"INV{n:07d},SUB{rng.integers(1e8):08d},{rng.integers(500, 9000) / 100:.2f},"
              f"{day[:4]}-{day[4:6]}-{day[6:]}" for n in range(1, 51)]
    billing.write_bytes(("\n".join(lines) + "\n").encode())
    zipped = [m for m in manifests if m.path.endswith(".gz")]
    victim = zipped[0] if zipped else manifests[0]
    garbage = out / f"{victim.dataset}_{day}.csv{'' if zipped else '.gz'}"
    noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    garbage.write_bytes(b"PK\x03\x04\x14\x00\x08\x00" + b"\x00\x81\x8d\x8f\x90\x9d" + noise)
    for p, ds in ((billing, unknown), (garbage, victim.dataset)):
        manifests.append(SampleManifest(dataset=ds, day=day, path=str(p), rows=0,
                                        bytes=p.stat().st_size, faults=[], warned_rows=0))
    return manifests
