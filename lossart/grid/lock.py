"""One grid job per run folder at a time: lock files with pid and host.

```
RUN/grids/locks/all.lock            a whole (unsharded) job: torchrun rank 0 or a single process
RUN/grids/locks/shard-2-of-8.lock   one shard of a scheduler job array
```

Shards of one job array work side by side (each holds its own lock); a whole job excludes every
shard and every other whole job. Ranks of a torchrun job share rank 0's lock. A lock whose pid is
dead on this host is stale (the job was killed) and is taken over; a lock from another host cannot
be checked, so the message says which host holds it and how to clear it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from lossart.errors import LossartError
from lossart.grid.files import locks_dir
from lossart.runs import now_iso

WHOLE = "all"


def lock_name(shard: tuple[int, int] | None) -> str:
    return WHOLE if shard is None else f"shard-{shard[0]}-of-{shard[1]}"


def _alive(info: dict) -> bool:
    """Whether the lock's owner may still run (always True for another host: we cannot tell)."""
    if info.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(info.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (ValueError, OverflowError):
        return False
    return True


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return {}  # a torn lock (killed while writing it): owner unknown, treated as stale


def _describe(path: Path, info: dict) -> str:
    return (
        f"{path.parent.parent.parent}: grids are being computed by another process "
        f"(pid {info.get('pid')} on {info.get('host')}, since {info.get('started')}); "
        f"wait for it, or delete {path} if that process is gone"
    )


class GridLock:
    """Holds `RUN/grids/locks/<name>.lock` while a grid job runs (a context manager)."""

    def __init__(self, grids: Path, shard: tuple[int, int] | None = None) -> None:
        self.dir = locks_dir(grids)
        self.name = lock_name(shard)
        self.path = self.dir / f"{self.name}.lock"
        self.held = False

    def _conflicts(self) -> list[tuple[Path, dict]]:
        out = []
        for p in sorted(self.dir.glob("*.lock")):
            if p == self.path:
                continue
            if self.name != WHOLE and p.stem != WHOLE:
                continue  # shards of a job array coexist
            info = _read(p)
            if info is not None and info and _alive(info):
                out.append((p, info))
        return out

    def acquire(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": now_iso(),
            "argv": sys.argv,
        }
        for _attempt in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                old = _read(self.path)
                if old and _alive(old):
                    raise LossartError(_describe(self.path, old)) from None
                self.path.unlink(missing_ok=True)  # stale: its process is dead; take it over
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
            break
        else:
            raise LossartError(
                f"{self.path}: could not take the grid lock (another process races for it)"
            )
        self.held = True
        conflicts = self._conflicts()
        if conflicts:
            self.release()
            raise LossartError(_describe(*conflicts[0]))

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> GridLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
