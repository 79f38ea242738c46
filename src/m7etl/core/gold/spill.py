"""Rows spilled to local Parquet files by a partition number, and read back file by file.

A large silver -> gold day sends its rows (or the columns a distinct count needs) here,
split by a stable partition of their key (:func:`m7etl.core.gold.partition.partition_of`), so each
file holds whole groups and can be finished alone with one file's rows in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


class Spill:
    """Rows written to ``parts`` Parquet files by a partition number, read back file by file."""

    def __init__(self, folder: Path, name: str, parts: int):
        self.folder, self.name, self.parts = folder, name, parts
        self._writers: list[pq.ParquetWriter] = []

    @classmethod
    def when_needed(cls, folder: Path | None, name: str, parts: int) -> Spill | None:
        """A spill when there is a folder and more than one part, else None (stay in memory)."""
        return cls(folder, name, parts) if folder is not None and parts > 1 else None

    def _path(self, part: int) -> Path:
        return self.folder / f"{self.name}-{part}.parquet"

    def write(self, rows: pa.Table, part: np.ndarray) -> None:
        if not self._writers:
            self._writers = [pq.ParquetWriter(self._path(p), rows.schema, compression="zstd",
                                              compression_level=1) for p in range(self.parts)]
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.parts + 1))
        ordered = rows.take(pa.array(order))
        for p, writer in enumerate(self._writers):
            if bounds[p + 1] > bounds[p]:
                writer.write_table(ordered.slice(bounds[p], bounds[p + 1] - bounds[p]))

    def read_back(self) -> Iterator[pa.Table]:
        """Each file's rows in turn (the file is deleted once read); nothing if none came."""
        for writer in self._writers:
            writer.close()
        for p in range(self.parts if self._writers else 0):
            rows = pq.read_table(self._path(p))
            self._path(p).unlink()
            yield rows
            del rows
            pa.default_memory_pool().release_unused()  # else the allocator keeps each file's pages
