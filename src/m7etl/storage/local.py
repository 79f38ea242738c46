"""A folder whose sub-paths are the bucket's keys (local runs, tests, the demo).

Writes go to a temporary file beside the target, then are renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from m7etl.exceptions import StorageError
from m7etl.storage.base import TMP_PREFIX, ObjectInfo, missing

if TYPE_CHECKING:
    import pyarrow as pa


class LocalStorage:
    """A folder whose sub-paths are the bucket's keys."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise StorageError(f"Key '{key}' points outside {self.root}.")
        return path

    def describe(self, key: str) -> str:
        return str(self._path(key))

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self.root / prefix
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return []
        found = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(TMP_PREFIX):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    st = path.stat()
                    found.append(ObjectInfo(key, st.st_size, st.st_mtime))
        return sorted(found, key=lambda o: o.key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise missing(self.describe(key)) from None

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise missing(self.describe(key)) from None

    def _atomic_target(self, key: str) -> tuple[Path, str]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
        os.close(fd)
        return path, tmp

    def write_bytes(self, key: str, data: bytes) -> None:
        path, tmp = self._atomic_target(key)
        try:
            Path(tmp).write_bytes(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def open_input(self, key: str) -> pa.NativeFile:
        import pyarrow as pa  # lazily: the S3-event and maintenance functions never read data

        try:
            return pa.OSFile(str(self._path(key)), "rb")
        except FileNotFoundError:
            raise missing(self.describe(key)) from None

    def upload_file(self, local_path: str | Path, key: str) -> None:
        path, tmp = self._atomic_target(key)
        try:
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def download_file(self, key: str, local_path: str | Path) -> None:
        try:
            shutil.copyfile(self._path(key), local_path)
        except FileNotFoundError:
            raise missing(self.describe(key)) from None

    def move(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        if not source.is_file():
            raise missing(self.describe(src))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def delete(self, keys: Iterable[str]) -> int:
        count = 0
        for key in keys:
            path = self._path(key)
            if path.is_file():
                path.unlink()
                count += 1
        return count
