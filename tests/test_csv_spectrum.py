"""The csv-spectrum acid test: the reader returns exactly the records a correct parser does."""

from __future__ import annotations

import io
import json

import pytest
from helpers import SHARED, string_contract

from m7etl.core.csvread import peek, read_batches, sniff, text_stream

SPECTRUM = SHARED / "testdata" / "csv-spectrum"
# Upstream erratum: csv-spectrum 2.0.0's location_coordinates.json gives the phone number
# 1234567890 while its CSV holds 2095257564 (and the JSON is one object, not a list).
ERRATA = {"location_coordinates": {"Contact Phone Number": "2095257564"}}
CASES = sorted(p.stem for p in (SPECTRUM / "csvs").glob("*.csv")) if SPECTRUM.is_dir() else []


@pytest.mark.skipif(not CASES, reason=f"csv-spectrum not found at {SPECTRUM}")
@pytest.mark.parametrize("case", CASES)
def test_csv_spectrum(case):
    expected = json.loads((SPECTRUM / "json" / f"{case}.json").read_text(encoding="utf-8"))
    if isinstance(expected, dict):
        expected = [expected]
    expected = [{**record, **ERRATA.get(case, {})} for record in expected]
    data = (SPECTRUM / "csvs" / f"{case}.csv").read_bytes()
    if case.endswith("_crlf") and b"\r" not in data:
        # This copy of the *_crlf files lost its CR bytes (line-ending normalisation), while
        # the JSON still expects them: restore the CRLF the fixture is about.
        data = data.replace(b"\n", b"\r\n")
    header = list(expected[0])
    names = [h.strip().lower().replace(" ", "_") for h in header]
    contract = string_contract(names)
    head, is_gzip = peek(io.BytesIO(data))
    dialect = sniff(head, contract, complete=True, gzip=is_gzip)
    records = []
    for batch in read_batches(text_stream(io.BytesIO(data), is_gzip), dialect):
        assert not batch.invalid
        records += batch.data.to_pylist()
    assert [dict(zip(header, r.values(), strict=True)) for r in records] == expected
