"""Atomic writes: a file is either absent or complete, so an interrupted job never leaves a torn file.

Everything long-running in lossart writes through these helpers (temp file in the same folder,
fsync, `os.replace`), which is what makes resuming after `kill -9` safe.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

from lossart.format.atomic import atomic_path


def write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def np_save(path: str | os.PathLike, array: Any) -> None:
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def np_savez(path: str | os.PathLike, **arrays: Any) -> None:
    import numpy as np

    buffer = io.BytesIO()  # zipped in memory: a full disk then fails one plain write, where
    np.savez(buffer, **arrays)  # zipfile would print an unraisable error as it is collected
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
