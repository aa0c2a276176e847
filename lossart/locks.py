"""OS-level locks on open files (`fcntl.flock`): exactly one holder, released when it dies.

Why flock and not "create a lock file, write a pid": a file that is created and then written can
be read half-made by a second process, judged stale and deleted, and then two processes hold the
"lock" (the race that let two grid jobs run at once). A flock is taken or refused by the kernel
in one step, is released when its holder's file descriptor closes, including when the process is
killed with -9, so no lock file ever needs deleting and none ever is: a stale lock cannot exist.

The lock file also holds a line of JSON about its holder (pid, host, start, command line) for
error messages only; the decision is the kernel's, never the file's content.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lossart.errors import LossartError


def holder_info() -> dict:
    """Who holds a lock: written into the lock file for messages."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
    }


def read_holder(path: Path) -> dict:
    """The holder line of a lock file ({} when empty, torn or unreadable: only for messages)."""
    try:
        data = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(info: dict) -> str:
    if not info:
        return "another process"
    return f"pid {info.get('pid')} on {info.get('host')}, since {info.get('started')}"


class FileLock:
    """A flock on `path` (created if missing, never deleted).

    `shared=True` takes a shared lock (many shared holders together, none beside an exclusive
    one). `try_acquire()` never waits; `acquire(timeout)` waits up to `timeout` seconds (None:
    as long as it takes). Exclusive holders write their `holder_info()` into the file.
    """

    def __init__(self, path: str | os.PathLike, shared: bool = False) -> None:
        self.path = Path(path)
        self.shared = shared
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:  # a file where the folder should be, a read-only disk, ...
            raise LossartError(
                f"{exc.filename or self.path}: cannot make the lock file {self.path.name} "
                f"there ({exc.strerror or exc})"
            ) from None

    def try_acquire(self) -> bool:
        """Take the lock if free now; False if someone else holds it."""
        if self._fd is not None:
            return True
        fd = self._open()
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        if not self._names(fd):  # its holder removed the file as we locked it: lock the new one
            os.close(fd)
            return self.try_acquire()
        self._fd = fd
        if not self.shared:
            self._write_info(fd)
        return True

    def acquire(self, timeout: float | None = None, poll: float = 0.01) -> bool:
        """Wait for the lock (up to `timeout` seconds); whether it was taken."""
        if timeout is None and self._fd is None:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            if not self._names(fd):  # removed by its last holder while we waited
                os.close(fd)
                return self.acquire(timeout, poll)
            self._fd = fd
            if not self.shared:
                self._write_info(fd)
            return True
        deadline = time.monotonic() + (timeout or 0.0)
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def _names(self, fd: int) -> bool:
        """Whether the locked descriptor is still the file at `path` (see `release(remove=)`)."""
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        there = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

    def _write_info(self, fd: int) -> None:
        line = (json.dumps(holder_info()) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, line, 0)

    def release(self, remove: bool = False) -> None:
        """Let go; `remove` deletes the file first, while still held, so that a finished or
        refused command leaves nothing behind. That is safe because a taker checks, once it
        holds a lock, that the file it locked is still the one named `path`."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if not self.shared:
                os.ftruncate(fd, 0)
            if remove:
                self.path.unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def fileno(self) -> int:
        """The locked descriptor (a child given it keeps the lock held while it lives)."""
        if self._fd is None:
            raise ValueError(f"{self.path}: lock not held")
        return self._fd

    def holder(self) -> dict:
        return read_holder(self.path)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def exclusive(path: str | os.PathLike, what: str, timeout: float | None = 60.0) -> Iterator[None]:
    """Hold an exclusive lock on `path` for a short read-modify-write; a one-line error naming
    `what` and the holder if it stays taken for `timeout` seconds."""
    lock = FileLock(path)
    if not lock.acquire(timeout):
        raise LossartError(
            f"{what}: locked by {describe_holder(lock.holder())} for over {timeout:g} s "
            f"({path}); wait for it to finish"
        )
    try:
        yield
    finally:
        lock.release()


def lock_beside(target: str | os.PathLike) -> Path:
    """The lock file of a file or folder that one process at a time may write: `.NAME.lock`
    beside it (outside it, so that an empty output folder stays empty)."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


@contextmanager
def working_on(target: str | os.PathLike, what: str) -> Iterator[FileLock]:
    """Hold `target`'s lock (`lock_beside`) while this process writes it; a one-line error
    naming the holder if another live process does (a killed holder's lock is free at once).
    The lock file is removed as the lock is let go (safe: see `FileLock.release`)."""
    lock = FileLock(lock_beside(target))
    try:
        taken = lock.try_acquire()
    except OSError as exc:
        raise LossartError(f"{target}: cannot lock it ({exc.strerror or exc})") from None
    if not taken:
        raise LossartError(
            f"{target}: another {what} is writing it ({describe_holder(lock.holder())}); "
            f"wait for it to finish"
        )
    try:
        yield lock
    finally:
        lock.release(remove=True)  # nothing is left beside the output, done or refused
