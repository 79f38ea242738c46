"""The primary key in aggregate gold: a key seen more than once in a day counts once.

The day's keys are checked first, by a 64-bit hash of each (:func:`key_hashes`,
:class:`KeyCheck`): most days repeat no key, and then the aggregate reads and folds
exactly what it did before. Otherwise the rows whose hash repeats are set aside
(:class:`Contested`, in memory or spilled by hash) and, once every row is seen, each key's
latest record joins the aggregate, chosen as the snapshot chooses it. A hash collision
only sets a row aside for nothing: the latest record is picked on the key itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m7etl.core.contracts import Contract
from m7etl.core.gold.partition import _mix, partition_of
from m7etl.core.gold.snapshot import _latest
from m7etl.core.gold.spill import Spill

_ALL_BITS = 1 << 63  # partition_of into 2**63 parts: a 63-bit hash of each value
_NULL_HASH = np.uint64(0x2545F4914F6CDD1D)  # every null alike
_GATHER_BYTES = 1 << 20  # strings of mixed lengths: bytes gathered at once


@dataclass(frozen=True)
class Repeats:
    """What the check of a day's keys found: which rows (in the order they were checked,
    one bit each) hold a key hash seen more than once, how many, and how many spill files
    those rows need (1: in memory)."""

    held: np.ndarray  # np.packbits of one flag per row
    rows: int = 0
    parts: int = 1


def _block_hashes(block: np.ndarray, length: int) -> np.ndarray:
    """A hash of each row of ``block`` (rows of ``length`` bytes) from every byte, 8 at a time."""
    width = -(-length // 8) * 8
    if width != length:
        padded = np.zeros((block.shape[0], width), np.uint8)
        padded[:, :length] = block
        block = padded
    out = np.full(block.shape[0], length + 1, np.uint64)
    if not width:
        return _mix(out)
    words = np.ascontiguousarray(block).view(np.uint64)
    for w in range(words.shape[1]):
        out = _mix(out * np.uint64(31) + words[:, w])
    return out


def _string_hashes(values: pa.Array) -> np.ndarray:
    """Ids usually share one length: their bytes are then one block, hashed in a few numpy
    passes; strings of mixed lengths are hashed one length at a time."""
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], np.int32, n + 1, values.offset * 4)
    data = values.buffers()[2]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    if n and (lengths == lengths[0]).all():
        length, start = int(lengths[0]), int(offsets[0])
        return _block_hashes(raw[start:start + n * length].reshape(n, length), length)
    offsets = offsets.astype(np.int64)
    out = np.empty(n, np.uint64)
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        step = max(1, _GATHER_BYTES // max(length, 1))
        for at in range(0, len(rows), step):
            some = rows[at:at + step]
            out[some] = _block_hashes(raw[offsets[some][:, None] + np.arange(length)], length)
    return out


def _column_hashes(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = values.type
    if pa.types.is_dictionary(kind):
        values = values.cast(kind.value_type)
        kind = values.type
    if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        values = values.cast(pa.string() if pa.types.is_large_string(kind) else pa.binary())
        kind = values.type
    if not (pa.types.is_string(kind) or pa.types.is_binary(kind)):
        return partition_of(values, _ALL_BITS).view(np.uint64)  # numbers, dates, booleans
    hashed = _string_hashes(values)
    if values.null_count:
        hashed[pc.is_null(values).to_numpy(zero_copy_only=False)] = _NULL_HASH
    return hashed


def key_hashes(rows: pa.Table | pa.RecordBatch, key: Sequence[str]) -> np.ndarray:
    """A 64-bit hash of each row's key (the columns in order): equal keys, equal hashes."""
    out = np.zeros(rows.num_rows, np.uint64)
    for name in key:
        out = _mix(out * np.uint64(31) + _column_hashes(rows.column(name)))
    return out


class KeyCheck:
    """Which rows of a day hold a key hash that repeats. It keeps every row's hash (8 bytes
    a row), or spills them with their row numbers to ``parts`` files by hash, each file
    then checked alone."""

    def __init__(self, spill_dir: Path | None = None, parts: int = 1):
        self.spill = Spill.when_needed(spill_dir, "keys", parts)
        self._hashes: list[np.ndarray] = []
        self.rows = 0

    def add(self, hashes: np.ndarray) -> None:
        if self.spill is None:
            self._hashes.append(hashes)
        else:
            part = (hashes % np.uint64(self.spill.parts)).astype(np.int64)
            numbers = np.arange(self.rows, self.rows + len(hashes), dtype=np.int64)
            self.spill.write(pa.table({"hash": hashes.view(np.int64), "row": numbers}), part)
        self.rows += len(hashes)

    def repeats(self) -> Repeats:
        """The rows holding a repeated hash (kept in memory: ``parts`` 1)."""
        held = np.zeros(self.rows, bool)
        if self.spill is None:
            if self._hashes:
                held[_repeated(np.concatenate(self._hashes))] = True
        else:
            for t in self.spill.read_back():
                numbers = t.column("row").to_numpy()
                held[numbers[_repeated(t.column("hash").to_numpy().view(np.uint64))]] = True
        self._hashes = []
        return Repeats(np.packbits(held), int(held.sum()))


