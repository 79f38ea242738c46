"""A folder whose sub-paths are the bucket's keys (local runs, tests, the demo).

Writes go to a temporary file beside the target, then are renamed into place. A folder
is not a bucket: it may hold symbolic links, FIFOs, unreadable files or folders named like
files. :meth:`LocalStorage.list` yields regular files only, :meth:`LocalStorage.unusable`
says why the other entries of a folder are not taken, and a move or delete acts on the
entry itself, never on what a link points to.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from m7etl.exceptions import StorageError
from m7etl.storage.base import TMP_PREFIX, ObjectInfo, missing

if TYPE_CHECKING:
    import pyarrow as pa


def entry_problem(lst: os.stat_result, target: os.stat_result | OSError | None = None, *,
                  link: str | None = None, outside: bool = False, readable: bool = True,
                  file_name: bool = True) -> str | None:
    """Why a folder entry cannot be taken as an input file, with the fix; None if it can.

    ``lst`` is the entry's own ``lstat``; for a symbolic link, ``target`` is the ``stat`` of
    what it points to (or the error following it), ``link`` its text and ``outside`` whether
    it resolves outside the root. ``readable``: opening it for reading worked. ``file_name``:
    the name looks like an input file (only such directories are worth a word). Pure, so
    each case can be tested with a made-up stat result (root can read a mode-000 file).
    """
    mode = lst.st_mode
    if stat.S_ISLNK(mode):
        if isinstance(target, OSError):
            if target.errno == errno.ELOOP:
                return f"a symbolic link loop (-> {link}): not a file; remove the link"
            return (f"a dangling symbolic link (-> {link}: {target.strerror}); remove it or "
                    "copy the file itself into landing/")
        where = "outside the data folder" if outside else "inside the data folder"
        return (f"a symbolic link (-> {link}, {where}): moving it would move or strand the file "
                "it points to; copy the file itself into landing/")
    if stat.S_ISDIR(mode):
        return "a directory, not a file; put its files in landing/ itself" if file_name else None
    if not stat.S_ISREG(mode):
        return f"a {_kind(mode)}, not a regular file; write the data to a plain file"
    if not readable:
        return (f"no read permission (mode {stat.filemode(mode)}, owner uid {lst.st_uid}); "
                "make it readable (chmod a+r) and run again")
    return None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def _readable(path: str) -> bool:
    """Opening for reading works (O_NONBLOCK: never waits; only regular files get here)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except PermissionError:
        return False
    except OSError:
        return True  # gone or replaced meanwhile: the move or the read will say so
    os.close(fd)
    return True


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

    def _entry(self, key: str) -> Path:
        """The path of ``key`` itself: its folder resolved, a link at the end left a link,
        so that a move or a delete acts on the entry, never on the file it points to."""
        path = self.root / key
        if path.name in ("", ".", ".."):
            raise StorageError(f"Key '{key}' does not name a file.")
        parent = path.parent.resolve()
        if parent != self.root and self.root not in parent.parents:
            raise StorageError(f"Key '{key}' points outside {self.root}.")
        return parent / path.name

    def describe(self, key: str) -> str:
        return str(self._path(key))

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object under ``prefix`` (one implementation with :meth:`walk`, so a prefix
        naming a folder without its "/" also finds the files beside it, as in S3)."""
        return sorted(self.walk(prefix), key=lambda o: o.key)

    def unusable(self, prefix: str) -> dict[str, str]:
        """The entries directly in folder ``prefix`` that are not plain readable files, with
        why (:func:`entry_problem`): key -> reason. Temporary files of writes are left out."""
        folder = self.root / prefix
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        base = prefix.rstrip("/")
        found = {}
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                continue
            try:
                lst = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            target, link, outside, readable = None, None, False, True
            if stat.S_ISLNK(lst.st_mode):
                link = os.readlink(entry.path)
                try:
                    target = os.stat(entry.path)
                    resolved = Path(entry.path).resolve()
                    outside = self.root not in resolved.parents
                except OSError as exc:
                    target = exc
            elif stat.S_ISREG(lst.st_mode):
                readable = _readable(entry.path)
            problem = entry_problem(lst, target, link=link, outside=outside, readable=readable,
                                    file_name=entry.name.lower().endswith((".csv", ".csv.gz")))
            if problem:
                found[f"{base}/{entry.name}" if base else entry.name] = problem
        return found

    def remove_partial_writes(self, prefixes: Iterable[str]) -> list[ObjectInfo]:
        """Delete the temporary files of writes a killed process left under ``prefixes``.

        Only safe while no other process writes there: the local runner calls it holding
        the data folder's run lock. Returns what was removed (key, size).
        """
        removed = []
        for prefix in prefixes:
            start = self.root / prefix
            if not start.is_dir():
                continue
            for dirpath, _dirs, files in os.walk(start):
                for name in files:
                    if not name.startswith(TMP_PREFIX):
                        continue
                    path = Path(dirpath) / name
                    try:
                        size = path.lstat().st_size
                        path.unlink()
                    except FileNotFoundError:
                        continue
                    removed.append(ObjectInfo(path.relative_to(self.root).as_posix(), size, 0.0))
        return sorted(removed, key=lambda o: o.key)

    def walk(self, prefix: str) -> Iterator[ObjectInfo]:
        """The objects whose key starts with ``prefix``, as S3 lists them: lazily, in key order
        (a folder sorts as its name plus "/"), holding one folder's entries at a time."""
        base = self.root / prefix
        start = base if not prefix or prefix.endswith("/") else base.parent

        def folder(path: str) -> Iterator[ObjectInfo]:
            try:
                entries = sorted(os.scandir(path),  # a link is never followed (a loop raised)
                                 key=lambda e: e.name + "/" * e.is_dir(follow_symlinks=False))
            except (FileNotFoundError, NotADirectoryError):
                return
            for entry in entries:
                key = Path(entry.path).relative_to(self.root).as_posix()
                if entry.is_dir(follow_symlinks=False):
                    if (key + "/").startswith(prefix[:len(key) + 1]):
                        yield from folder(entry.path)  # os.walk does not follow links either
                    continue
                if entry.name.startswith(TMP_PREFIX) or not key.startswith(prefix):
                    continue
                try:
                    st = entry.stat()
                except OSError:  # a dangling link, a loop, or gone meanwhile: no object
                    continue
                if stat.S_ISREG(st.st_mode):  # not a FIFO, socket or device
                    yield ObjectInfo(key, st.st_size, st.st_mtime)

        if start.is_dir():
            yield from folder(str(start))

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
        """Rename a regular file; a link or a special file is refused (never followed)."""
        source, target = self._entry(src), self._entry(dst)
        try:
            mode = source.lstat().st_mode
        except FileNotFoundError:
            raise missing(str(source), src) from None
        if not stat.S_ISREG(mode):
            what = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise StorageError(f"{source} is {what}; it was not moved.",
                               hint="Replace it with the file itself.")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        except OSError as exc:
            raise StorageError(f"Cannot move {source} to {target}: {exc.strerror}.",
                               hint="Check the folders' permissions and free space.") from None

    def delete(self, keys: Iterable[str]) -> int:
        """Delete files; a key that is a link loses the link, not the file it points to."""
        count = 0
        for key in keys:
            path = self._entry(key)
            if path.is_file():
                path.unlink()
                count += 1
        return count
