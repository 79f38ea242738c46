"""One contract column: its clean, warned and key values, and their CSV text.

Numeric, date and timestamp values are held as int64 units (1/scale, days, seconds since
1970) so that bounds, warn zones, row checks and duplicate-key shifts are plain integer
arithmetic, and text is made once per chunk by Arrow kernels.
"""

from __future__ import annotations

import math
import re
import zlib
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m7etl.core.contracts import Column, Contract
from m7etl.devtools.sample.flavours import WORDS, Flavour, flavour_for
from m7etl.devtools.sample.patterns import KEY_CAP, Pattern, PatternError
from m7etl.exceptions import UsageError

EPOCH = datetime(1970, 1, 1)


def _parse_temporal(column: Column, value: Any) -> int:
    """A date/timestamp bound as days (date) or seconds (timestamp) since 1970."""
    dt = datetime.strptime(str(value), column.format)
    if column.type == "date":
        return (dt - EPOCH).days
    return int((dt - EPOCH).total_seconds())


class Col:
    """One column's values in a numeric domain, their text, and their faults."""

    def __init__(self, column: Column, day_start: int, flavour: Flavour, seed: int):
        self.numeric = False  # values held as int64 units (days, seconds, 1/scale)
        self.c = column
        self.name = column.name
        self.type = column.type
        self.scale = 10 if column.type == "float" and column.name in flavour.samplers else 100
        self.pool: pa.Array | None = None
        self.weights: np.ndarray | None = None
        self.warn_pool: pa.Array | None = None
        self.pattern: Pattern | None = None
        self.sampler = flavour.samplers.get(column.name)
        self.day_start = day_start
        self.is_text = False
        self.warn_kind: str | None = None
        if column.type in ("integer", "float", "date", "timestamp"):
            self._numeric_ranges()
            self.numeric = self.pool is None
        elif column.type == "string":
            self._string_setup(flavour, seed)

    # -- numeric types ------------------------------------------------------------
    def to_units(self, value: Any, up: bool) -> int:
        if self.type in ("date", "timestamp"):
            return _parse_temporal(self.c, value)
        if self.type == "float":
            x = float(value) * self.scale
            return math.ceil(x - 1e-9) if up else math.floor(x + 1e-9)
        return math.ceil(value) if up else math.floor(value)

    def _numeric_ranges(self) -> None:
        r, w = self.c.rules, self.c.warn
        lo = None if r.min is None else self.to_units(r.min, True)
        hi = None if r.max is None else self.to_units(r.max, False)
        d0 = self.day_start
        span = {"integer": 1000, "float": 1000 * self.scale, "date": 3650,
                "timestamp": 86400}[self.type]
        if self.type == "date":
            dflt = (d0 // 86400 - span, d0 // 86400)
        elif self.type == "timestamp":
            dflt = (d0, d0 + 86399)
        else:
            dflt = (0, span)
        if lo is None and hi is None:
            lo, hi = dflt
        elif lo is None:
            lo = min(dflt[0], hi - span) if hi >= dflt[0] else hi - span
        elif hi is None:
            hi = max(dflt[1], lo + span) if lo <= dflt[1] else lo + span
        self.lo, self.hi = lo, hi  # the generation range (inclusive): hard bounds or defaults
        self.hard_hi = None if r.max is None else hi
        wlo = None if w.min is None else self.to_units(w.min, True)
        whi = None if w.max is None else self.to_units(w.max, False)
        # flavour samplers are clipped to the hard bounds and warn limits only
        lows = [x for x in (None if r.min is None else lo, wlo) if x is not None]
        highs = [x for x in (None if r.max is None else hi, whi) if x is not None]
        self.clip_lo = max(lows) if lows else -(1 << 62)
        self.clip_hi = min(highs) if highs else 1 << 62
        clo, chi = max(lo, wlo) if wlo is not None else lo, min(hi, whi) if whi is not None else hi
        if r.max is None and whi is not None:  # make room above the warn limit
            self.hi = hi = max(hi, whi + max(1, whi - clo))
        if clo > chi:
            clo, chi = lo, hi
        # keep clean values within the flavour's / default window when it fits
        self.clo, self.chi = clo, chi
        self.warn_ranges = []
        if wlo is not None and wlo > lo:
            self.warn_ranges.append((lo, min(wlo - 1, hi)))
        if whi is not None and whi < hi:
            self.warn_ranges.append((max(whi + 1, lo), hi))
        self.warn_ranges = [(a, b) for a, b in self.warn_ranges if a <= b]
        if self.warn_ranges:
            self.warn_kind = "range"
        if r.allowed is not None:  # a choice among the allowed texts, as for strings
            def unit(text: str) -> int | None:
                try:
                    return self.to_units(float(text) if self.type == "float" else
                                          int(text) if self.type == "integer" else text, True)
                except ValueError:
                    return None

            def inside(u, a, b):
                return u is not None and (a is None or u >= a) and (b is None or u <= b)

            hard = [a for a in r.allowed if inside(unit(a), self.to_units(r.min, True)
                    if r.min is not None else None, self.to_units(r.max, False)
                    if r.max is not None else None)] or list(r.allowed)
            ok = [a for a in hard if inside(unit(a), wlo, whi)
                  and (w.allowed is None or a in w.allowed)] or hard
            self.pool = pa.array(ok)
            self.warn_pool = pa.array([a for a in hard if a not in ok] or ok)
            self.warn_kind = "allowed" if len(ok) < len(hard) else None

    # -- strings --------------------------------------------------------------------
    def _string_setup(self, flavour: Flavour, seed: int) -> None:
        r, w = self.c.rules, self.c.warn
        maxlen = r.max_length
        if w.max_length is not None and (maxlen is None or w.max_length < maxlen):
            self.clean_maxlen = w.max_length
            if maxlen is None or maxlen > w.max_length:
                self.warn_kind = "length"
        else:
            self.clean_maxlen = maxlen
        self.maxlen = maxlen

        def fits(v: str) -> bool:
            return ((r.allowed is None or v in r.allowed)
                    and (r.pattern is None or re.search(r.pattern, v) is not None)
                    and (self.clean_maxlen is None or len(v) <= self.clean_maxlen)
                    and (w.allowed is None or v in w.allowed)
                    and (w.pattern is None or re.search(w.pattern, v) is not None))

        values: tuple[str, ...] = ()
        weights = None
        if self.name in flavour.pools:
            values, weights = flavour.pools[self.name]
            if weights is not None:
                weights = tuple(wt for v, wt in zip(values, weights, strict=True) if fits(v))
            values = tuple(v for v in values if fits(v))
        if not values and r.allowed is not None:
            values = tuple(v for v in r.allowed if fits(v)) or r.allowed
            weights = None
        if r.allowed is not None and w.allowed is not None:
            extra = [v for v in r.allowed if v not in w.allowed]
            if extra:
                self.warn_pool = pa.array(extra)
                self.warn_kind = "allowed"
        if values:
            self.pool = pa.array(list(values))
            if weights:
                wts = np.asarray(weights, dtype=float)
                self.weights = wts / wts.sum()
            return
        if r.pattern is not None:
            try:
                self.pattern = Pattern(r.pattern)
            except (PatternError, ValueError) as exc:
                raise UsageError(
                    f"Column {self.name}: the sample generator cannot produce values for the "
                    f"pattern {r.pattern!r} ({exc}).",
                    hint="Simplify the pattern (classes, literals, groups, quantifiers).",
                ) from None
            return
        # free text: phrases of French-looking words
        self.is_text = True
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode()), 1])
        phrases = []
        for _ in range(512):
            k = int(rng.integers(1, 5))
            words = [WORDS[j] for j in rng.integers(0, len(WORDS), k)]
            text = " ".join(words).capitalize()
            if rng.random() < 0.15:
                text = text.replace(" ", ", ", 1)
            phrases.append(text)
        limit = self.clean_maxlen
        if limit is not None:
            phrases = [p[:limit].rstrip() or p[:limit] for p in phrases]
        self.pool = pa.array(phrases)

    # -- keys ----------------------------------------------------------------------------
    @property
    def key_space(self) -> int:
        t = self.type
        if self.pool is not None and not self.is_text:
            return len(self.pool)
        if t in ("integer", "float", "date", "timestamp"):
            return max(0, self.chi - self.clo + 1)
        if t == "boolean":
            return 2
        if self.pool is not None and not self.is_text:
            return len(self.pool)
        if self.pattern is not None:  # patterns with groups are drawn at random: 1
            return self.pattern.space if self.pattern.radices is not None else 1
        return KEY_CAP  # free text: a number is appended

    def from_index(self, idx: np.ndarray, rng: np.random.Generator):
        t = self.type
        if self.pool is not None and not self.is_text:
            return self.pool.take(pa.array(idx.astype(np.int64)))
        if t in ("integer", "float", "date", "timestamp"):
            return self.clo + idx.astype(np.int64)
        if t == "boolean":
            return idx.astype(bool)
        if self.pool is not None and not self.is_text:
            return self.pool.take(pa.array(idx.astype(np.int64)))
        if self.pattern is not None:
            if self.pattern.radices is None:
                return self.pattern.random(rng, len(idx))
            return self.pattern.from_index(idx, rng)
        prefix = "K"
        text = pc.binary_join_element_wise(prefix, pc.cast(pa.array(idx.astype(np.int64)),
                                                           pa.string()), "")
        return text

    # -- values ----------------------------------------------------------------------------
    def clean(self, rng: np.random.Generator, n: int):
        t = self.type
        if t in ("integer", "float", "date", "timestamp") and self.pool is None:
            if self.sampler is not None:
                v = np.asarray(self.sampler(rng, n, self.day_start), dtype=np.int64)
                return np.clip(v, self.clip_lo, self.clip_hi)
            return rng.integers(self.clo, self.chi + 1, n, dtype=np.int64)
        if t == "boolean":
            return rng.random(n) < 0.5
        if self.pool is not None:
            if self.weights is not None:
                idx = rng.choice(len(self.pool), n, p=self.weights)
            else:
                idx = rng.integers(0, len(self.pool), n)
            return self.pool.take(pa.array(idx))
        return self.pattern.random(rng, n)

    def warn_values(self, rng: np.random.Generator, n: int):
        if self.warn_kind == "range":
            which = rng.integers(0, len(self.warn_ranges), n)
            lo = np.array([a for a, _ in self.warn_ranges])[which]
            hi = np.array([b for _, b in self.warn_ranges])[which]
            return lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64).clip(0, hi - lo)
        if self.warn_kind == "allowed":
            return self.warn_pool.take(pa.array(rng.integers(0, len(self.warn_pool), n)))
        # "length": longer than the warn max_length, within the hard one
        target = self.clean_maxlen + 1 + rng.integers(0, 10, n)
        if self.maxlen is not None:
            target = np.minimum(target, self.maxlen)
        base = self.clean(rng, n).to_pylist()
        return pa.array([(v + " " + "x" * k)[:k] for v, k in zip(base, target.tolist(),
                                                                  strict=True)])

    def to_text(self, values) -> pa.Array:
        t = self.type
        if isinstance(values, pa.Array | pa.ChunkedArray):
            return values
        if t == "integer":
            return pc.cast(pa.array(values), pa.string())
        if t == "float":
            v = np.asarray(values, dtype=np.int64)
            digits = len(str(self.scale)) - 1
            whole = pc.cast(pa.array(np.abs(v) // self.scale), pa.string())
            frac = pc.utf8_lpad(pc.cast(pa.array(np.abs(v) % self.scale), pa.string()), digits, "0")
            sign = pa.array(np.where(v < 0, "-", ""))
            dot = pa.array(np.full(len(v), "."))
            return pc.binary_join_element_wise(sign, whole, dot, frac, "")
        if t == "boolean":
            return pa.array(np.where(np.asarray(values), "true", "false"))
        if t == "date":
            if self.c.format == "%Y-%m-%d":  # a cast is ten times faster than strftime
                return pc.cast(pa.array(np.asarray(values, dtype=np.int32), pa.date32()),
                               pa.string())
            ts = pa.array(np.asarray(values, dtype=np.int64) * 86400, pa.timestamp("s"))
            return pc.strftime(ts, format=self.c.format)
        if t == "timestamp":
            ts = pa.array(np.asarray(values, dtype=np.int64), pa.timestamp("s"))
            if self.c.format == "%Y-%m-%d %H:%M:%S":
                return pc.cast(ts, pa.string())
            return pc.strftime(ts, format=self.c.format)
        return values

    def format_one(self, v: int) -> str:
        """One numeric-domain value as text (for faults)."""
        if self.type == "integer":
            return str(v)
        if self.type == "float":
            sign = "-" if v < 0 else ""
            digits = len(str(self.scale)) - 1
            return f"{sign}{abs(v) // self.scale}.{abs(v) % self.scale:0{digits}d}"
        return self.as_datetime(v).strftime(self.c.format)

    def as_datetime(self, v: int) -> datetime:
        """A date/timestamp unit as a datetime, kept within years 1000-9998."""
        low, high = datetime(1000, 1, 1) - EPOCH, datetime(9998, 12, 31) - EPOCH
        delta = timedelta(days=v) if self.type == "date" else timedelta(seconds=v)
        return EPOCH + min(max(delta, low), high)


def key_space(contract: Contract) -> int:
    """How many distinct primary keys the generator can make (the demo sizes files by it)."""
    day_start = 0
    flavour = flavour_for(contract.dataset)
    cols = [Col(contract.column(k), day_start, flavour, 0) for k in contract.primary_key]
    return math.prod(min(c.key_space, KEY_CAP) for c in cols)