_FEW = 1 << 20  # low halves shared by at most this many values: their rows are looked up


def _repeated(hashes: np.ndarray) -> np.ndarray:
    """Indices of the hashes that occur more than once. Their low 32 bits are sorted first
    (twice as fast as whole hashes); only the values sharing a low half (a day of 2.3M
    distinct keys has ~600 such pairs by chance) are then compared whole."""
    low = hashes.astype(np.uint32)
    ranked = np.sort(low)
    same = ranked[1:] == ranked[:-1]
    if not same.any():
        return np.zeros(0, np.int64)
    shared = np.unique(ranked[1:][same])
    del ranked, same
    candidates = None  # many keys repeat: every hash is compared whole
    if len(shared) <= _FEW:  # a table of their top bits, 16 times as many slots, rules out most rows
        bits = min(24, max(16, len(shared).bit_length() + 4))
        table = np.zeros(1 << bits, bool)
        table[shared >> np.uint32(32 - bits)] = True
        maybe = np.flatnonzero(table[low >> np.uint32(32 - bits)])
        at = np.minimum(np.searchsorted(shared, low[maybe]), len(shared) - 1)
        candidates = maybe[shared[at] == low[maybe]]
    del low
    values = hashes if candidates is None else hashes[candidates]
    order = np.argsort(values)
    ranked = values[order]
    same = ranked[1:] == ranked[:-1]
    held = np.zeros(len(ranked), bool)
    held[1:] |= same
    held[:-1] |= same
    found = order[held]
    return found if candidates is None else candidates[found]


def _flags(packed: np.ndarray, start: int, n: int) -> np.ndarray:
    """Flags ``start`` to ``start + n`` of a packed bit array, as booleans."""
    first = start // 8
    bits = np.unpackbits(packed[first:(start + n + 7) // 8 + 1])
    return bits[start - first * 8:start - first * 8 + n].astype(bool)


def _decoded(rows: pa.Table) -> pa.Table:
    """Dictionary columns (the source key is read so: one value a file, cheap to set aside)
    as plain values: Arrow sorts no dictionary column."""
    for i, f in enumerate(rows.schema):
        if pa.types.is_dictionary(f.type):
            rows = rows.set_column(i, f.with_type(f.type.value_type), rows.column(i).cast(f.type.value_type))
    return rows


class Contested:
    """Rows holding a repeated key hash, set aside until every row is seen, then reduced to
    each key's latest record by the snapshot's rule. In memory, or spilled to ``parts``
    files by hash: a key lives in one file only, so each file is reduced alone. ``held``
    (a :class:`Repeats`' flags, for the rows in the order they come) None means nothing
    was checked: every row is set aside."""

    def __init__(self, contract: Contract, held: np.ndarray | None, spill_dir: Path | None = None,
                 parts: int = 1):
        self.contract, self.key = contract, list(contract.primary_key)
        self.held = held
        self.spill = Spill.when_needed(spill_dir, "contested", parts)
        self._rows: list[pa.Table] = []
        self._seen = 0
        self.rows = self.kept = 0

    @property
    def superseded(self) -> int:
        """Rows that lost to a later record of their key."""
        return self.rows - self.kept

    def split(self, chunk: pa.Table, columns: list[str]) -> pa.Table:
        """Set the chunk's contested rows aside; the others are returned (``columns`` only:
        the key and the lineage are not copied for rows that need them no more)."""
        mask = None
        if self.held is not None:
            mask = _flags(self.held, self._seen, chunk.num_rows)
        self._seen += chunk.num_rows
        if mask is not None and not mask.any():
            return chunk.select(columns)
        contested = chunk if mask is None else chunk.filter(pa.array(mask))
        self.rows += contested.num_rows
        if self.spill is None:
            self._rows.append(contested)
        else:
            part = (key_hashes(contested, self.key) % np.uint64(self.spill.parts)).astype(np.int64)
            self.spill.write(contested, part)
        rest = chunk.select(columns)
        return rest.slice(0, 0) if mask is None else rest.filter(pa.array(~mask))

    def latest(self) -> Iterator[pa.Table]:
        """Each key's latest record, one spill file's keys at a time."""
        if self.spill is not None:
            pieces = self.spill.read_back()
        else:
            pieces = iter([pa.concat_tables(self._rows)] if self._rows else [])
        self._rows = []
        for rows in pieces:
            if rows.num_rows:
                kept = _latest(self.contract, _decoded(rows))
                self.kept += kept.num_rows
                yield kept
