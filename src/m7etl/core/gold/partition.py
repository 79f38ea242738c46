"""Stable partition numbers for Arrow values, to spill a large gold computation to disk.

Equal values always get the same partition, whatever array, batch or offset they come
in, so work split by partition can be finished one partition at a time. Strings are
hashed from their bytes in numpy (Arrow has no hash kernel in Python); numbers, dates and
booleans from their integer value; every null hashes alike. Only the spread matters here:
a collision costs balance, never correctness.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SLICE = 65_536  # rows hashed at once: byte-level temporaries stay a few MB
_WEIGHTS = np.random.default_rng(20250501).integers(1, 2**63, 64, dtype=np.uint64) | np.uint64(1)
_LENGTH_WEIGHT = np.uint64(0x9E3779B97F4A7C15)
_NULL_HASH = np.uint64(0x5BD1E9955BD1E995)  # every null alike


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (wrapping uint64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _string_hashes(text: pa.Array) -> np.ndarray:
    """A 64-bit hash of each value from its length and its first and last eight bytes
    (ids differ there; a long text differing only in its middle just shares a partition)."""
    n = len(text)
    offsets = np.frombuffer(text.buffers()[1], np.int32, n + 1, text.offset * 4).astype(np.int64)
    lengths = np.diff(offsets)
    data = text.buffers()[2]
    out = lengths.astype(np.uint64) * _LENGTH_WEIGHT
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    if not n or not raw.size:  # only nulls and empty strings
        return out
    if not text.null_count and (lengths == lengths[0]).all():
        return _same_length_hashes(raw[offsets[0]:offsets[-1]].reshape(n, int(lengths[0])), out)
    window = np.arange(8)
    for at, weight in ((offsets[:-1], _WEIGHTS[0]), (offsets[1:] - 8, _WEIGHTS[1])):
        index = at[:, None] + window  # 8 bytes from each value's start, or up to its end
        inside = (index >= offsets[:-1, None]) & (index < offsets[1:, None])
        picked = np.where(inside, raw[np.clip(index, 0, raw.size - 1)], 0).astype(np.uint8)
        out ^= _mix(picked.view(np.uint64).ravel() * weight)
    return out


def _same_length_hashes(block: np.ndarray, out: np.ndarray) -> np.ndarray:
    """:func:`_string_hashes` of values of one length (ids), from their n x length block:
    the same first and last eight bytes (zero-padded likewise), without index arrays."""
    n, length = block.shape
    if length >= 8:
        first, last = block[:, :8], block[:, length - 8:]
    else:
        first = np.zeros((n, 8), np.uint8)
        first[:, :length] = block
        last = np.zeros((n, 8), np.uint8)
        last[:, 8 - length:] = block
    for picked, weight in ((first, _WEIGHTS[0]), (last, _WEIGHTS[1])):
        out ^= _mix(np.ascontiguousarray(picked).view(np.uint64).ravel() * weight)
    return out


def _slice_hashes(values: pa.Array) -> np.ndarray:
    kind = values.type
    if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        values = values.cast(pa.string() if pa.types.is_large_string(kind) else pa.binary())
        kind = values.type
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        return _string_hashes(values)
    if pa.types.is_floating(kind):
        as_float = pc.fill_null(values.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        return (as_float + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into 0.0: equal values, one hash
    if pa.types.is_boolean(kind):
        values = values.cast(pa.int8())
    elif pa.types.is_temporal(kind):
        values = values.cast(pa.int64()) if kind.bit_width == 64 else values.cast(pa.int32())
    filled = pc.fill_null(values.cast(pa.int64()), 0)
    return filled.to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)


def _piece_hashes(piece: pa.Array) -> np.ndarray:
    hashed = _mix(_slice_hashes(piece))
    if piece.null_count:
        hashed[pc.is_null(piece).to_numpy(zero_copy_only=False)] = _NULL_HASH
    return hashed


def partition_of(values: pa.Array | pa.ChunkedArray | list, parts: int) -> np.ndarray:
    """The partition (0 to parts - 1) of each value, the same for equal values. ``values``
    may be a list of columns (a composite key): equal tuples share a partition."""
    columns = values if isinstance(values, list) else [values]
    columns = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
    n = len(columns[0]) if columns else 0
    out = np.zeros(n, dtype=np.int64)
    if parts <= 1 or not n:
        return out
    for at in range(0, n, _SLICE):
        hashed = np.zeros(min(_SLICE, n - at), dtype=np.uint64)
        for column in columns:  # order matters: (a, b) and (b, a) are different keys
            hashed = _mix(hashed * np.uint64(31) + _piece_hashes(column.slice(at, _SLICE)))
        out[at:at + len(hashed)] = (hashed % np.uint64(parts)).astype(np.int64)
    return out
