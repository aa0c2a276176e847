"""Replace a derived folder only once its replacement is complete (stdlib only).

A rebuild of a folder (a terrain bundle, a video's frames cache, captioned copies) is written
into a sibling staging folder `.NAME.new-PID`; `swap_in` then puts it in place: on Linux in one
step (`renameat2(RENAME_EXCHANGE)` swaps the two names atomically), elsewhere by renaming the
old folder aside to `.NAME.old-PID` and the new one in. The old folder is deleted only after
the new one is in place. A crash at any moment leaves the old folder or the new one complete
under NAME, or (fallback only, between its two renames) the complete old one aside, which
`sweep` puts back. `sweep` also deletes staging folders whose process is dead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import sys
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def staging_dir(root: Path) -> Path:
    """Where this process builds the replacement of `root` (a sibling, same file system)."""
    return root.parent / f".{root.name}.new-{os.getpid()}"


def _aside_dir(root: Path) -> Path:
    return root.parent / f".{root.name}.old-{os.getpid()}"


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def swap_in(staging: Path, root: Path) -> None:
    """Put the complete folder `staging` at `root`, then delete what was there."""
    staging, root = Path(staging), Path(root)
    if not root.exists():
        os.rename(staging, root)
        _fsync_dir(root.parent)
        return
    if _exchange(staging, root):
        _fsync_dir(root.parent)
        shutil.rmtree(staging, ignore_errors=True)  # now the old folder
        return
    aside = _aside_dir(root)
    os.rename(root, aside)
    os.rename(staging, root)
    _fsync_dir(root.parent)
    shutil.rmtree(aside, ignore_errors=True)


def _pid_of(name: str) -> int | None:
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    """Whether a leftover's process may still be writing it (this process's own: a failed try)."""
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def leftovers(root: Path) -> list[Path]:
    """Staging and set-aside folders of `root` left by processes that are gone."""
    root = Path(root)
    if not root.parent.is_dir():
        return []
    found = []
    for kind in ("new", "old"):
        for p in root.parent.glob(f".{root.name}.{kind}-*"):
            if not _alive(_pid_of(p.name)):
                found.append(p)
    return sorted(found)


def sweep(root: Path, complete=lambda p: True) -> list[Path]:
    """Clean up after a crash: put a set-aside `root` back if `root` is missing (it is the
    complete old folder), then delete the dead processes' staging folders; returns them."""
    root = Path(root)
    gone = leftovers(root)
    if not root.exists():
        for p in gone:
            if ".old-" in p.name and complete(p):
                os.rename(p, root)
                gone.remove(p)
                break
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone
