"""The chunked row generator behind :func:`~m7etl.devtools.sample.write_sample`.

Values are drawn with numpy and turned into CSV text with Arrow compute kernels,
``CHUNK_ROWS`` rows at a time, streamed to the sink, so memory stays flat. Each chunk has its
own seeded RNG (seed, dataset, day, chunk index) and draws in a fixed order: changing that
order changes every byte written, so keep it when editing.
"""

from __future__ import annotations

import math
import zlib
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m7etl.core.contracts import Contract
from m7etl.devtools.sample.columns import EPOCH, Col
from m7etl.devtools.sample.dialects import encode, header, quote, string_bytes
from m7etl.devtools.sample.faults import FAULT_KINDS, bad_value, fault_columns
from m7etl.devtools.sample.flavours import flavour_for
from m7etl.devtools.sample.options import InjectedFault, SampleOptions
from m7etl.devtools.sample.patterns import KEY_CAP
from m7etl.exceptions import UsageError

CHUNK_ROWS = 50_000  # read at each chunk: tests patch it here to cross chunk boundaries
MB = 1_000_000  # --size-mb counts decimal megabytes of CSV text (before gzip)
OPTIONAL_EMPTY_RATE = 0.02  # share of empty values in optional columns of clean rows
_MASK64 = (1 << 64) - 1


