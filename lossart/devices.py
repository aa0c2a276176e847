"""The compute `--device`: one meaning for every command that trains or evaluates networks.

Accepted: `cpu`, `cuda`, `cuda:N` and `auto` (CUDA where there is a GPU, else the CPU). Nothing
else: the grid engine's strategies and the thread policy know these two device types only.
"""

from __future__ import annotations

import torch

from lossart.errors import LossartError

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
