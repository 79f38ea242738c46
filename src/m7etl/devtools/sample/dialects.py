"""The CSV dialect of a sample file: delimiter, quoting, line ending and encoding.

Rows are built as UTF-8 Arrow text whatever the dialect and re-encoded only at the end,
so the values never depend on the dialect (one seed gives the same rows in every one).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m7etl.exceptions import UsageError

ENCODINGS = ("utf-8", "utf-8-sig", "cp1252")
DELIMITERS = (",", ";")
LINE_ENDINGS = ("\n", "\r\n")

_NEEDS_QUOTES = {",": '[",\n\r]', ";": '[";\n\r]'}


def quote(arr: pa.Array, delimiter: str) -> pa.Array:
    """The cells as CSV fields: quoted (quotes doubled) only where a cell needs it."""
    need = pc.match_substring_regex(arr, _NEEDS_QUOTES[delimiter])
    if not pc.any(need).as_py():
        return arr
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
    return pc.if_else(need, quoted, arr)


def _quote_one(value: str, delimiter: str) -> str:
    if any(ch in value for ch in (delimiter, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


def string_bytes(arr: pa.Array) -> bytes:
    """The concatenated UTF-8 text of a string array without nulls."""
    if isinstance(arr, pa.ChunkedArray):
        return b"".join(string_bytes(c) for c in arr.chunks)
    if arr.type == pa.large_string():
        arr = arr.cast(pa.string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    if data is None or len(arr) == 0:
        return b""
    return data.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()



def encode(utf8: bytes, encoding: str, dataset: str) -> bytes:
    """``utf8`` in ``encoding`` (utf-8-sig: no BOM here, :func:`header` writes it once)."""
    codec = "utf-8" if encoding.lower().startswith("utf") else encoding
    if codec == "utf-8":
        return utf8
    try:
        return utf8.decode("utf-8").encode(codec)
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        raise UsageError(
            f"Dataset {dataset}: the value character {bad!r} cannot be written "
            f"in {encoding}.", hint="Use --encoding utf-8 for this dataset.") from None


def header(names: list[str], delimiter: str, line_ending: str, encoding: str,
           dataset: str) -> bytes:
    """The header line, encoded, with the BOM first for utf-8-sig."""
    line = delimiter.join(_quote_one(n, delimiter) for n in names)
    head = encode((line + line_ending).encode(), encoding, dataset)
    if encoding.lower() == "utf-8-sig":
        head = b"\xef\xbb\xbf" + head
    return head
