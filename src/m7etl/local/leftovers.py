"""The temporary folder a local run works in, and what killed runs left in the temp folder.

Each stage makes its own temporary folder (raw -> silver conversions, gold spills: tens to
hundreds of MB for a large day). A run puts them all in one work folder,
``<tmp>/m7-run-<pid>-<random>/``, which holds a lock (:mod:`m7etl.local.lock`) for as long
as the run lives; the kernel drops the lock when the process dies. A later run removes the
work folders whose lock nobody holds. Folders of the stages made straight in the temp
folder (``m7-r2s-*``, ``m7-s2g-*``: by an older version, or a caller without a work folder)
name no owner; they are removed only once nothing in them changed for LEGACY_IDLE_S (a
live stage writes into its folder all the time).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from m7etl.exceptions import UsageError
from m7etl.local.lock import FolderLock

WORK_PREFIX = "m7-run-"
WORK_LOCK = ".lock"
STAGE_PREFIXES = ("m7-r2s-", "m7-s2g-")
LEGACY_IDLE_S = 6 * 3600


@dataclass(frozen=True)
class Leftover:
    path: str
    size: int  # bytes


def temp_root(tmp_root: str | Path | None = None) -> Path:
    return Path(tmp_root) if tmp_root is not None else Path(tempfile.gettempdir())


@contextlib.contextmanager
def work_folder(tmp_root: str | Path | None = None) -> Iterator[Path]:
    """A new locked work folder for this run, removed when the block ends (on any error too)."""
    path = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=temp_root(tmp_root)))
    lock = FolderLock(path / WORK_LOCK)
    holder = lock.try_acquire()  # a folder made just now: nobody else may hold its lock
    if holder is not None:
        raise UsageError(f"The new work folder {path} is locked by another process ({holder}).",
                         hint="Run again; if this repeats, check what else cleans the "
                              "temporary folder.")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        lock.release()


def owner_pid(name: str) -> int | None:
    """The pid in ``m7-run-<pid>-<random>``, if the name has one."""
    head = name[len(WORK_PREFIX):].split("-", 1)[0] if name.startswith(WORK_PREFIX) else ""
    return int(head) if head.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_abandoned(tmp_root: str | Path | None = None, *, now: float | None = None) -> list[Leftover]:
    """Remove the work folders of dead runs and long-idle stage folders; return them."""
    root = temp_root(tmp_root)
    now = time.time() if now is None else now
    removed = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if entry.name.startswith(WORK_PREFIX):
            removed += _remove_dead_work_folder(path)
        elif entry.name.startswith(STAGE_PREFIXES) and now - _last_change(path) > LEGACY_IDLE_S:
            removed += _remove(path)
    return removed


def _remove_dead_work_folder(path: Path) -> list[Leftover]:
    pid = owner_pid(path.name)
    if pid is not None and pid_alive(pid):
        # Its run is alive: between mkdtemp and flock its lock file exists but is still free,
        # so a free lock alone does not make it abandoned. (A reused pid keeps a dead run's
        # folder until that pid ends: harmless.)
        return []
    if pid is None and not (path / WORK_LOCK).exists():
        return []  # not a folder of ours
    size = _size(path)  # before this process's note goes into the lock file
    lock = FolderLock(path / WORK_LOCK)
    try:
        if lock.try_acquire() is not None:
            return []  # a live run holds it
    except OSError:
        return []  # removed by another run meanwhile, or not ours to touch
    try:
        return _remove(path, size)
    finally:
        lock.release()


def _remove(path: Path, size: int | None = None) -> list[Leftover]:
    size = _size(path) if size is None else size
    shutil.rmtree(path, ignore_errors=True)
    return [] if path.exists() else [Leftover(str(path), size)]


def _files(path: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(path):
        yield Path(dirpath)
        for name in files:
            yield Path(dirpath) / name


def _size(path: Path) -> int:
    total = 0
    for p in _files(path):
        with contextlib.suppress(OSError):
            if p.is_file() and not p.is_symlink():
                total += p.lstat().st_size
    return total


def _last_change(path: Path) -> float:
    latest = 0.0
    for p in _files(path):
        with contextlib.suppress(OSError):
            latest = max(latest, p.lstat().st_mtime)
    return latest
