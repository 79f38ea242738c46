"""Reading a raw CSV file as a stream of string batches, whatever its dialect.

The dialect is found from the first bytes: gzip (by magic number), binary content, BOM,
encoding (the contract's list, tried in order), delimiter (the contract's candidates,
scored on the header). Every field is read as a string (empty stays empty, zip codes stay
text); typing is validation's job. Rows with the wrong number of fields are handed to a
callback with their record number instead of stopping the file. Each row gets the
physical line number where it starts, counting quoted line breaks (LF, CRLF or a bare CR)
and blank lines. A line whose every field is empty (an empty line, or the header's number
of empty fields, as spreadsheets export blank rows: Arrow reads both alike) holds no value:
it is counted as blank, not a row. A line of spaces is a one-field row, as Arrow reads it
(so, in a file of several columns, a column_count reject). A row longer
than the block is read by growing the block, up to ``MAX_BLOCK_SIZE``; a longer one is cut
out (:mod:`csvcut`) and reported as too long, the rest of the file read as usual.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from m7etl.core.contracts import Contract
from m7etl.core.csvcut import CutRow, CuttingStream, Rewound
from m7etl.exceptions import UnreadableFileError

HEAD_BYTES = 256 * 1024
BLOCK_SIZE = 8 * 1024 * 1024  # 16 MiB blocks pass 1 GiB peak RSS on a 2 GB file; 8 MiB stay near 700 MB
# A row must fit in about two blocks. The block doubles (re-reading the file) up to this;
# a row longer than it is cut out. The reader then holds a few such blocks: 128 MiB keeps
# it well inside the raw_to_silver function's 2 GB.
MAX_BLOCK_SIZE = 128 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = codecs.BOM_UTF8


@dataclass
class LineTally:
    """What :func:`read_batches` met besides rows, for the file's report (set as it reads)."""

    physical: int = 0  # lines of the file, header included (an unterminated last line too)
    blank: int = 0  # lines holding no value: not rows


@dataclass
class Dialect:
    encoding: str
    delimiter: str
    gzip: bool
    bom: bool
    header: list[str]  # names as written in the file
    columns: list[str]  # normalised names (contract names where they match)
    missing_optional: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    utf8_proven: bool = False  # UTF-8 by its BOM or by non-ASCII characters in the head
    mark_undecodable: bool = False  # read through MARKED_UTF8 (see there)
    lines: LineTally = field(default_factory=LineTally)  # filled by read_batches

    def describe(self) -> dict:
        return {"encoding": self.encoding + ("-sig" if self.bom else ""), "delimiter": self.delimiter,
                "gzip": self.gzip}


