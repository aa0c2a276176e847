"""The one atomic writer: a file is either absent or complete (temp file beside it, fsync,
`os.replace`), so an interrupted job never leaves a torn file, and a write that fails for a full
disk leaves the previous file as it was and says so in one `OSError(ENOSPC)` naming the file. Standard library only, so the
add-on's bake writes through it too; `lossart.atomic` builds its JSON, torch and numpy writers on it.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
        if full:  # one OSError naming the file, whatever the writer raised (lossart's CLI: a line)
            raise OSError(
                errno.ENOSPC,
                f"{full}; {path.name} stays as it was before this write (the last complete "
                "state): free space and rerun to resume",
                str(path),
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
        return "no space left on device"
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if isinstance(exc, (OSError, RuntimeError)) and free < FULL_BELOW:
        return f"no space left on device ({free} bytes free)"
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