class Generator:
    """One file's rows; it records what it wrote (rows, bytes, faults) for the manifest."""

    def __init__(self, contract: Contract, day: str, options: SampleOptions):
        self.contract = contract
        self.o = options
        self.day = day
        d = datetime.strptime(day, "%Y%m%d")
        self.day_start = int((d - EPOCH).total_seconds())
        self.flavour = flavour_for(contract.dataset)
        base = [options.seed, zlib.crc32(contract.dataset.encode()), int(day)]
        self.base_seed = base
        self.cols = [Col(c, self.day_start, self.flavour, options.seed) for c in contract.columns]
        self.by_name = {c.name: c for c in self.cols}
        self.columns = {c.name: c for c in contract.columns}
        self.key_cols = [self.by_name[k] for k in contract.primary_key]
        self.key_spaces = [min(c.key_space, KEY_CAP) for c in self.key_cols]
        space = math.prod(self.key_spaces) if self.key_cols else 0
        self.key_space = min(space, KEY_CAP)
        self.key_perm = int(np.random.default_rng([*base, 7]).integers(1, 2**62))
        self.in_checks = {n for ch in contract.checks for n in (ch.column, ch.other)}
        self.warn_cols = [c.name for c in self.cols if c.warn_kind is not None]
        self.free_text = [c.name for c in self.cols if c.is_text or (
            c.type == "string" and c.name in self.flavour.pools and c.c.rules.allowed is None
            and c.c.rules.pattern is None)]
        self.fault_cols = {k: fault_columns(contract, k) for k in FAULT_KINDS}
        self.rates = [(k, float(options.faults.get(k, 0))) for k in FAULT_KINDS]
        self.rows_written = 0
        self.text_bytes = 0
        self.faults: list[InjectedFault] = []
        self.warned: list[InjectedFault] = []
        self.multiline_rows = 0

    # -- driving -----------------------------------------------------------------------
    def write(self, sink) -> None:
        o = self.o
        head = header(self.contract.column_names, o.delimiter, o.line_ending, o.encoding,
                      self.contract.dataset)
        sink.write(head)
        self.text_bytes = len(head)
        target = None if o.size_mb is None else int(o.size_mb * MB)
        chunk = 0
        while True:
            if target is None:
                n = min(CHUNK_ROWS, o.rows - self.rows_written)
            else:
                remaining = target - self.text_bytes
                if remaining <= 0:
                    break
                if self.rows_written == 0:
                    n = 200
                else:
                    per_row = (self.text_bytes - len(head)) / self.rows_written
                    n = min(CHUNK_ROWS, max(1, math.ceil(remaining / per_row)))
            if n <= 0:
                break
            data = self._chunk(chunk, self.rows_written, n)
            sink.write(data)
            self.text_bytes += len(data)
            self.rows_written += n
            chunk += 1

    # -- one chunk -----------------------------------------------------------------------
    def _chunk(self, index: int, start: int, n: int) -> bytes:
        o = self.o
        rng = np.random.default_rng([*self.base_seed, index])
        # 1. which rows are faulty, of which kind; which rows are warned
        kinds = np.full(n, -1, dtype=np.int8)
        counts = [_share(rate, start, n) for _, rate in self.rates]
        total = sum(counts)
        pool = np.arange(1, n) if n > 1 else np.arange(n)
        total = min(total, len(pool))
        picked = rng.choice(pool, total, replace=False) if total else np.array([], dtype=np.int64)
        at = 0
        for k, cnt in enumerate(counts):
            take = picked[at:at + cnt]
            kinds[take] = k
            at += len(take)
        clean = kinds < 0
        warn_col = np.full(n, -1, dtype=np.int16)
        warned_idx = np.array([], dtype=np.int64)
        if self.warn_cols and o.warn_rate > 0:
            w = min(_share(o.warn_rate, start, n), int(clean.sum()))
            if w:
                warned_idx = np.sort(rng.choice(np.flatnonzero(clean), w, replace=False))
                warn_col[warned_idx] = rng.integers(0, len(self.warn_cols), w)
        # 2. clean values of every row
        values: dict[str, Any] = {}
        if self.key_cols:
            if start + n > self.key_space:
                note = "" if all(c.pattern is None or c.pattern.radices is not None
                                 for c in self.key_cols) else (
                    "; key columns whose pattern has groups are drawn at random, not counted")
                raise UsageError(
                    f"Dataset {self.contract.dataset}: {start + n} rows need more distinct keys "
                    f"({', '.join(self.contract.primary_key)}) than the generator can make "
                    f"({self.key_space}{note}).", hint="Ask for fewer rows.")
            i = np.arange(start, start + n, dtype=np.uint64)
            p = i if self.flavour.sequential_key else _permute(i, self.key_space, self.key_perm)
            for col, sp in zip(reversed(self.key_cols), reversed(self.key_spaces), strict=True):
                values[col.name] = col.from_index(p % np.uint64(sp), rng)
                p = p // np.uint64(sp)
        for col in self.cols:
            if col.name not in values:
                values[col.name] = col.clean(rng, n)
        # 3. warn zones
        for j, name in enumerate(self.warn_cols):
            rows = np.flatnonzero(warn_col == j)
            if len(rows):
                values[name] = _scatter(values[name], rows, self.by_name[name].warn_values(
                    rng, len(rows)))
        # 4. duplicate keys: copy an earlier clean row, move its timestamps later
        dup_k = FAULT_KINDS.index("duplicate_key")
        dup_rows = np.flatnonzero(kinds == dup_k)
        dup_src = np.zeros(len(dup_rows), dtype=np.int64)
        if len(dup_rows):
            plain = clean & (warn_col < 0)
            plain_pos = np.flatnonzero(plain)
            earlier = np.searchsorted(plain_pos, dup_rows)  # plain rows before each dup
            ok = earlier > 0
            kinds[dup_rows[~ok]] = -1  # no clean row before it: the row stays clean
            dup_rows, earlier = dup_rows[ok], earlier[ok]
            dup_src = plain_pos[(rng.random(len(dup_rows)) * earlier).astype(np.int64)]
            ix = np.arange(n)
            ix[dup_rows] = dup_src
            for col in self.cols:
                if col.name not in self.flavour.mutable or col.name in self.contract.primary_key:
                    values[col.name] = _take(values[col.name], ix)
            ts = [c for c in self.cols if c.type == "timestamp" and c.numeric]
            if ts:
                delta = rng.integers(60, 6 * 3600, len(dup_rows))
                for c in ts:
                    if c.hard_hi is not None:
                        room = c.hard_hi - values[c.name][dup_rows]
                        delta = np.minimum(delta, np.maximum(room, 0))
                for c in ts:
                    v = values[c.name].copy()
                    v[dup_rows] += delta
                    values[c.name] = v
        # 5. flavour derivations, then the row checks
        if self.flavour.derive is not None:
            self.flavour.derive(values, self.columns)
        for col in self.cols:
            if col.numeric:
                values[col.name] = np.asarray(values[col.name], dtype=np.int64)
        self._enforce_checks(values, rng)
        # 6. text; empty optional values
        text: dict[str, pa.Array] = {}
        for col in self.cols:
            t = col.to_text(values[col.name])
            if (not col.c.required and col.name not in self.in_checks and OPTIONAL_EMPTY_RATE):
                empty = rng.random(n) < OPTIONAL_EMPTY_RATE
                if col.name in self.warn_cols:
                    empty &= warn_col != self.warn_cols.index(col.name)
                empty[dup_rows] = False
                if empty.any():
                    t = pc.if_else(pa.array(empty), "", t)
            text[col.name] = t
        # 7. quoted newlines in free text
        if o.multiline_rate > 0 and self.free_text:
            m = _share(o.multiline_rate, start, n)
            rows = np.sort(rng.choice(n, min(m, n), replace=False))
            which = rng.integers(0, len(self.free_text), len(rows))
            for j, name in enumerate(self.free_text):
                mine = rows[which == j]
                current = text[name].take(pa.array(mine)).to_pylist()
                keep = [k for k, v in enumerate(current) if v and " " in v]
                if keep:
                    text[name] = _scatter(text[name], mine[keep], pa.array(
                        [current[k].replace(" ", "\n", 1) for k in keep]))
                    self.multiline_rows += len(keep)
        # 8. value faults
        replace: dict[str, tuple[list[int], list[str]]] = {}
        fault_rows = np.flatnonzero(kinds >= 0)
        row_fault_col: dict[int, str | None] = {}
        for r in fault_rows.tolist():
            kind = FAULT_KINDS[kinds[r]]
            if kind in ("duplicate_key", "wrong_column_count"):
                row_fault_col[r] = self.contract.primary_key[0] if kind == "duplicate_key" else None
                continue
            names = self.fault_cols[kind]
            name = names[int(rng.integers(0, len(names)))]
            bad = bad_value(kind, self.by_name[name], rng, values[name], r, self.day_start)
            rows_, vals = replace.setdefault(name, ([], []))
            rows_.append(r)
            vals.append(bad)
            row_fault_col[r] = name
        for name, (rows_, vals) in replace.items():
            text[name] = _scatter(text[name], np.array(rows_), pa.array(vals, pa.string()))
        for r in fault_rows.tolist():
            self.faults.append(
                InjectedFault(start + r + 1, FAULT_KINDS[kinds[r]], row_fault_col[r]))
        for r in warned_idx.tolist():
            self.warned.append(InjectedFault(start + r + 1, "warn", self.warn_cols[warn_col[r]]))
        # 9. quote, join, line ends
        d = o.delimiter
        cells = [quote(text[c.name], d) for c in self.cols]
        wcc = np.flatnonzero(kinds == FAULT_KINDS.index("wrong_column_count"))
        if len(cells) > 1:
            head = cells[0] if len(cells) == 2 else pc.binary_join_element_wise(*cells[:-1], d)
            rows_text = pc.binary_join_element_wise(head, cells[-1], d)
        else:
            head, rows_text = None, cells[0]
        if len(wcc):
            fewer = rng.random(len(wcc)) < 0.5 if head is not None else np.zeros(len(wcc), bool)
            short = wcc[fewer]
            long_ = wcc[~fewer]
            if len(short):
                rows_text = _scatter(rows_text, short, head.take(pa.array(short)))
            if len(long_):
                extra = pc.binary_join_element_wise(rows_text.take(pa.array(long_)), "extra", d)
                rows_text = _scatter(rows_text, long_, extra)
        rows_text = pc.binary_join_element_wise(rows_text, o.line_ending, "")
        return encode(string_bytes(rows_text), o.encoding, self.contract.dataset)

    def _enforce_checks(self, values: dict, rng: np.random.Generator) -> None:
        """Make every row satisfy the row checks, moving values within their clean ranges."""
        for ch in self.contract.checks:
            col, other = self.by_name[ch.column], self.by_name[ch.other]
            if not (col.numeric and other.numeric):
                continue
            op = ch.op
            step = {"integer": 10, "float": 10 * col.scale, "date": 30, "timestamp": 3600}[col.type]
            least = 1 if op in (">", "<") else 0
            up = op in (">", ">=")
            for name, base, src, sign in ((ch.column, ch.other, col, 1), (ch.other, ch.column,
                                                                          other, -1)):
                a, b = values[ch.column], values[ch.other]
                bad = {">": a <= b, ">=": a < b, "<": a >= b, "<=": a > b}[op]
                if not bad.any():
                    break
                delta = rng.integers(least, step + 1, int(bad.sum()))
                fixed = values[name].copy()
                moved = values[base][bad] + (delta if up == (sign > 0) else -delta)
                fixed[bad] = np.clip(moved, src.clo, src.chi)
                values[name] = fixed


