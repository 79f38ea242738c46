"""Rows spilled to local files by a partition number, and read back partition by partition.

A large silver -> gold day sends its rows (or the columns a distinct count needs) here,
split by a stable partition of their key (:func:`m7etl.core.gold.partition.partition_of`), so
each partition holds whole groups and can be finished alone with one partition's rows in
memory.

Rows are buffered up to ``BUFFER_BYTES`` and written as one run: an Arrow IPC file (zstd
level 1) holding one record batch per partition. So one file is written at a time
whatever the number of partitions, and reading a partition back reads its batch of every
run (the runs open for reading: one per ~48 MB spilled). One Parquet file per partition,
written batch by batch, kept every file open for writing and cut the rows into row groups
of a few thousand rows: for 3M device rows 4 partitions cost 2.0 CPU s to write and 0.9
to read, 57 partitions 4.1 and 2.1; runs cost 1.4 and 0.5 for 4, 2.3 and 0.5 for 57.
(lz4 is a third cheaper but its files 1.6x larger: a 2 GB CSV's spill would near 1 GB
of the function's 2 GB of /tmp.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

BUFFER_BYTES = 48 * 1024 * 1024  # rows held before they are written as one run
_OPTIONS = ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=1))


class Spill:
    """Rows written to ``parts`` partitions by a partition number, read back one by one."""

    def __init__(self, folder: Path, name: str, parts: int):
        self.folder, self.name, self.parts = folder, name, parts
        self._pending: list[tuple[pa.Table, np.ndarray]] = []
        self._pending_bytes = 0
        self._runs: list[tuple[Path, np.ndarray]] = []  # file, batch number of each partition (-1: none)
        self._schema: pa.Schema | None = None

    @classmethod
    def when_needed(cls, folder: Path | None, name: str, parts: int) -> Spill | None:
        """A spill when there is a folder and more than one part, else None (stay in memory)."""
        return cls(folder, name, parts) if folder is not None and parts > 1 else None

    @property
    def runs(self) -> int:
        """Run files written so far (each one file on disk, written whole)."""
        return len(self._runs)

    def write(self, rows: pa.Table, part: np.ndarray) -> None:
        if self._schema is None:
            self._schema = rows.schema
        self._pending.append((rows, part))
        self._pending_bytes += rows.nbytes
        if self._pending_bytes >= BUFFER_BYTES:
            self._write_run()

    def _write_run(self) -> None:
        if not self._pending:
            return
        # one dictionary per column in a run (an IPC file holds one), then rows by partition
        rows = pa.concat_tables([t for t, _ in self._pending]).unify_dictionaries()
        part = np.concatenate([p for _, p in self._pending])
        self._pending, self._pending_bytes = [], 0
        # small integers: numpy's stable sort of them is a radix sort, 4x faster than of int64
        order = np.argsort(part.astype(np.uint16) if self.parts <= 1 << 16 else part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.parts + 1))
        ordered = rows.take(pa.array(order)).combine_chunks()
        del rows
        batch_of = np.full(self.parts, -1, np.int64)
        path = self.folder / f"{self.name}-run-{len(self._runs)}.arrow"
        with pa.OSFile(str(path), "wb") as sink, \
                ipc.new_file(sink, ordered.schema, options=_OPTIONS) as writer:
            for number, p in enumerate(np.flatnonzero(bounds[1:] > bounds[:-1]).tolist()):
                batch_of[p] = number
                writer.write_batch(ordered.slice(bounds[p], bounds[p + 1] - bounds[p]).to_batches()[0])
        self._runs.append((path, batch_of))
        del ordered
        pa.default_memory_pool().release_unused()  # mimalloc keeps freed pages otherwise

    def _partition(self, readers: list, p: int) -> pa.Table:
        batches = [reader.get_batch(int(batch_of[p])) for reader, batch_of in readers if batch_of[p] >= 0]
        return pa.Table.from_batches(batches, schema=self._schema)

    def read_back(self) -> Iterator[pa.Table]:
        """Each partition's rows in turn, in the order written; the files are deleted once
        read (or when the reading stops); nothing if nothing was written."""
        self._write_run()
        readers = [(ipc.open_file(pa.OSFile(str(path))), batch_of) for path, batch_of in self._runs]
        try:
            for p in range(self.parts if self._runs else 0):
                yield self._partition(readers, p)  # held by the reader only, not by this frame
                pa.default_memory_pool().release_unused()
        finally:
            readers.clear()
            for path, _ in self._runs:
                path.unlink(missing_ok=True)
            self._runs = []
