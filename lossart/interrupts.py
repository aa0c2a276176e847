"""Ctrl-C and SIGTERM mean the same thing: stop at a safe point, keep what is done, exit.

Why SIGTERM: it is what a cluster's scheduler (Slurm, Kubernetes, torchrun passing its own on)
sends before it pre-empts or cancels a job, some seconds before SIGKILL. Python's default lets
SIGTERM end the process on the spot, skipping every `finally`: a training lost the steps since
its last save and a render left its Blender job files behind. Here it becomes `Interrupted`, a
`KeyboardInterrupt`, so every path written for Ctrl-C (save the resume state, kill Blender,
remove job files, let go of locks) runs for it too.

Two forms:
- `sigterm_as_interrupt()` (the CLI wraps every command in it): SIGTERM raises `Interrupted` at
  once, where Ctrl-C raises KeyboardInterrupt; grids (atomic tiles) and renders (frame by frame)
  lose at most the tile or frame in progress.
- `deferred()` (training loops): either signal only sets a flag, honoured at the next step
  boundary after the state is saved, so a step is never cut in half; a second signal stops at
  once.
The exit status is 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM), as shells report.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the command stops after keeping what is done."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def exit_status(exc: BaseException) -> int:
    """128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM raises `Interrupted` as Ctrl-C raises KeyboardInterrupt."""
    if not _on_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Deferred:
    """The flag `deferred()` sets: `signum` of the first signal (None: none yet)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise Interrupted(signum)  # a second signal: stop now
        self.signum = signum

    def stop(self) -> None:
        """Raise `Interrupted` for the signal that was received (call once the state is safe)."""
        raise Interrupted(self.signum or signal.SIGINT)


@contextmanager
def deferred() -> Iterator[Deferred]:
    """Within: Ctrl-C and SIGTERM set a flag instead of interrupting (see the module docstring)."""
    flag = Deferred()
    if not _on_main_thread():
        yield flag
        return
    previous = {s: signal.signal(s, flag.handler) for s in SIGNALS}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
