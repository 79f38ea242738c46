"""Exclusive use of a folder by one process: an OS lock (``flock``) on a file in it.

The kernel releases the lock when its holder ends, however it ends (``kill -9``, a power
cut of the process), so a crash never leaves a stale lock and nobody has to delete a
file by hand. The file stays; it only says who holds it (pid, start, host), for the
message another process shows. It is never deleted: a process that opened the old file
would lock a different inode than one that opens a new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# How long a process that found the lock taken waits for the holder's note, which the
# holder writes right after taking the lock.
NOTE_WAIT_S = 0.5


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its note says (any field may be missing from a damaged note)."""

    pid: int | None = None
    started_at: str | None = None
    host: str | None = None

    def describe(self) -> str:
        """``pid 123, started 2026-12-01T10:00:00+00:00 on host h``, or what is known of it."""
        text = f"pid {self.pid}" if self.pid else "pid unknown"
        if self.started_at:
            text += f", started {self.started_at}"
        if self.host:
            text += f" on host {self.host}"
        return text


def parse_note(text: str) -> Holder | None:
    """The holder a lock file's note names; None while it is empty or half-written."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    return Holder(pid if isinstance(pid, int) else None, data.get("started_at"), data.get("host"))


def note_for_this_process() -> str:
    return json.dumps({"pid": os.getpid(),
                       "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                       "host": socket.gethostname()})


class FolderLock:
    """``flock`` on ``path``: :meth:`try_acquire` never waits; release with :meth:`release`
    (or let the process end). One instance holds one lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> Holder | None:
        """Take the lock and write this process's note: None. If another holds it: its note."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_note(fd)
            os.close(fd)
            return holder
        except BaseException:
            os.close(fd)
            raise
        note = note_for_this_process().encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, note, 0)
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_note(fd: int) -> Holder:
    """The holder's note, waiting up to NOTE_WAIT_S for it to be written."""
    deadline = time.monotonic() + NOTE_WAIT_S
    while True:
        holder = parse_note(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        if holder is not None or time.monotonic() > deadline:
            return holder or Holder()
        time.sleep(0.02)


def is_locked(path: str | Path) -> bool:
    """Whether a live process holds the lock on ``path`` (False if there is no such file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False
