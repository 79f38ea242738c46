"""Small builders shared by the tests."""

from __future__ import annotations

import gzip as gzip_module
from pathlib import Path

from m7etl.core.contracts import parse_contract

# The shared folder (test data such as csv-spectrum) lies beside the clone, here and in CI.
SHARED = Path(__file__).resolve().parents[2] / "shared"


def csv_bytes(rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8",
              line_ending: str = "\n", gzip: bool = False) -> bytes:
    """Rows (header first) as CSV; fields are written as given (quote them in the test)."""
    text = line_ending.join(delimiter.join(r) for r in rows) + line_ending
    data = text.encode(encoding)
    return gzip_module.compress(data, mtime=0) if gzip else data


def string_contract(names: list[str], dataset: str = "Spectrum"):
    """A permissive contract: every column an optional string."""
    return parse_contract({
        "dataset": dataset,
        "columns": [{"name": n, "type": "string"} for n in names],
        "gold": {"kind": "aggregate", "group_by": [names[0]], "metrics": [{"name": "n", "agg": "count"}]},
    }, f"<{dataset}>")
