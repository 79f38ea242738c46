"""Byte-level fast paths of validation: fixed-width values checked on Arrow's buffers.

Values of a fixed width (ISO dates and timestamps, ids such as ``^STB[0-9]{9}$``) are
checked on the bytes of the Arrow buffer, eight at a time (uint64 words), instead of one
kernel pass per rule. Each path decides every value (a value of another width cannot
match) or, when the buffers cannot be read this way, none (it returns None): the general
kernel then runs. tests/test_perf_paths.py compares both with a reference on generated
edge cases.
"""

from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_LITTLE_ENDIAN = sys.byteorder == "little"
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_BYTE = np.uint64(0xFF)
CHUNK = 16000  # rows per numpy step: temporaries stay small (no mmap, no page faults)


def arrow_bools(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """A numpy boolean array as Arrow's, null where ``null`` is true, packed with numpy:
    ``pa.array`` of a numpy boolean array takes 0.06-0.8 ms per 90,000 rows, this 5 us."""
    n = len(values)
    data = pa.py_buffer(np.packbits(values, bitorder="little"))
    if null is None or not null.any():
        return pa.Array.from_buffers(pa.bool_(), n, [None, data], null_count=0)
    validity = pa.py_buffer(np.packbits(~null, bitorder="little"))
    return pa.Array.from_buffers(pa.bool_(), n, [validity, data], null_count=int(np.count_nonzero(null)))


def _bits(buffer: pa.Buffer, offset: int, n: int) -> np.ndarray:
    start, shift = divmod(offset, 8)
    packed = np.frombuffer(buffer, np.uint8, (shift + n + 7) // 8, start)
    return np.unpackbits(packed, count=shift + n, bitorder="little")[shift:].view(bool)


def numpy_bools(mask: pa.Array) -> np.ndarray:
    """An Arrow boolean array as numpy, null as False, unpacked from its bitmaps (a tenth of
    the time of ``fill_null(False).to_numpy()``)."""
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    n = len(mask)
    if n == 0 or mask.null_count == n:
        return np.zeros(n, dtype=bool)
    values = _bits(mask.buffers()[1], mask.offset, n)
    if mask.null_count:
        values &= _bits(mask.buffers()[0], mask.offset, n)
    return values


def valid_rows(array: pa.Array) -> np.ndarray:
    """Which values are not null (numpy), from the validity bitmap."""
    n = len(array)
    if array.null_count == 0:
        return np.ones(n, dtype=bool)
    if array.null_count == n:
        return np.zeros(n, dtype=bool)
    return _bits(array.buffers()[0], array.offset, n)  # a new array: unpackbits copies


def _fixed_width(text: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The non-null values exactly ``width`` bytes long, as a (rows, width) byte matrix, and
    their row numbers (None: every row). None when the buffers cannot be read this way."""
    n = len(text)
    if not _LITTLE_ENDIAN or n == 0 or width < 8 or text.type != pa.string():
        return None
    offsets = np.frombuffer(text.buffers()[1], np.int32, n + 1, text.offset * 4)
    right = np.diff(offsets) == width
    if text.null_count:
        right &= valid_rows(text)
    rows = None
    if not right.all():
        rows = np.flatnonzero(right)
        text = text.filter(arrow_bools(right))  # Arrow's allocator: no page faults in numpy
        if len(text) == 0:
            return np.zeros((0, width), np.uint8), rows
        offsets = np.frombuffer(text.buffers()[1], np.int32, len(text) + 1, text.offset * 4)
    first, count = int(offsets[0]), len(text)
    data = np.frombuffer(text.buffers()[2], np.uint8, count * width, first)
    return data.reshape(count, width), rows


def _word_starts(width: int) -> tuple[int, ...]:
    """Byte offsets of the 8-byte words that cover a row of ``width`` bytes (the last overlaps)."""
    return tuple(range(0, width - 8, 8)) + (width - 8,)


def _words(block: np.ndarray) -> list[np.ndarray]:
    """Each row's 8-byte words, as uint64 columns (unaligned strided views, no copy)."""
    rows, width = block.shape
    flat = np.ascontiguousarray(block).reshape(-1)
    return [np.ndarray((rows,), np.uint64, flat, start, (width,)) for start in _word_starts(width)]


def _scatter(values: np.ndarray, rows: np.ndarray | None, n: int) -> np.ndarray:
    if rows is None:
        return values
    out = np.zeros(n, values.dtype)
    out[rows] = values
    return out


def bool_like(values: np.ndarray, text: pa.Array) -> pa.Array:
    """A boolean array null where ``text`` is null, like Arrow's predicates."""
    return arrow_bools(values, ~valid_rows(text) if text.null_count else None)


def _typed_array(values: np.ndarray, valid: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    n = len(values)
    nulls = n - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(arrow_type, n, [bitmap, pa.py_buffer(values)], null_count=nulls)


_ISO_LAYOUTS = {"date": "0000-00-00", "timestamp": "0000-00-00 00:00:00"}  # 0: a digit


def _calendar_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables of the proleptic Gregorian calendar for years 0000-9999 (and the
    impossible 'years' up to 16665 that non-digit bytes give, never used as values):
    leap flag by year, days from 1970-01-01 to January 1st by year, and by
    ``leap * 256 + month`` the month's length (0 for no month) and the days before it."""
    years = np.arange(16700, dtype=np.int64)
    leap = ((years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))).astype(np.int32)
    before = years - 1  # H. Hinnant's days_from_civil for January 1st
    era = before // 400
    yoe = before - era * 400
    jan1 = (era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + 306 - 719468).astype(np.int32)
    month_days, days_before = np.zeros(512, np.int32), np.zeros(512, np.int32)
    for is_leap in (0, 1):
        total = 0
        for month, days in enumerate((31, 28 + is_leap, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), 1):
            month_days[is_leap * 256 + month], days_before[is_leap * 256 + month] = days, total
            total += days
    return leap, jan1, month_days, days_before


_LEAP, _JAN1, _MONTH_DAYS, _DAYS_BEFORE = _calendar_tables()


@lru_cache(maxsize=4)
def _layout_words(layout: str) -> list[tuple[np.uint64, np.uint64, np.uint64]]:
    """Per word: (mask, expected, add). A row has the layout iff for every word
    ``w & mask == expected`` (separators equal, digits are 0x3?) and
    ``(w + add) & mask == expected`` (the digit's low nibble is at most 9: +6 does not carry)."""
    out = []
    for start in _word_starts(len(layout)):
        mask = expected = add = 0
        for k, char in enumerate(layout[start:start + 8]):
            m, e, a = (0xF0, 0x30, 0x06) if char == "0" else (0xFF, ord(char), 0)
            mask, expected, add = mask | m << 8 * k, expected | e << 8 * k, add | a << 8 * k
        out.append((np.uint64(mask), np.uint64(expected), np.uint64(add)))
    return out


def _two_digits(pairs: list[np.ndarray], starts: tuple[int, ...], position: int) -> np.ndarray:
    """The number written by the two digits at ``position`` (from the words' pair sums)."""
    k = max(i for i, start in enumerate(starts) if start <= position <= start + 6)
    shift = np.uint64(8 * (position - starts[k]))
    return ((pairs[k] >> shift) & _BYTE).astype(np.int32)


def iso_fast(text: pa.Array, kind: str) -> pa.Array | None:
    """ISO dates / timestamps parsed from their bytes: ``YYYY-MM-DD[ HH:MM:SS]``, ASCII digits.

    Null for every value not in that exact layout, not a real calendar day from year 1, or
    not a real time of day (hour 0-23, minute and second 0-59). None when the buffers
    cannot be read this way (the strptime path then applies the same rules).
    """
    layout = _ISO_LAYOUTS[kind]
    found = _fixed_width(text, len(layout))
    if found is None:
        return None
    block, rows = found
    n, m = len(text), len(block)
    good = np.empty(m, dtype=bool)
    values = np.empty(m, dtype=np.int32 if kind == "date" else np.int64)
    for at in range(0, m, CHUNK):  # small temporaries: cache-resident, no page faults
        part = slice(at, at + CHUNK)
        good[part], values[part] = _iso_chunk(block[part], kind)
    arrow_type = pa.date32() if kind == "date" else pa.timestamp("us")
    return _typed_array(_scatter(values, rows, n), _scatter(good, rows, n), arrow_type)


def _iso_chunk(block: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(a valid value, the value or 0) for each row of ``block``."""
    layout = _ISO_LAYOUTS[kind]
    words = _words(block)
    good = np.ones(len(block), dtype=bool)
    for word, (mask, expected, add) in zip(words, _layout_words(layout), strict=True):
        good &= (word & mask) == expected
        good &= ((word + add) & mask) == expected
    # pairs[k] holds, in byte j, 10 * digit(j) + digit(j + 1) of word k.
    pairs = []
    for word in words:
        digits = word & _LOW_NIBBLES
        pairs.append(digits * np.uint64(10) + (digits >> np.uint64(8)))
    starts = _word_starts(len(layout))
    year = _two_digits(pairs, starts, 0) * 100 + _two_digits(pairs, starts, 2)
    month, day = _two_digits(pairs, starts, 5), _two_digits(pairs, starts, 8)
    key = _LEAP[year] * 256 + month
    good &= (year >= 1) & (day >= 1) & (day <= _MONTH_DAYS[key])  # no such month: 0 days
    days = _JAN1[year] + _DAYS_BEFORE[key] + day - 1
    if kind == "date":
        values = days
    else:
        hour, minute = _two_digits(pairs, starts, 11), _two_digits(pairs, starts, 14)
        second = _two_digits(pairs, starts, 17)
        good &= (hour <= 23) & (minute <= 59) & (second <= 59)
        values = (days.astype(np.int64) * 86400 + hour * 3600 + minute * 60 + second) * 1_000_000
    values *= good
    return good, values


_PATTERN_LITERALS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:/ ,;@=")
_PATTERN_ESCAPES = {"d": ((48, 57),), ".": ((46, 46),), "-": ((45, 45),), "/": ((47, 47),),
                    ":": ((58, 58),)}
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


@lru_cache(maxsize=64)
def fixed_pattern(pattern: str) -> tuple | None:
    """The allowed byte ranges at each position when ``pattern`` is ``^...$`` made only of
    ASCII literals, ``\\d`` and ``[...]`` classes of ASCII letters/digits/ranges, each with an
    optional ``{n}``; None for any other pattern (RE2 matches those)."""
    if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$":
        return None
    body, i, positions = pattern[1:-1], 0, []
    while i < len(body):
        char = body[i]
        if char == "[":
            end = body.find("]", i + 1)
            inner = body[i + 1:end] if end > i else ""
            if not inner:
                return None
            ranges, k = [], 0
            while k < len(inner):
                low = inner[k]
                if low not in _ALNUM:
                    return None
                if k + 2 < len(inner) and inner[k + 1] == "-":
                    high = inner[k + 2]
                    if high not in _ALNUM or high < low:
                        return None
                    ranges.append((ord(low), ord(high)))
                    k += 3
                else:
                    ranges.append((ord(low), ord(low)))
                    k += 1
            item, i = tuple(sorted(set(ranges))), end + 1
        elif char == "\\":
            item = _PATTERN_ESCAPES.get(body[i + 1] if i + 1 < len(body) else "")
            if item is None:
                return None
            i += 2
        elif char in _PATTERN_LITERALS:
            item, i = ((ord(char), ord(char)),), i + 1
        else:
            return None
        count = 1
        if i < len(body) and body[i] == "{":
            end = body.find("}", i)
            digits = body[i + 1:end] if end > i else ""
            if not digits or not set(digits) <= set("0123456789") or len(digits) > 3:
                return None
            count, i = int(digits), end + 1
            if not 1 <= count <= 1000:
                return None
        positions += [item] * count
    width = len(positions)
    if width < 8:
        return None
    starts = _word_starts(width)
    literal = [r[0][0] if len(r) == 1 and r[0][0] == r[0][1] else None for r in positions]
    literal_words = []
    for start in starts:
        mask = expected = 0
        for k in range(8):
            if literal[start + k] is not None:
                mask, expected = mask | 0xFF << 8 * k, expected | literal[start + k] << 8 * k
        literal_words.append((np.uint64(mask), np.uint64(expected)))
    classes = []
    for ranges in sorted({r for r, lit in zip(positions, literal, strict=True) if lit is None}):
        masks = []
        for start in starts:
            mask = 0
            for k in range(8):
                if positions[start + k] == ranges and literal[start + k] is None:
                    mask |= 0x01 << 8 * k
            masks.append(np.uint64(mask))
        classes.append((ranges, masks))
    return width, tuple(literal_words), tuple(classes)


def _in_ranges(block: np.ndarray, ranges: tuple[tuple[int, int], ...]) -> np.ndarray:
    inside = None
    for low, high in ranges:
        hit = block == low if low == high else (block - np.uint8(low)) <= np.uint8(high - low)
        inside = hit if inside is None else inside | hit
    return inside


def match_fixed(text: pa.Array, spec: tuple) -> pa.Array | None:
    """``match_substring_regex`` for a fixed-width ASCII pattern, or None (use RE2).

    Every position of such a pattern matches one ASCII character, so a match is exactly
    ``width`` bytes, each in its position's ranges; ``$`` is the end of the text (RE2)."""
    width, literal_words, classes = spec
    found = _fixed_width(text, width)
    if found is None:
        return None
    block, rows = found
    matched = np.ones(len(block), dtype=bool)
    for at in range(0, len(block), CHUNK):
        part = block[at:at + CHUNK]
        hit = matched[at:at + CHUNK]
        for word, (mask, expected) in zip(_words(part), literal_words, strict=True):
            if mask:
                hit &= (word & mask) == expected
        for ranges, masks in classes:
            inside = _words(_in_ranges(part, ranges).view(np.uint8))
            for word, mask in zip(inside, masks, strict=True):
                if mask:
                    hit &= (word & mask) == mask
    return bool_like(_scatter(matched, rows, len(text)), text)


DISTINCT_SAMPLE = 1024


def few_distinct(values: pa.Array) -> bool:
    """Whether a batch's values repeat enough that working on its distinct values pays for
    hashing them: an evenly spread sample of 1,024 holds fewer than 512 distinct values.
    (A hash table of 55,000 distinct timestamps per 90,000 rows costs more than it saves.)"""
    n = len(values)
    if n < 4 * DISTINCT_SAMPLE:
        return False
    step = n // DISTINCT_SAMPLE
    sample = values.take(pa.array(np.arange(0, step * DISTINCT_SAMPLE, step)))
    return pc.count_distinct(sample, mode="all").as_py() < DISTINCT_SAMPLE // 2


def empty_values(text: pa.Array) -> np.ndarray | None:
    """Which values are empty or null, from the offsets; None when none is (the usual case:
    one comparison of the offsets instead of a length kernel, a compare and a fill)."""
    n = len(text)
    if text.null_count == n:
        return np.ones(n, dtype=bool) if n else None
    if text.type != pa.string():
        empty = numpy_bools(pc.fill_null(pc.equal(pc.binary_length(text), 0), True))
    else:
        offsets = np.frombuffer(text.buffers()[1], np.int32, n + 1, text.offset * 4)
        empty = offsets[1:] == offsets[:-1]
        if text.null_count:
            empty |= ~valid_rows(text)
    return empty if empty.any() else None


def longer_than(text: pa.Array, limit: int) -> pa.Array | None:
    """Which values have more than ``limit`` characters; None when none has. Characters are
    counted only in the values of more bytes than that (a character is at least one byte),
    read from the offsets: a titles column of 90,000 rows with a few long ones counts those."""
    n = len(text)
    if n == 0 or text.null_count == n:
        return None
    if text.type != pa.string():
        over = numpy_bools(pc.greater(pc.utf8_length(text), limit))
        return arrow_bools(over) if over.any() else None
    offsets = np.frombuffer(text.buffers()[1], np.int32, n + 1, text.offset * 4)
    rows = np.flatnonzero((offsets[1:] - offsets[:-1]) > limit)
    if not len(rows):
        return None
    over = numpy_bools(pc.greater(pc.utf8_length(text.take(pa.array(rows))), limit))
    if not over.any():
        return None
    mask = np.zeros(n, dtype=bool)
    mask[rows[over]] = True
    return arrow_bools(mask)


_DECIMAL_BYTES = np.full(256, 16, np.uint8)  # any other byte: 16 (counted in the high part)
_DECIMAL_BYTES[ord("0"):ord("9") + 1] = 0
_DECIMAL_BYTES[ord(".")] = 1


def plain_decimal(text: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Which values are plain decimals (ASCII digits, at most one dot, at least one digit),
    and which hold other bytes, from one pass over the character buffer; None when the
    buffers cannot be read this way.

    A plain decimal matches ``FLOAT_RE`` and a value of digits and dots only that is not one
    does not; a value with any other byte (sign, exponent, space, a letter) is left to the
    regex (``other``). Null values are neither. Per value the byte classes are summed (digit
    0, dot 1, other 16): ``sum // 16`` counts the other bytes when there are fewer than 16
    dots, and a value of 16 dots or more, counted as "other", goes to the regex."""
    n = len(text)
    if n == 0 or text.type != pa.string():
        return None
    offsets = np.frombuffer(text.buffers()[1], np.int32, n + 1, text.offset * 4)
    first, last = int(offsets[0]), int(offsets[-1])
    data = text.buffers()[2]
    # Running sums of the byte classes (int32 while they cannot overflow: 16 per byte).
    total = np.zeros(last - first + 1, np.int32 if last - first < 2**26 else np.int64)
    if last > first:
        np.cumsum(_DECIMAL_BYTES[np.frombuffer(data, np.uint8, last - first, first)], out=total[1:])
    at = offsets - first
    sums = total[at[1:]] - total[at[:-1]]
    lengths = np.diff(offsets)
    other = sums >= 16
    plain = ~other & (sums <= 1) & (lengths > sums)
    if text.null_count:
        valid = valid_rows(text)
        plain &= valid
        other &= valid
    return plain, other
