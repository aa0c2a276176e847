"""One grid job per run folder at a time: OS-level locks (`lossart.locks`, flock).

```
RUN/grids/locks/grid.lock           every job holds it: a whole job exclusively, a shard shared
RUN/grids/locks/all.lock            a whole (unsharded) job: torchrun rank 0 or a single process
RUN/grids/locks/shard-2-of-8.lock   one shard of a scheduler job array (exclusive)
```

Shards of one job array work side by side (each holds its own lock and `grid.lock` shared); a
whole job holds `grid.lock` exclusively, so it excludes every shard and every other whole job.
Ranks of a torchrun job share rank 0's locks. The kernel grants each lock in one step and drops
it when its holder dies (kill -9 included), so a killed job's lock is free at once and no lock
file is ever deleted. The files hold their holder's pid and host, for the message only.
"""

from __future__ import annotations

from pathlib import Path

from lossart.errors import LossartError
from lossart.grid.files import locks_dir
from lossart.locks import FileLock, describe_holder

WHOLE = "all"
GATE = "grid"


def lock_name(shard: tuple[int, int] | None) -> str:
    return WHOLE if shard is None else f"shard-{shard[0]}-of-{shard[1]}"


def _busy(grids: Path, path: Path) -> LossartError:
    return LossartError(
        f"{grids.parent}: grids are being computed by another process "
        f"({describe_holder(FileLock(path).holder())}); wait for it to finish"
    )


class GridLock:
    """Holds the grid locks of `grids` while a grid job runs (a context manager)."""

    def __init__(self, grids: Path, shard: tuple[int, int] | None = None) -> None:
        self.grids = Path(grids)
        self.dir = locks_dir(self.grids)
        self.name = lock_name(shard)
        self.path = self.dir / f"{self.name}.lock"
        self._own = FileLock(self.path)
        self._gate = FileLock(self.dir / f"{GATE}.lock", shared=shard is not None)

    @property
    def held(self) -> bool:
        return self._own.held and self._gate.held

    def acquire(self) -> None:
        """Take the locks now or raise a one-line error naming the holder; never waits."""
        if not self._own.try_acquire():
            raise _busy(self.grids, self.path)
        if not self._gate.try_acquire():
            self._own.release()
            raise _busy(self.grids, self._holder_path())

    def _holder_path(self) -> Path:
        """A lock file naming who holds the gate: the whole job's, else some shard's."""
        if self.name != WHOLE:
            return self.dir / f"{WHOLE}.lock"
        for p in sorted(self.dir.glob("shard-*.lock")):
            if FileLock(p).holder():
                return p
        return self.dir / f"{GATE}.lock"

    def release(self) -> None:
        self._gate.release()
        self._own.release()

    def __enter__(self) -> GridLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
