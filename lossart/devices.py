"""The compute `--device`: one meaning for every command that trains or evaluates networks.

Accepted: `cpu`, `cuda`, `cuda:N` and `auto` (CUDA where there is a GPU, else the CPU). Nothing
else: the grid engine's strategies and the thread policy know these two device types only.
The CPU thread policy lives here too, once: `cpu_threads` (a stage's threads, restored after),
`cores_per_process` and `set_process_threads` (worker processes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from lossart.errors import LossartError
from lossart.options import Threads

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"  # the CLI's --device help lists the same


def pick_device(name: str) -> str:
    """`--device` as a checked device name, `auto` made concrete (`cuda` or `cpu`).

    Names stay strings, so that `cuda` can still mean each torchrun rank's own GPU downstream.
    """
    if str(name).strip().lower() == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    resolve_device(name)
    return str(name)


def resolve_device(name: str | torch.device) -> torch.device:
    """A torch device that exists here, or a one-line error naming `--device`."""
    if str(name).strip().lower() == "auto":
        return torch.device(pick_device("auto"))
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise LossartError(f"--device {name!r}: expected {DEVICE_CHOICES}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LossartError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LossartError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif device.type != "cpu":
        raise LossartError(f"--device {name!r}: expected {DEVICE_CHOICES}")
    return device


# ---------------------------------------------------------------- the CPU thread policy, in one place


@contextmanager
def cpu_threads(threads: int | None, device: Any = "cpu", small: bool = False) -> Iterator[None]:
    """Run with `threads` torch threads; None means 1 for small (built-in) data on the CPU.

    Small models on a busy CPU train far faster on one thread (smallcnn steps measured 15-20 ms
    on one thread against 80-700 ms on two shared cores); resume is bitwise exact on the same
    device and thread count.
    """
    old = torch.get_num_threads()
    if threads is None and small and str(device).startswith("cpu"):
        threads = 1
    Threads(threads)  # the one declaration of its range (lossart.options)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def cores_per_process(processes: int) -> int:
    """This host's cores shared among `processes` workers (torchrun ranks, shard processes)."""
    return max(1, (os.cpu_count() or 1) // max(1, processes))


def set_process_threads(threads: int) -> None:
    """A worker process's torch threads for its whole life (it owns no caller to restore)."""
    torch.set_num_threads(max(1, int(threads)))