def _permute(i: np.ndarray, space: int, key: int) -> np.ndarray:
    """A keyed bijection of [0, space) (xorshift-multiply rounds and cycle walking)."""
    if space <= 1:
        return np.zeros_like(i, dtype=np.uint64)
    bits = max(2, (space - 1).bit_length())
    mask = np.uint64((1 << bits) - 1)
    shift = np.uint64(max(1, bits // 2))
    mults = [np.uint64(((key * (2 * r + 3)) ^ 0x9E3779B97F4A7C15) & _MASK64 | 1) for r in range(3)]
    adds = [np.uint64((key * 0x632BE59BD9B4E019 + r) & _MASK64) for r in range(3)]
    x = i.astype(np.uint64)
    todo = np.ones(len(x), dtype=bool)
    with np.errstate(over="ignore"):
        while todo.any():
            y = x[todo]
            for m, a in zip(mults, adds, strict=True):
                y = ((y * m) + a) & mask
                y ^= y >> shift
            x[todo] = y
            todo[todo] = y >= np.uint64(space)
    return x


def _share(rate: float, start: int, n: int) -> int:
    """How many of rows ``start .. start+n`` get an event of ``rate`` (exact overall)."""
    if rate <= 0:
        return 0
    return math.floor(rate * (start + n) + 0.5) - math.floor(rate * start + 0.5)


def _take(values, ix: np.ndarray):
    if isinstance(values, np.ndarray):
        return values[ix]
    return values.take(pa.array(ix))


def _scatter(values, rows: np.ndarray, new):
    if isinstance(values, np.ndarray):
        out = values.copy()
        out[rows] = np.asarray(new)
        return out
    mask = np.zeros(len(values), dtype=bool)
    mask[rows] = True
    order = np.argsort(rows, kind="stable")
    if not isinstance(new, pa.Array | pa.ChunkedArray):
        new = pa.array(new)
    return pc.replace_with_mask(values, pa.array(mask), new.take(pa.array(order)))
