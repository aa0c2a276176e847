"""One Blender job: the job file, the fresh Blender process that runs it, its status and log.

Every render runs in a fresh Blender process that executes the add-on's own code
(`lossart.addon.headless`): `python -c` with the `bpy` module when it is installed, otherwise
a `blender` executable in background mode (`--blender PATH` or on PATH). A subprocess, not
`bpy` inside this process, because: Blender keeps global state (one scene, handlers, caches)
that would leak from one render into the next in a long-lived Python; a crash or exit hang in
Blender (bpy 4.5 after animation renders) cannot take lossart down or hang it; the bpy-module
and blender-executable routes run the very same code; and Blender's own log goes to a file
instead of mixing with our progress bar.

The job is the add-on's `RenderJob` (its look is a `Look`), written with `to_dict` and read
back by headless.py with `from_dict`.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lossart.addon.headless import RenderJob
from lossart.atomic import write_json
from lossart.errors import LossartError
from lossart.format.timeline import frame_file
from lossart.locks import FileLock, describe_holder
from lossart.progress import progress

INSTALL_HINT = (
    "install the bpy module (`pip install bpy` on Python 3.11, or `pip install 'lossart[render]'`) "
    "or install Blender 4.2+ (https://www.blender.org/download/) and pass --blender PATH"
)


@dataclass
class RenderResult:
    out: Path
    device: str
    seconds: float
    frames_rendered: int = 1
    frames_skipped: int = 0
    log: Path | None = None
    compare: Path | None = None  # a still's contact sheet beside the flat preview


def addon_dir() -> Path:
    """The add-on's own folder: the top-level `blender_addon/`, which a source checkout reaches as
    `lossart/addon` (a link) and the wheel installs there, so lossart imports it as `lossart.addon`."""
    return Path(__file__).resolve().parents[1] / "addon"


def format_dir() -> Path:
    """The bundle format and look options the add-on imports as `..format` (`lossart/format/`)."""
    return Path(__file__).resolve().parents[1] / "format"


def addon_parent() -> Path:
    """The folder that holds the `lossart` package (put on Blender's sys.path)."""
    return Path(__file__).resolve().parents[2]


def blender_executable(blender: str) -> str:
    """`--blender PATH` (or a name on PATH) as an executable file; one line naming it otherwise."""
    exe = shutil.which(blender)
    if exe is None:
        path = Path(blender)
        if not path.is_file():
            raise LossartError(f"--blender {blender}: no such Blender executable")
        raise LossartError(f"--blender {blender}: not an executable file (chmod +x, or another PATH)")
    return exe


def blender_command(job_path: Path, blender: str | None = None) -> list[str]:
    """The command running `lossart.addon.headless.main(job)`: bpy module or blender executable."""
    expr = (
        f"import sys; sys.path.insert(0, {str(addon_parent())!r}); "
        f"from lossart.addon.headless import main; main({str(job_path)!r})"
    )
    if blender:
        exe = blender_executable(blender)
        return [exe, "-b", "--factory-startup", "--python-exit-code", "4", "--python-expr", expr]
    if importlib.util.find_spec("bpy") is not None:
        return [sys.executable, "-c", expr]
    exe = shutil.which("blender")
    if exe:
        return [exe, "-b", "--factory-startup", "--python-exit-code", "4", "--python-expr", expr]
    raise LossartError(f"cannot render: no bpy module and no blender executable; {INSTALL_HINT}")


def count_frames(folder: Path, frames: range) -> int:
    return sum(1 for f in frames if frame_file(folder, f).is_file())


#: How long a render waits for a frames folder (a killed render's Blender may still be exiting).
CLAIM_WAIT_S = 3.0


@contextmanager
def claim(target: Path, what: str) -> Iterator[FileLock]:
    """Own `target` (a frames folder, a still) for this render: a flock beside it, which the
    Blender child shares (`run_job(keep=...)`), so it stays claimed while either process lives;
    a one-line error naming the holder if a live render owns it."""
    lock = FileLock(target.parent / f".{target.name}.lock")
    if not lock.acquire(timeout=CLAIM_WAIT_S):
        raise LossartError(
            f"{target}: another render is writing {what} "
            f"({describe_holder(lock.holder())}); wait for it, or pass another --out"
        )
    try:
        yield lock
    finally:
        lock.release(remove=True)  # no lock file left beside the still or the frames


PR_SET_PDEATHSIG = 1  # linux/prctl.h
#: The Blender child's environment names its parent; its watchdog exits once that pid is gone.
PARENT_ENV = "LOSSART_PARENT_PID"


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec_fn for the Blender child: killed (SIGKILL) the moment its parent dies.

    Linux: prctl(PR_SET_PDEATHSIG); then, in case the parent died before that call, a check of
    the parent's pid. Elsewhere the child gets its own process group and the add-on's watchdog
    (`headless.watch_parent`, on LOSSART_PARENT_PID) ends it within a second of its parent."""

    def preexec() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        else:
            os.setpgid(0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def start_blender(cmd: list[str], log, keep: int | None = None) -> subprocess.Popen:
    """Start Blender so that it dies with this process; `keep`: a descriptor it inherits (the
    frames folder's lock, held as long as either process lives)."""
    env = {**os.environ, PARENT_ENV: str(os.getpid())}
    return subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=_die_with_parent(os.getpid()),
        pass_fds=(keep,) if keep is not None else (),
    )


def run_job(
    job: RenderJob,
    work: Path,
    name: str,
    blender: str | None = None,
    watch: tuple[Path, range] | None = None,
    keep: int | None = None,
) -> dict:
    """Run one headless job, logging Blender's output to work/<name>.log; its status dict.

    `watch` (folder, scene frames) shows a progress bar of the frames appearing there. The job
    and status files are removed however the job ends (Ctrl-C included)."""
    job_path = work / f".{name}.job.json"
    status_path = work / f".{name}.status.json"
    log_path = work / f"{name}.log"
    status_path.unlink(missing_ok=True)
    job.status = str(status_path)
    cmd = blender_command(job_path, blender)
    try:
        write_json(job_path, job.to_dict())
        with open(log_path, "w") as log:
            proc = start_blender(cmd, log, keep)
            bar = None
            try:
                if watch is not None:
                    folder, frames = watch
                    bar = progress(total=len(frames), desc="render", unit="frame")
                    seen = 0
                    while proc.poll() is None:
                        time.sleep(0.25)
                        now = count_frames(folder, frames)
                        if now > seen:
                            bar.update(now - seen)
                            seen = now
                    bar.update(count_frames(folder, frames) - seen)
                proc.wait()
            except BaseException:
                proc.kill()  # Ctrl-C or any error here: Blender must not go on alone
                proc.wait()
                raise
            finally:
                if bar is not None:
                    bar.close()
        status = _read_status(status_path)
    finally:
        job_path.unlink(missing_ok=True)
        status_path.unlink(missing_ok=True)
        status_path.with_suffix(".tmp").unlink(missing_ok=True)
    if proc.returncode != 0 or "error" in status:
        if "error" in status:
            raise LossartError(status["error"])
        tail = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()][-1:]
        raise LossartError(
            f"Blender exited with status {proc.returncode} "
            f"({tail[0] if tail else 'no output'}); see {log_path}"
        )
    return status


def _read_status(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {"error": f"{path}: Blender left an unreadable status file"}
    return data if isinstance(data, dict) else {}
