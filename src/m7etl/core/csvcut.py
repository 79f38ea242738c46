"""Reading a file again for the CSV reader: from its start, with too long rows taken out.

Arrow's reader must hold a whole row within about two blocks. :func:`csvread.read_batches`
grows its block up to ``csvread.MAX_BLOCK_SIZE``; a row longer still is cut out of the
stream here (it becomes one ``row_too_long`` reject) and every other row is read as usual.
Only a file holding such a row goes through this Python stream. Its rows are found as
Arrow finds them: a quote opens a quoted value only at the start of a field, a doubled
quote inside one is a quote, and a line ends at LF, CRLF or a bare CR outside quotes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from m7etl.exceptions import UnreadableFileError

PREVIEW_BYTES = 200  # of a cut row, kept for its reject
CHUNK_BYTES = 1 << 20
_QUOTE, _CR, _LF = 0x22, 0x0D, 0x0A
_BREAK = re.compile(rb"\r\n|\r|\n")


@dataclass
class CutRow:
    """A row taken out of the stream: where it starts, and what is known of it once cut."""

    line: int  # physical line where it starts
    record: int  # its record number in the file (header = 1)
    length: int = 0  # bytes, its line ending excluded
    breaks: int = 0  # line breaks inside it (in quoted values)
    head: bytes = b""  # its first PREVIEW_BYTES bytes
    _ends_cr: bool = False  # the bytes counted so far end with a CR (a CRLF may be split)

    def reset(self) -> None:
        """Forget what an earlier pass counted: every pass over the file cuts the row anew
        (counted twice, a second long row's restart moved every later line and cut a good
        row)."""
        self.length, self.breaks, self.head, self._ends_cr = 0, 0, b"", False

    def take(self, data: bytes) -> None:
        self.length += len(data)
        if len(self.head) < PREVIEW_BYTES:
            self.head += data[:PREVIEW_BYTES - len(self.head)]
        self.breaks += data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
        if self._ends_cr and data[:1] == b"\n":
            self.breaks -= 1  # a CRLF split across two reads is one line break
        if data:
            self._ends_cr = data[-1] == _CR


class Rewound(io.RawIOBase):
    """A seekable stream read from its start at positions of its own (``read_at``), so a
    reader still reading ahead on the stream's own position cannot disturb it."""

    def __init__(self, stream):
        self.stream, self.position = stream, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read_at(len(buffer), self.position)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)


def _breaks(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


class CuttingStream(io.RawIOBase):
    """``source`` (a binary stream at the file's start) without the rows of ``rows``.

    ``on_cut(row)`` is called once a row is cut (its length and line breaks known), before
    any byte after it is handed on."""

    def __init__(self, source, rows: list[CutRow], delimiter: str,
                 on_cut: Callable[[CutRow], None]):
        self.source = source
        self.rows = sorted(rows, key=lambda r: r.line)
        self.on_cut = on_cut
        self.buf = b""
        self.eof = False
        self.line = 1  # physical line at the start of ``buf`` while copying
        self.delimiter = delimiter.encode("ascii")[0]
        self.special = re.compile(b"[" + re.escape(delimiter.encode("ascii")) + rb'"\r\n]')
        self.pieces = self._pieces()
        self.pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` whole unless the stream ends (Arrow takes a short first read
        for a file too short to hold its header)."""
        done = 0
        while done < len(buffer):
            if not len(self.pending):
                piece = next(self.pieces, None)
                if piece is None:
                    break
                self.pending = memoryview(piece)
            n = min(len(buffer) - done, len(self.pending))
            buffer[done:done + n] = self.pending[:n]
            self.pending = self.pending[n:]
            done += n
        return done

    def _fill(self) -> bool:
        """Read more of the source into ``buf``; False at its end."""
        data = b"" if self.eof else self.source.read(CHUNK_BYTES)
        if not data:
            self.eof = True
            return False
        self.buf += bytes(data)
        return True

    def _pieces(self) -> Iterator[bytes]:
        for row in self.rows:
            yield from self._copy_to(row.line)
            self._cut(row)
            self.on_cut(row)
        while self.buf or self._fill():
            yield self.buf
            self.buf = b""

    def _copy_to(self, target: int) -> Iterator[bytes]:
        """Hand on every byte before physical line ``target``."""
        while self.line < target:
            if not self.buf and not self._fill():
                return
            held = 1 if self.buf.endswith(b"\r") and not self.eof else 0  # maybe half a CRLF
            view = self.buf[:len(self.buf) - held]
            if self.line + _breaks(view) < target:
                self.line += _breaks(view)
                yield view
                self.buf = self.buf[len(view):]
                self._fill()
                continue
            for match in _BREAK.finditer(view):
                self.line += 1
                if self.line == target:
                    yield self.buf[:match.end()]
                    self.buf = self.buf[match.end():]
                    return

    def _cut(self, row: CutRow) -> None:
        """Drop the row at the start of ``buf`` and its line ending, counting what it held."""
        row.reset()
        pos, quoted, field_start = 0, False, True
        while True:
            if pos >= len(self.buf):
                row.take(self.buf)
                self.buf, pos = b"", 0
                if not self._fill():
                    break
                continue
            if quoted:
                q = self.buf.find(b'"', pos)
                if q < 0:
                    pos = len(self.buf)
                elif q + 1 == len(self.buf) and not self.eof:  # a doubled quote may follow
                    row.take(self.buf[:q])
                    self.buf, pos = self.buf[q:], 0
                    self._fill()
                elif q + 1 < len(self.buf) and self.buf[q + 1] == _QUOTE:
                    pos = q + 2
                else:
                    quoted, pos = False, q + 1
                continue
            if field_start and self.buf[pos] == _QUOTE:
                quoted, field_start, pos = True, False, pos + 1
                continue
            match = self.special.search(self.buf, pos)
            if match is None:
                pos, field_start = len(self.buf), False
                continue
            at, char = match.start(), self.buf[match.start()]
            if char == self.delimiter:
                pos, field_start = at + 1, True
                continue
            if char == _QUOTE:  # inside an unquoted value: a plain character
                pos, field_start = at + 1, False
                continue
            if char == _CR and at + 1 == len(self.buf) and not self.eof:
                row.take(self.buf[:at])
                self.buf, pos = self.buf[at:], 0
                self._fill()
                continue
            row.take(self.buf[:at])
            ending = 2 if char == _CR and self.buf[at + 1:at + 2] == b"\n" else 1
            self.buf = self.buf[at + ending:]
            self.line = row.line + row.breaks + 1
            return
        if quoted:
            raise UnreadableFileError(
                "parse_error", f"The quoted value opened in the row starting on line {row.line} is "
                               "never closed: the rest of the file is inside it.")
