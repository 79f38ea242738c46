"""Order-preserving integer codes for key columns, so a sort by key compares integers.

Arrow sorts three million 12-byte ids in about 4 CPU seconds (every comparison goes
through the strings); numpy sorts as many 64-bit integers in a quarter of a second. A
key's values are therefore packed into 64-bit words whose order and equality are exactly
the values': each byte position of a string (padded with zeros, its length last, so that
a prefix sorts first) and each integer becomes a field of the few bits its values there
need (a position holding only digits: 4 bits; one holding the same byte in every row:
none), fields packed most significant first. Ids of up to about 16 characters fit one
word. Codes compare only within the call that made them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_STRING_BYTES = 64  # longer strings are compared by Arrow itself (sort_codes: None)
_WORD_BITS = 64
Field = tuple[np.ndarray, int]  # values (uint64, below 2**bits) and bits


def _as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    elif pa.types.is_large_binary(values.type):
        values = values.cast(pa.binary())
    return values


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_binary(kind)


def _packable(values: pa.Array) -> bool:
    kind = values.type
    if values.null_count:
        return False  # key columns are required; anything else is sorted by Arrow
    if _is_text(kind):
        return not len(values) or int(pc.max(pc.binary_length(values)).as_py()) <= MAX_STRING_BYTES
    return pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_temporal(kind)


def _bits(distinct: int) -> int:
    return max(distinct - 1, 0).bit_length()


def _integer_field(values: np.ndarray) -> Field:
    """The values less their minimum: the same order, in as few bits as their range needs."""
    if not len(values):
        return np.zeros(0, np.uint64), 0
    if values.dtype == np.uint64:
        low = values.min()
        return values - low, int(values.max() - low).bit_length()
    values = values.astype(np.int64, copy=False)
    low, high = int(values.min()), int(values.max())
    if high - low >= 2**63:  # a range wider than int64 holds: flip the sign bit instead
        return values.view(np.uint64) ^ np.uint64(1 << 63), _WORD_BITS
    return (values - np.int64(low)).view(np.uint64), (high - low).bit_length()


def _string_fields(values: pa.Array) -> Iterator[Field]:
    """A field per byte position (ranked among the bytes found there), then the length."""
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], np.int32, n + 1, values.offset * 4).astype(np.int64)
    lengths = np.diff(offsets)
    longest = int(lengths.max()) if n else 0
    data = values.buffers()[2]
    raw = np.frombuffer(data, np.uint8) if data is not None and data.size else np.zeros(1, np.uint8)
    same_length = bool(n) and bool((lengths == longest).all())
    starts = offsets[:-1]
    for j in range(longest):  # one position at a time: temporaries of n values only
        if same_length:  # ids: a strided view of the bytes, no copy
            column = raw[starts[0] + j:starts[0] + j + n * longest:longest]
        else:
            column = np.where(lengths > j, raw[np.minimum(starts + j, raw.size - 1)], 0).astype(np.uint8)
        present = np.bincount(column, minlength=256) > 0
        rank = (np.cumsum(present) - 1).astype(np.uint64)
        yield rank[column], _bits(int(present.sum()))
    if not same_length:
        yield _integer_field(lengths)


def _fields(values: pa.Array) -> Iterator[Field]:
    kind = values.type
    if _is_text(kind):
        yield from _string_fields(values)
    elif pa.types.is_boolean(kind):
        yield _integer_field(values.cast(pa.int8()).to_numpy())
    else:
        if pa.types.is_temporal(kind):
            values = values.cast(pa.int64() if kind.bit_width == 64 else pa.int32())
        yield _integer_field(values.to_numpy())


def sort_codes(columns: list[pa.Array | pa.ChunkedArray]) -> list[np.ndarray] | None:
    """uint64 words (most significant first) ordering and equating rows as the columns'
    values do, lexicographically; None when a column cannot be packed (nulls, floats,
    strings over ``MAX_STRING_BYTES``): sort by the columns themselves then."""
    arrays = [_as_array(c) for c in columns]
    if not all(_packable(a) for a in arrays):
        return None
    n = len(arrays[0]) if arrays else 0
    words, word, used = [], np.zeros(n, np.uint64), 0
    for values in arrays:
        for field, bits in _fields(values):
            if not bits:
                continue  # one value in every row orders nothing
            if used + bits > _WORD_BITS:
                words.append(word)
                word, used = np.zeros(n, np.uint64), 0
            if bits == _WORD_BITS:
                word = field.astype(np.uint64)
            else:  # in place: no temporary of n words per field
                word <<= np.uint64(bits)
                word |= field
            used += bits
    words.append(word)
    return words


def stable_order(words: list[np.ndarray]) -> np.ndarray:
    """The row indices sorting ``words`` (equal codes in row order). One word with room for
    the row number below it is sorted as values (faster than an argsort by a third)."""
    n = len(words[0])
    index_bits = max(n - 1, 0).bit_length()
    if len(words) == 1 and int(words[0].max(initial=0)).bit_length() + index_bits <= _WORD_BITS:
        packed = words[0] << np.uint64(index_bits)
        packed |= np.arange(n, dtype=np.uint64)
        packed.sort()
        packed &= np.uint64((1 << index_bits) - 1)
        return packed.astype(np.int64)
    if len(words) == 1:
        return np.argsort(words[0], kind="stable")
    return np.lexsort(words[::-1])


def changes(words: list[np.ndarray]) -> np.ndarray:
    """True where a row's code differs from the previous row's (the first row: True)."""
    n = len(words[0])
    out = np.zeros(n, bool)
    if n:
        out[0] = True
        for word in words:
            out[1:] |= word[1:] != word[:-1]
    return out


def descending_rank(values: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """Each value's rank among the distinct values, the greatest 0: a descending sort of a
    column of few values (the source file) on integers instead of strings. None with nulls."""
    values = _as_array(values)
    if values.null_count:
        return None
    encoded = pc.dictionary_encode(values)
    order = pc.array_sort_indices(encoded.dictionary, order="descending").to_numpy()
    rank = np.empty(len(order), np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return pa.array(rank[encoded.indices.to_numpy()])
