"""What the pipeline needs from a bucket: the :class:`Storage` protocol and its records.

The core only talks to this protocol, so the same code runs on a laptop (a folder), in
tests (a folder or a moto server) and in Lambda (S3). Writes are atomic on every backend:
a reader never sees a half-written object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from m7etl.exceptions import ObjectNotFoundError

if TYPE_CHECKING:
    import pyarrow as pa

TMP_PREFIX = ".m7tmp-"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: float  # seconds since the epoch


class Storage(Protocol):
    """What the pipeline needs from a bucket."""

    url: str

    def list(self, prefix: str) -> list[ObjectInfo]: ...
    def walk(self, prefix: str) -> Iterator[ObjectInfo]: ...  # list(), in key order, lazily
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def open_input(self, key: str) -> pa.NativeFile: ...
    def upload_file(self, local_path: str | Path, key: str) -> None: ...
    def download_file(self, key: str, local_path: str | Path) -> None: ...
    def move(self, src: str, dst: str) -> None: ...
    def delete(self, keys: Iterable[str]) -> int: ...
    def describe(self, key: str) -> str: ...


def missing(what: str, key: str | None = None) -> ObjectNotFoundError:
    """The error of every backend for an object that is not there (callers test its class,
    never its text)."""
    return ObjectNotFoundError(f"{what} does not exist.", key=key)


