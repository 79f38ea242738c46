"""The reader's line accounting and its long rows, at the reader itself (small blocks)."""

from __future__ import annotations

import gzip
import io

import pyarrow as pa
import pytest
from helpers import string_contract

import m7etl.core.csvcut as csvcut
from m7etl.core.csvread import peek, read_batches, sniff, text_stream
from m7etl.exceptions import UnreadableFileError

BLOCKS = {"block_size": 256, "max_block_size": 1024}  # a row over ~1 KiB is "too long"


def read(data: bytes, stream=None, **options):
    """(rows as (line, a, b), invalid entries, the dialect's line tally) of a file a,b."""
    head, is_gzip = peek(io.BytesIO(data))
    dialect = sniff(head, string_contract(["a", "b"]), complete=True, gzip=is_gzip)
    rows, invalid = [], []
    stream = stream if stream is not None else pa.BufferReader(data)
    for batch in read_batches(stream, dialect, **{**BLOCKS, **options}):
        invalid += batch.invalid
        if batch.data is not None:
            rows += [(int(line), r["a"], r["b"]) for line, r in zip(batch.lines, batch.data.to_pylist(),
                                                                    strict=True)]
    return rows, invalid, dialect.lines


@pytest.mark.parametrize("chunk", [5, 64, 1 << 20])
@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_a_row_over_the_limit_is_cut_whatever_it_holds(monkeypatch, chunk, eol):
    """Doubled quotes, delimiters and line breaks inside the quoted value, a quote inside an
    unquoted value, and the cutter's reads ending anywhere (a CRLF or a doubled quote split)."""
    monkeypatch.setattr(csvcut, "CHUNK_BYTES", chunk)
    value = ('say ""hi"", then' + eol) * 200  # 200 line breaks, in quotes: about 3.4 KB
    long_row = f'2,"{value}"x"y'  # a quote after the closing one is a plain character
    text = eol.join(["a,b", "1,one", long_row, "3,three", "", "4,fo\"ur", ""])
    rows, invalid, lines = read(text.encode())
    # line 3: the long row (201 lines: 3-203), 204: "3,three", 205 blank, 206 "4,fo"ur"
    assert rows == [(2, "1", "one"), (204, "3", "three"), (206, "4", 'fo"ur')]
    assert [(line, found) for line, _text, _length, found in invalid] == [(3, None)]
    _line, preview, length, _found = invalid[0]
    assert length == len(long_row.encode()) and preview == long_row[:200] + "..."
    assert (lines.physical, lines.blank) == (206, 1)


def test_several_long_rows_and_one_ending_the_file():
    big = "z" * 3000
    text = "\n".join(["a,b", f"1,{big}", "2,two", f"3,{big}", "4,four", f"5,{big}"])  # no final LF
    rows, invalid, lines = read(text.encode())
    assert rows == [(3, "2", "two"), (5, "4", "four")]
    assert [(line, length) for line, _t, length, _f in invalid] == [(2, 3002), (4, 3002), (6, 3002)]
    assert lines.physical == 6


def test_rows_up_to_the_limit_are_read_whole():
    """The block doubles (256 -> 512 -> 1024): a row of 900 bytes needs no cut."""
    text = "a,b\n1,one\n2," + "y" * 900 + "\n3,three\n"
    rows, invalid, _lines = read(text.encode())
    assert [line for line, _a, _b in rows] == [2, 3, 4] and rows[1][2] == "y" * 900
    assert invalid == []


def test_an_unterminated_quote_is_a_parse_error_naming_its_line():
    text = "a,b\n1,one\n2,\"never closed\n" + "3,filler\n" * 400
    with pytest.raises(UnreadableFileError) as caught:
        read(text.encode())
    assert caught.value.reason == "parse_error" and "line 3" in caught.value.message


def test_a_stream_read_once_is_reopened_or_refused():
    """A gzip stream cannot be rewound: ``reopen`` gives the restart a new one; without it the
    file is unreadable with that reason (not Arrow's "straddling object" message)."""
    text = ("a,b\n1,one\n2," + "w" * 3000 + "\n3,three\n").encode()
    packed = gzip.compress(text, mtime=0)

    def stream():
        return text_stream(pa.BufferReader(packed), True)

    rows, invalid, _lines = read(packed, stream=stream(), reopen=stream)
    assert (rows, [i[0] for i in invalid]) == ([(2, "1", "one"), (4, "3", "three")], [3])
    with pytest.raises(UnreadableFileError) as caught:
        read(packed, stream=stream())
    assert caught.value.reason == "row_too_long" and "line 3" in caught.value.message


def test_two_long_rows_with_line_breaks_keep_every_later_line():
    """Each long row restarts the read, and every pass cuts the earlier ones again: their
    line breaks were counted once per pass, so after the second cut every later line moved
    and the row after a long one was cut as "too long" instead of read."""
    long_value = '"' + "x\n" * 1500 + '"'  # 1,500 line breaks, about 3 KB: over the limit
    text = "\n".join(["a,b", f"1,{long_value}", "2,two", f"3,{long_value}", "4,four", "5,five", ""])
    rows, invalid, lines = read(text.encode())
    # line 2: the first long row (lines 2-1502), 1503 "2,two", 1504-3004 the second, 3005, 3006
    assert rows == [(1503, "2", "two"), (3005, "4", "four"), (3006, "5", "five")]
    assert [line for line, _t, _l, _f in invalid] == [2, 1504]
    assert lines.physical == 3006
