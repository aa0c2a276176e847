"""The compute `--dtype`: which precision trains and evaluates, chosen once per run.

`float32` is exact float32 (TF32 off on CUDA). `bfloat16` runs the forward pass under
`torch.autocast`: convolutions and matmuls in bfloat16 with float32 accumulation, weights kept
and built in float32 (autocast casts each layer's weight once per pass), BN statistics and the
loss in float32. `tf32` is CUDA's tensor-core float32. `auto` is `bfloat16` where the hardware
has bfloat16 matrix units (a CPU with AMX, a CUDA GPU that supports bfloat16), else `float32`
with a one-line note (AVX-512 without AMX is not counted: it lacks the matrix units that make
bfloat16 convolutions several times faster than float32, measured in benchmarks/RESULTS.md).

`auto` is resolved from CPU flags, never from a timing, so every rank of a run on the same kind of
machine resolves it alike; callers still record the resolved name (grid.json, checkpoints,
curve runs) and reuse it on resume.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from lossart.errors import LossartError
from lossart.options import OptionError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI's parser reads DTYPES without it
    import torch

DTYPES = ("auto", "float32", "tf32", "bfloat16")
DTYPE_HELP = (
    "precision: auto (bfloat16 where the hardware has bfloat16 units: AMX CPUs, recent GPUs; "
    "else float32), float32, bfloat16, tf32 (CUDA)"
)


def bfloat16_units(device: torch.device) -> str | None:
    """Why bfloat16 would not pay on `device` (None: it has bfloat16 matrix units)."""
    import torch

    if device.type == "cuda":
        return None if torch.cuda.is_bf16_supported() else "this GPU has no bfloat16 support"
    caps = torch.cpu.get_capabilities()
    if caps.get("amx_bf16") and caps.get("amx_tile"):
        return None
    return "this CPU has no AMX bfloat16 units"


def resolve_dtype(name: str | None, device: torch.device | str, quiet: bool = False) -> str:
    """`--dtype` made concrete for `device`: `auto` becomes `bfloat16` or `float32`.

    A fallback to float32 prints one line to stderr (unless `quiet`).
    """
    import torch

    name = "auto" if name is None else str(name)
    if name not in DTYPES:
        raise OptionError("dtype", name, f"expected one of {', '.join(DTYPES)}", "--dtype")
    device = torch.device(device)
    if name == "tf32" and device.type != "cuda":
        raise LossartError("--dtype tf32 needs a CUDA device (TF32 is an NVIDIA tensor-core format)")
    if name != "auto":
        return name
    why = bfloat16_units(device)
    if why is None:
        return "bfloat16"
    if not quiet:  # a note on the run, with its other notes (stderr is for what went wrong)
        print(f"lossart: --dtype auto: float32 ({why})", flush=True)
    return "float32"


@contextlib.contextmanager
def precision(dtype: str, device: torch.device) -> Iterator[None]:
    """Run the body in a resolved precision: autocast for bfloat16, TF32 switches for tf32.

    float32 on CUDA means true fp32: cuDNN's convolutions default to TF32 in PyTorch, so both
    TF32 switches are turned off for the body (and restored after).
    """
    import torch

    if dtype not in DTYPES or dtype == "auto":
        raise OptionError("dtype", dtype, "expected float32, tf32 or bfloat16 here", "--dtype")
    if dtype == "tf32" and device.type != "cuda":
        raise LossartError("--dtype tf32 needs a CUDA device (TF32 is an NVIDIA tensor-core format)")
    if dtype == "bfloat16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
        return
    if device.type != "cuda":
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    allow = dtype == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
