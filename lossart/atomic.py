"""Atomic writes: a file is either absent or complete, so an interrupted job never leaves a torn file.

Everything long-running in lossart writes through these helpers (temp file in the same folder,
fsync, `os.replace`), which is what makes resuming after `kill -9` safe.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lossart.errors import LossartError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary shared files
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except Exception as exc:
        full = disk_full(exc, path.parent)
        if full:
            raise LossartError(
                f"{path}: cannot be written ({full}); {path.name} stays as it was before this "
                "write (the last complete state): free space and rerun to resume"
            ) from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: Below this many free bytes a failed write is put down to a full disk (torch reports a full
#: disk as a RuntimeError about stream positions, not as ENOSPC).
FULL_BELOW = 1 << 20


def disk_full(exc: BaseException, folder: Path) -> str | None:
    """Why a write failed if it was for lack of space (ENOSPC, EDQUOT, or a write error with
    almost nothing left on `folder`'s file system), else None."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return exc.strerror or "no space left on device"
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if isinstance(exc, (OSError, RuntimeError)) and free < FULL_BELOW:
        return f"no space left on device: {free} bytes free"
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
