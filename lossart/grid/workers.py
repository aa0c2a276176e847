"""Who does which tile: torchrun ranks (env RANK/WORLD_SIZE/LOCAL_RANK) and `--shard i/n`.

Nothing here invents a cluster protocol: ranks of one torchrun job talk through
`torch.distributed` (gloo on CPU, NCCL on GPU) only to agree on the list of missing tiles, to
share one error, and to wait for each other before rank 0 assembles; shards of a scheduler job
array never talk at all (each takes every n-th tile by a fixed rule).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from lossart.devices import cores_per_process, set_process_threads
from lossart.errors import LossartError

T = TypeVar("T")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`--shard i/n` (0 <= i < n) to (i, n)."""
    if text is None:
        return None
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise LossartError(f"--shard {text!r}: expected i/n, e.g. 0/8") from None
    if n < 1 or not 0 <= i < n:
        raise LossartError(f"--shard {text!r}: expected 0 <= i < n")
    return i, n


@dataclass(frozen=True)
class Workers:
    """This process's place among the workers of a grid job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    shard: tuple[int, int] | None = None

    @classmethod
    def from_env(cls, shard: tuple[int, int] | None = None) -> Workers:
        def env(name: str, default: int) -> int:
            try:
                return int(os.environ.get(name, default))
            except ValueError:
                raise LossartError(
                    f"environment variable {name}={os.environ[name]!r}: expected an integer"
                ) from None

        world = env("WORLD_SIZE", 1)
        return cls(
            rank=env("RANK", 0),
            world=world,
            local_rank=env("LOCAL_RANK", 0),
            local_world=env("LOCAL_WORLD_SIZE", world),
            shard=shard,
        )

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def shard_tasks(self, tasks: list[T]) -> list[T]:
        """The tasks of this shard: every n-th, by position in the full, fixed task list."""
        if self.shard is None:
            return list(tasks)
        i, n = self.shard
        return tasks[i::n]

    def rank_tasks(self, tasks: list[T]) -> list[T]:
        """This rank's share of a list every rank holds identically."""
        return tasks[self.rank :: self.world]

    def device_name(self, device: str) -> str:
        """`cuda` under torchrun means this rank's local GPU."""
        if self.distributed and device == "cuda":
            return f"cuda:{self.local_rank}"
        return device

    def start(self, device: str) -> None:
        """Join the torchrun job's process group (only when WORLD_SIZE > 1)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(self.local_rank)
            dist.init_process_group(backend=backend)
        if device == "cpu":
            # Ranks on one host share its cores; without this each would start a thread per core.
            set_process_threads(cores_per_process(self.local_world))

    def stop(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (identity when not distributed)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def lead(self, work: Callable[[], T]) -> T:
        """Run `work` on rank 0 only and return its result on every rank; its one-line error
        (LossartError) is raised on every rank, so no rank waits for a leader that failed."""
        status, result = None, None
        if self.leader:
            try:
                result = work()
            except LossartError as exc:
                status = str(exc)
        status, result = self.broadcast((status, result))
        if status:
            raise LossartError(status)
        return result

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()