class _Prefixed(io.RawIOBase):
    """A stream that first replays bytes already read (the sniffed head), then the rest."""

    def __init__(self, head: bytes, rest):
        self.head = memoryview(head)
        self.rest = rest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            out = bytes(self.head) + self.rest.read()
            self.head = memoryview(b"")
            return out
        if self.head.nbytes:
            out = bytes(self.head[:n])
            self.head = self.head[n:]
            if len(out) < n:
                out += self.rest.read(n - len(out))
            return out
        return self.rest.read(n)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_head(stream, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(bytes(chunk))
        remaining -= len(chunk)
    return b"".join(chunks)


def _decode_head(head: bytes, encoding: str, complete: bool) -> str | None:
    try:
        return codecs.getincrementaldecoder(encoding)().decode(head, final=complete)
    except UnicodeDecodeError:
        return None


# A file proven UTF-8 (BOM, or UTF-8 characters in its head) that holds bytes that are not
# UTF-8 stops Arrow's read (a string conversion error, or a parse error when the row has
# the wrong number of fields: Arrow must decode it to hand it over). It is read again
# through this codec, which turns each such byte into U+F780 + byte (private use area,
# valid UTF-8), so every row parses and the marked ones are rejected with their bytes
# shown as \xNN. Only that retry pays for the transcoding.
MARKED_UTF8 = "m7etl_utf8_marked"
_MARK = 0xF780
_MARKS = "[\uF780-\uF87F]"


def _mark_bytes(error: UnicodeDecodeError) -> tuple[str, int]:
    return "".join(chr(_MARK + b) for b in error.object[error.start:error.end]), error.end


codecs.register_error(MARKED_UTF8, _mark_bytes)


class _MarkingDecoder(codecs.getincrementaldecoder("utf-8")):
    def __init__(self, errors: str = "strict"):
        super().__init__(MARKED_UTF8)  # whatever the caller asks: mark, never fail


def _find_marked_utf8(name: str) -> codecs.CodecInfo | None:
    if name != MARKED_UTF8:
        return None
    utf8 = codecs.lookup("utf-8")

    def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
        return codecs.utf_8_decode(data, MARKED_UTF8, True)

    return codecs.CodecInfo(utf8.encode, decode, incrementalencoder=utf8.incrementalencoder,
                            incrementaldecoder=_MarkingDecoder, name=MARKED_UTF8)


codecs.register(_find_marked_utf8)


def render_marks(text: str) -> str:
    """The marked bytes of ``text`` written as \\xNN, as in the raw file."""
    return re.sub(_MARKS, lambda m: f"\\x{ord(m.group()) - _MARK:02x}", text)


_ESCAPED = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, after surrogateescape
_NON_ASCII = re.compile("[^\x00-\x7f]")


def _utf8_evidence(body: bytes) -> bool:
    """The bytes are UTF-8 text, maybe with a few bad bytes: at least as many well-formed
    multi-byte characters as stray high bytes. cp1252 text almost never forms UTF-8 sequences
    ("é" is one byte E9 there, and E9 needs two continuation bytes after it), so such a head
    is not cp1252 and must not be read as it.

    Decoded with ``surrogateescape``, each well-formed sequence is one character above ASCII
    and each stray byte one escape (U+DC80-U+DCFF): 1.5 ms for a 256 KB head, where a regex
    of the sequences and a loop over the bytes took 8 ms."""
    if body.isascii():
        return False
    text = body.decode("utf-8", "surrogateescape")
    stray = len(_ESCAPED.findall(text))
    return len(_NON_ASCII.findall(text)) - stray >= stray


def _normalise(name: str) -> str:
    return name.strip().strip('"').strip().lower().replace(" ", "_")


def sniff(head: bytes, contract: Contract, *, complete: bool, gzip: bool,
          exclude: list[str] = ()) -> Dialect:
    """Find encoding, delimiter and header from the file's first bytes, or say why not."""
    if not head.strip(b" \t\r\n"):
        raise UnreadableFileError("empty", "The file is empty (no header, no rows).")
    if b"\x00" in head:
        raise UnreadableFileError("binary", "The file holds binary data (NUL bytes), not CSV text.")
    bom = head.startswith(UTF8_BOM)
    body = head[len(UTF8_BOM):] if bom else head
    utf8_text = bom or _utf8_evidence(body)
    if "utf-8" in exclude and utf8_text:
        # Its first part holds real UTF-8 characters: another encoding would garble them.
        raise UnreadableFileError(
            "encoding", "The file is UTF-8 text with non-ASCII characters, but a row with the "
                        "wrong number of fields holds bytes that are not UTF-8; read as another "
                        "encoding its accented letters would be garbled. Repair or re-export it as "
                        "UTF-8 and land it again.")
    encodings = [e for e in (("utf-8",) if bom else contract.dialect.encodings) if e not in exclude]
    text = encoding = None
    for candidate in encodings:
        text = _decode_head(body, candidate, complete)
        if text is None and candidate == "utf-8" and utf8_text:
            text = body.decode("utf-8", "replace")  # UTF-8 with a few bad bytes: rows rejected
        if text is not None:
            encoding = candidate
            break
    if text is None:
        tried = " or ".join([*exclude, *encodings])
        raise UnreadableFileError("encoding", f"The file is not valid {tried} text"
                                  + (" throughout." if exclude else "."))
    # Lines end at LF, CRLF or a bare CR (classic Mac files), as Arrow's reader splits rows.
    ends = [at for at in (text.find("\n"), text.find("\r")) if at >= 0]
    end = min(ends) if ends else -1
    if end < 0 and not complete:
        raise UnreadableFileError("no_header", f"No line break in the first {HEAD_BYTES} bytes: "
                                               "this is not a CSV file with a header.")
    header_line = text if end < 0 else text[:end]
    wanted = {c.name for c in contract.columns}
    best = None
    for delimiter in contract.dialect.delimiters:
        names = next(csv.reader([header_line], delimiter=delimiter), [])
        score = len({_normalise(n) for n in names} & wanted)
        if best is None or score > best[0]:
            best = (score, delimiter, names)
    score, delimiter, names = best
    if score == 0:
        raise UnreadableFileError(
            "bad_header", f"The first line {header_line[:120]!r} names none of the "
                          f"{contract.dataset} columns ({', '.join(sorted(wanted))}).")
    columns = [_normalise(n) for n in names]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise UnreadableFileError("bad_header", f"The header repeats column(s) {', '.join(dupes)}.")
    missing = [c for c in contract.columns if c.name not in columns]
    missing_required = [c.name for c in missing if c.required]
    if missing_required:
        raise UnreadableFileError(
            "missing_columns", f"The header lacks required column(s) {', '.join(missing_required)}.")
    return Dialect(
        encoding=encoding, delimiter=delimiter, gzip=gzip, bom=bom, header=names, columns=columns,
        missing_optional=[c.name for c in missing],
        extra=[n for n, c in zip(names, columns, strict=True) if c not in wanted],
        utf8_proven=encoding == "utf-8" and utf8_text,
    )


@dataclass
class Positions:
    """Tracks record and line numbers across batches (header = record 1, line 1).

    Arrow reads every physical line as a record (``ignore_empty_lines`` is off: an empty
    line is a row of empty values), so a batch's rows and the rows taken out of it (invalid
    rows handed to the callback, rows cut for being too long) are consecutive records, each
    spanning one line plus the line breaks inside its quoted values."""

    next_record: int = 2
    next_line: int = 2
    pending: list[tuple[int, int, object]] = field(default_factory=list)  # (record, lines, what)

    def take_out(self, record: int, lines: int, what: object) -> None:
        self.pending.append((record, lines, what))

    def place(self, newlines: np.ndarray, resume: int = 0
              ) -> tuple[np.ndarray, int, list[tuple[int, int, object]]]:
        """Line numbers of a batch's rows (``newlines`` quoted line breaks each), how many
        of the first ones come before record ``resume``, and the taken-out rows that fell
        among them as (record, line, what)."""
        n = len(newlines)
        self.pending.sort(key=lambda item: item[0])
        k = 0
        while k < len(self.pending) and self.pending[k][0] <= self.next_record + n + k:
            k += 1
        placed, self.pending = self.pending[:k], self.pending[k:]
        total = n + k
        spans = newlines + 1
        if k:  # rare: spans of the taken-out rows inserted among the rows'
            at = np.array([record - self.next_record for record, _lines, _what in placed], dtype=np.int64)
            rows = np.delete(np.arange(total, dtype=np.int64), at)
            spans = np.insert(spans, at - np.arange(k), [lines for _record, lines, _what in placed])
        ends = np.cumsum(spans)
        starts = ends - spans + self.next_line
        out = []
        skip = 0
        if k:
            out = [(self.next_record + int(i), int(starts[i]), what)
                   for i, (_r, _l, what) in zip(at, placed, strict=True)]
            starts = starts[rows]
            if self.next_record < resume:
                skip = int(np.searchsorted(rows + self.next_record, resume))
        elif self.next_record < resume:
            skip = min(n, resume - self.next_record)
        self.next_record += total
        self.next_line += int(ends[-1]) if total else 0
        return starts, skip, out


def _line_breaks(text: str) -> int:
    """Line breaks in ``text``: LF, CRLF and a bare CR each end a line (as in Arrow's reader)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _has_newline(column: pa.Array) -> bool:
    """A fast scan of the column's character buffer (quoted line breaks are rare): True if
    it may hold an LF or a CR (bytes 10 to 13 in one comparison)."""
    if column.offset != 0:
        return bool(pc.any(pc.match_substring_regex(column, "[\n\r]")).as_py())
    data = column.buffers()[2]
    if data is None:
        return False
    text = data.to_pybytes()  # a copy, and two memchr scans: far faster than numpy's compare
    return text.find(b"\n") >= 0 or text.find(b"\r") >= 0


def _newlines(batch: pa.RecordBatch) -> np.ndarray:
    """Quoted line breaks inside each row's values (so line numbers stay exact)."""
    counts = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        if len(column) and _has_newline(column):
            c = pc.subtract(pc.add(pc.count_substring(column, "\n"), pc.count_substring(column, "\r")),
                            pc.count_substring(column, "\r\n"))
            counts += pc.fill_null(c, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return counts


def _empty_rows(batch: pa.RecordBatch) -> np.ndarray:
    """Rows whose every field is empty (an empty line, as Arrow reads it), from the
    columns' offsets: the first column's empty values, then the others at those rows only."""
    rows = np.zeros(0, dtype=np.int64)
    for k, column in enumerate(batch.columns if batch.num_rows else ()):
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32,
                                count=len(column) + 1, offset=4 * column.offset)
        rows = (np.flatnonzero(offsets[1:] == offsets[:-1]) if k == 0
                else rows[offsets[rows + 1] == offsets[rows]])
        if not len(rows):
            break
    return rows


@dataclass
class Batch:
    data: pa.RecordBatch  # string columns named by the normalised header
    lines: np.ndarray  # line number of each row
    # (line, text, expected fields, found fields); for a row too long to read,
    # (line, its first bytes, its length in bytes, None)
    invalid: list[tuple[int, str, int, int | None]]
    # Rows of a UTF-8 file holding bytes that are not UTF-8: (line, column, value, record JSON),
    # the bytes shown as \xNN. They are not in ``data``.
    undecodable: list[tuple[int, str, str, str]] = field(default_factory=list)


def _native(raw) -> pa.NativeFile:
    return raw if isinstance(raw, pa.NativeFile) else pa.PythonFile(raw, mode="r")


def peek(raw) -> tuple[bytes, bool]:
    """The first ``HEAD_BYTES`` of text (gunzipped when the gzip magic number is there).

    Only the gzip decoder's own errors make the file unreadable; a failing read of the
    stream (a reset connection, a disk error, the storage's errors) goes up as it is."""
    magic = _read_head(raw, 2)
    is_gzip = magic == GZIP_MAGIC
    if not is_gzip:
        return magic + _read_head(raw, HEAD_BYTES - len(magic)), False
    stream = pa.CompressedInputStream(_native(_Prefixed(magic, raw)), "gzip")
    try:
        return _read_head(stream, HEAD_BYTES), True
    except (OSError, pa.ArrowInvalid) as exc:
        if not is_decoder_error(exc):
            raise
        raise UnreadableFileError("gzip", f"The gzip data is corrupt: {exc}.") from None


def is_decoder_error(exc: BaseException) -> bool:
    """The error is Arrow's gzip decoder refusing the data, not the stream under it failing.

    Arrow reports corrupt or truncated compressed data ("zlib inflate failed", "Truncated
    compressed stream") as a plain ``OSError`` without an errno. A failing disk, a full
    temporary folder or a reset socket carries an errno (ENOSPC, EIO, ECONNRESET), an error
    raised by a Python stream comes back as its own class (``ConnectionResetError``,
    botocore's ``ReadTimeoutError``, the storage's ``TransientStorageError``)."""
    if isinstance(exc, pa.ArrowInvalid):
        return True
    return type(exc) is OSError and exc.errno is None


def text_stream(raw, is_gzip: bool) -> pa.NativeFile:
    """The whole file as a native Arrow stream (no Python in the read loop for local files)."""
    native = _native(raw)
    return pa.CompressedInputStream(native, "gzip") if is_gzip else native


def split_undecodable(batch: pa.RecordBatch, lines: np.ndarray
                      ) -> tuple[pa.RecordBatch, np.ndarray, list[tuple[int, str, str, str]]]:
    """Take out the rows whose text went through MARKED_UTF8 with marks in it (bytes that
    are not UTF-8), as rejects with those bytes written as \\xNN."""
    first_bad: dict[int, str] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        hits = pc.fill_null(pc.match_substring_regex(column, _MARKS), False)
        for row in np.flatnonzero(hits.to_numpy(zero_copy_only=False)):
            first_bad.setdefault(int(row), name)
    if not first_bad:
        return batch, lines, []
    rows = sorted(first_bad)
    entries = []
    for row, values in zip(rows, batch.take(pa.array(rows)).to_pylist(), strict=True):
        record = {k: render_marks(v) for k, v in values.items()}
        column = first_bad[row]
        entries.append((int(lines[row]), column, record[column], json.dumps(record, ensure_ascii=False)))
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[rows] = False
    return batch.filter(pa.array(keep)), lines[keep], entries


def _on_invalid_undecodable(unraisable) -> bool:
    """Arrow failed to decode an invalid row for :func:`read_batches`' callback."""
    target = getattr(unraisable, "object", None)
    return (isinstance(unraisable.exc_value, UnicodeDecodeError)
            and getattr(target, "__qualname__", "") == "_read_pass.<locals>.on_invalid"
            and getattr(target, "__module__", "") == __name__)


def _quiet_undecodable_rows() -> None:
    """Keep Arrow's "Exception ignored" traceback out of the logs when a broken row is not valid
    text in the sniffed encoding: Arrow then raises a parse error that the caller turns into
    an encoding fallback (see raw_to_silver), an expected case. Every other unraisable
    exception still reaches the hook that was in place."""
    previous = sys.unraisablehook
    if getattr(previous, "m7etl_filter", False):
        return

    def hook(unraisable) -> None:
        if not _on_invalid_undecodable(unraisable):
            previous(unraisable)

    hook.m7etl_filter = True
    sys.unraisablehook = hook


def read_batches(stream, dialect: Dialect, *, block_size: int = BLOCK_SIZE,
                 max_block_size: int = MAX_BLOCK_SIZE, reopen=None) -> Iterator[Batch]:
    """Yield string batches with their line numbers; invalid rows are reported, not raised.

    A row too long for the block restarts the read with a block twice as large (up to
    ``max_block_size``), or, past it, with that row cut out; the rows already yielded are
    not yielded again. A restart reads the file from its start: ``reopen()`` gives a new
    stream, else ``stream`` is read again by position (it must then be seekable; if not,
    the file is unreadable, reason ``row_too_long``). ``dialect.lines`` gets the file's
    physical and blank lines."""
    _quiet_undecodable_rows()
    resume = 2  # the first record not yielded yet
    cuts: list[CutRow] = []
    source, opened = stream, []
    try:
        while True:
            positions = Positions()
            reading = source
            if cuts:
                reading = CuttingStream(source, cuts, dialect.delimiter, on_cut=lambda row, p=positions:
                                        p.take_out(row.record, 1 + row.breaks, row))
            if not isinstance(reading, pa.NativeFile):
                reading = pa.PythonFile(reading, mode="r")
            try:
                for batch in _read_pass(reading, dialect, block_size, positions, cuts, resume):
                    yield batch
                    resume = positions.next_record
                dialect.lines.physical = positions.next_line - 1
                return
            except pa.ArrowInvalid as exc:
                if "straddling object" not in str(exc):
                    raise
            positions.place(np.zeros(0, dtype=np.int64))  # the long row follows these
            if block_size < max_block_size:
                block_size = min(2 * block_size, max_block_size)
            else:
                cuts.append(CutRow(line=positions.next_line, record=positions.next_record))
            source = _again(stream, reopen, positions.next_line)
            opened.append(source)
    finally:
        for again in opened:  # only now: an abandoned reader may still be reading ahead
            again.close()


def _again(stream, reopen, line: int):
    """The file from its start once more, to read it with a larger block or a row cut out.

    Never ``stream`` itself rewound: the abandoned reader's read-ahead thread may still be
    reading it, so a rewind would hand the new reader bytes from the middle."""
    if reopen is not None:
        return reopen()
    if stream.seekable():
        return Rewound(stream)
    raise UnreadableFileError(
        "row_too_long", f"The row starting on line {line} is longer than the reader's block, and "
                        "this stream cannot be read a second time with a larger one.")


def _read_pass(stream, dialect: Dialect, block_size: int, positions: Positions,
               cuts: list[CutRow], resume: int) -> Iterator[Batch]:
    """One read of the file: its batches from record ``resume`` on."""
    cut_records = sorted(row.record for row in cuts)

    def in_file(number: int) -> int:
        """Arrow's record number -> the file's (the cut rows are not in Arrow's stream)."""
        for record in cut_records:
            number += number >= record
        return number

    read_options = pacsv.ReadOptions(
        use_threads=False,  # keeps the record numbers of invalid rows (and memory flat)
        block_size=block_size,
        skip_rows=1,
        column_names=dialect.columns,
        encoding=(MARKED_UTF8 if dialect.mark_undecodable
                  else "utf8" if dialect.encoding == "utf-8" else dialect.encoding),
    )

    def on_invalid(row) -> str:
        text = render_marks(row.text) if dialect.mark_undecodable else row.text
        positions.take_out(in_file(row.number), 1 + _line_breaks(text),
                           (text, row.expected_columns, row.actual_columns))
        return "skip"

    parse_options = pacsv.ParseOptions(
        delimiter=dialect.delimiter, quote_char='"', double_quote=True,
        newlines_in_values=True, invalid_row_handler=on_invalid,
        ignore_empty_lines=False,  # an empty line is a record: line numbers stay exact
    )
    convert_options = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in dialect.columns},
        strings_can_be_null=False, quoted_strings_can_be_null=False,
    )
    reader = pacsv.open_csv(stream, read_options=read_options, parse_options=parse_options,
                            convert_options=convert_options)
    for batch in reader:
        lines, skip, placed = positions.place(_newlines(batch), resume)
        if skip:  # read before a restart: already yielded
            batch, lines = batch.slice(skip), lines[skip:]
        empty = _empty_rows(batch)
        if len(empty):
            dialect.lines.blank += len(empty)
            keep = np.ones(batch.num_rows, dtype=bool)
            keep[empty] = False
            batch, lines = batch.filter(pa.array(keep)), lines[keep]
        undecodable = []
        if dialect.mark_undecodable:
            batch, lines, undecodable = split_undecodable(batch, lines)
        yield Batch(batch, lines, _taken_out(placed, resume, dialect.encoding), undecodable)
    # Invalid rows after the last good row; any not contiguous are kept without a line number.
    _lines, _skip, placed = positions.place(np.zeros(0, dtype=np.int64))
    placed += [(record, None, what) for record, _lines, what in positions.pending]
    invalid = _taken_out(placed, resume, dialect.encoding)
    if invalid:
        yield Batch(None, np.zeros(0, dtype=np.int64), invalid)


def _taken_out(placed: list[tuple[int, int | None, object]], resume: int,
               encoding: str) -> list[tuple]:
    """The rows taken out of a batch, as ``Batch.invalid`` entries."""
    out = []
    for record, line, what in placed:
        if record < resume:
            continue
        if isinstance(what, CutRow):
            preview = what.head.decode(encoding, "replace") + ("..." if what.length > len(what.head) else "")
            out.append((line, preview, what.length, None))
        else:
            out.append((line, *what))
    return out
