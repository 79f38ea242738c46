"""Random strings matching a contract's ``pattern``: a small regex subset, parsed here.

Only what a column pattern needs is supported (literals, ``[...]`` classes, ``\\d \\w \\s .``,
groups with ``|`` and the usual quantifiers); anything else raises :class:`PatternError` so
the caller can say which column to simplify instead of writing values that do not match.
Open-ended quantifiers are capped (``*`` and ``+`` at 3, ``{n,}`` at n+3) to keep values short.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEY_CAP = 1 << 62  # key spaces are counted up to this (a uint64 index never overflows)

_DIGITS = string.digits
_WORD = string.ascii_letters + string.digits + "_"
_ANY = string.ascii_letters + string.digits


class PatternError(Exception):
    pass


@dataclass
class _Chars:
    chars: str


@dataclass
class _Group:
    alts: list[list[tuple[Any, int, int]]]


class _RegexParser:
    """Parses the regex subset into nested items ``(atom, min_count, max_count)``."""

    def __init__(self, text: str):
        if text.startswith("^"):
            text = text[1:]
        if text.endswith("$") and not text.endswith("\\$"):
            text = text[:-1]
        self.s, self.i = text, 0

    def parse(self) -> _Group:
        group = self.alternation()
        if self.i != len(self.s):
            raise PatternError(f"unexpected {self.s[self.i]!r}")
        return group

    def peek(self) -> str | None:
        return self.s[self.i] if self.i < len(self.s) else None

    def take(self) -> str:
        ch = self.s[self.i]
        self.i += 1
        return ch

    def alternation(self) -> _Group:
        alts = [self.sequence()]
        while self.peek() == "|":
            self.take()
            alts.append(self.sequence())
        return _Group(alts)

    def sequence(self) -> list:
        items = []
        while self.peek() not in (None, "|", ")"):
            atom = self.atom()
            lo, hi = self.quantifier()
            items.append((atom, lo, hi))
        return items

    def atom(self):
        ch = self.take()
        if ch == "(":
            if self.s.startswith("?:", self.i):
                self.i += 2
            elif self.s.startswith("?P<", self.i):
                self.i = self.s.index(">", self.i) + 1
            elif self.peek() == "?":
                raise PatternError("look-arounds are not supported")
            group = self.alternation()
            if self.peek() != ")":
                raise PatternError("unbalanced parenthesis")
            self.take()
            return group
        if ch == "[":
            return _Chars(self.char_class())
        if ch == "\\":
            return _Chars(self.escape())
        if ch == ".":
            return _Chars(_ANY)
        if ch in "*+?{^$":
            raise PatternError(f"unexpected {ch!r}")
        return _Chars(ch)

    def escape(self) -> str:
        ch = self.take()
        if ch == "d":
            return _DIGITS
        if ch == "w":
            return _WORD
        if ch == "s":
            return " "
        if ch.isalnum():
            raise PatternError(f"escape \\{ch} is not supported")
        return ch

    def char_class(self) -> str:
        negate = self.peek() == "^"
        if negate:
            self.take()
        chars: list[str] = []
        first = True
        while True:
            if self.peek() is None:
                raise PatternError("unterminated character class")
            ch = self.take()
            if ch == "]" and not first:
                break
            first = False
            if ch == "\\":
                chars.extend(self.escape())
                continue
            if self.peek() == "-" and self.i + 1 < len(self.s) and self.s[self.i + 1] != "]":
                self.take()
                end = self.take()
                if end == "\\":
                    end = self.take()
                chars.extend(chr(c) for c in range(ord(ch), ord(end) + 1))
            else:
                chars.append(ch)
        if negate:
            chars = [c for c in _ANY if c not in chars]
        unique = "".join(dict.fromkeys(chars))
        if not unique:
            raise PatternError("empty character class")
        return unique

    def quantifier(self) -> tuple[int, int]:
        ch = self.peek()
        if ch == "?":
            lo, hi = 0, 1
        elif ch == "*":
            lo, hi = 0, 3
        elif ch == "+":
            lo, hi = 1, 3
        elif ch == "{":
            end = self.s.index("}", self.i)
            body = self.s[self.i + 1:end]
            if "," in body:
                a, b = body.split(",", 1)
                lo = int(a or 0)
                hi = int(b) if b.strip() else lo + 3
            else:
                lo = hi = int(body)
            self.i = end
        else:
            return 1, 1
        self.take()
        if self.peek() in ("?", "+"):  # lazy / possessive: same strings
            self.take()
        return lo, hi


def _gen_chars(rng: np.random.Generator, n: int, chars: str, lo: int, hi: int) -> pa.Array:
    if hi == 0 or n == 0:
        return pa.array(np.zeros(n, dtype="U1"))
    codes = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)
    cells = codes[rng.integers(0, len(codes), (n, hi))]
    if lo < hi:
        lengths = rng.integers(lo, hi + 1, n)
        cells[np.arange(hi)[None, :] >= lengths[:, None]] = 0
    return pa.array(np.ascontiguousarray(cells).view(f"<U{hi}").ravel())


def _gen_group(rng: np.random.Generator, n: int, group: _Group) -> pa.Array:
    alts = [_gen_sequence(rng, n, seq) for seq in group.alts]
    if len(alts) == 1:
        return alts[0]
    return pc.choose(pa.array(rng.integers(0, len(alts), n).astype(np.int8)), *alts)


def _gen_sequence(rng: np.random.Generator, n: int, seq: list) -> pa.Array:
    parts = []
    for atom, lo, hi in seq:
        if isinstance(atom, _Chars):
            parts.append(_gen_chars(rng, n, atom.chars, lo, hi))
            continue
        reps = rng.integers(lo, hi + 1, n) if lo < hi else None
        for j in range(hi):
            part = _gen_group(rng, n, atom)
            if j >= lo and reps is not None:
                part = pc.if_else(pa.array(reps > j), part, "")
            parts.append(part)
    if not parts:
        return pa.array(np.zeros(n, dtype="U1"))
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")


class Pattern:
    """Strings matching a simple regex: random ones, or distinct ones by index (for keys)."""

    def __init__(self, text: str):
        self.tree = _RegexParser(text).parse()
        self.radices: list[str] | None = None  # one character set per position
        if len(self.tree.alts) == 1 and all(isinstance(a, _Chars) for a, _, _ in self.tree.alts[0]):
            self.radices = [a.chars for a, _, hi in self.tree.alts[0] for _ in range(hi)]

    def random(self, rng: np.random.Generator, n: int) -> pa.Array:
        return _gen_group(rng, n, self.tree)

    @property
    def space(self) -> int:
        return math.prod(len(r) for r in self.radices) if self.radices is not None else 0

    def from_index(self, idx: np.ndarray, rng: np.random.Generator) -> pa.Array:
        """Distinct strings for distinct ``idx`` (< min(space, 2**62)); spare places random."""
        n = len(idx)
        if not self.radices:
            return pa.array(np.zeros(n, dtype="U1"))
        width = len(self.radices)
        cells = np.zeros((n, width), dtype=np.uint32)
        rest = idx.astype(np.uint64).copy()
        covered = 1
        for pos in range(width - 1, -1, -1):
            chars = np.frombuffer(self.radices[pos].encode("utf-32-le"), dtype=np.uint32)
            base = len(chars)
            if covered < KEY_CAP:
                cells[:, pos] = chars[(rest % np.uint64(base)).astype(np.int64)]
                rest //= np.uint64(base)
                covered *= base
            else:
                cells[:, pos] = chars[rng.integers(0, base, n)]
        return pa.array(cells.view(f"<U{width}").ravel())
