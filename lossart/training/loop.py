"""The training loop that endpoint and curve training share; each brings only its own step.

What lives here, once: the CPU thread policy; the settings that decide a result, taken from the
typed config (`settings_of`) and compared with what a file recorded (`check_settings`); the resume
state file (`ResumeState`: atomic saves, one-line refusals of foreign or other-settings files);
and `run_loop`, which walks epochs and minibatches from any step with a progress bar, saves the
state after every epoch, every `save_every_s` and on Ctrl-C or SIGTERM (the signal only sets a
flag, so a step is never cut in half; a second one interrupts at once; `lossart.interrupts`), and checks that every epoch had
the minibatches it should.

Resuming is bit-identical when the trainer's data order is a pure function of (seed, epoch, batch)
(`lossart.data.train_loader`) and its state holds everything else that changes (weights or bends,
optimizer momentum, running sums): `run_loop` restarts at the saved step's epoch and batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import torch

from lossart.atomic import torch_save
from lossart.errors import LossartError
from lossart.interrupts import deferred
from lossart.options import run_option  # noqa: F401  (importable from here as before)
from lossart.progress import progress
from lossart.training.checkpoint import read_torch_file

NOT_A_SETTING = {"setting": False}


def settings_of(cfg: Any) -> dict[str, Any]:
    """The fields of config dataclass `cfg` that decide the result, as plain data.

    Fields made with `run_option` are left out; specs (ModelSpec, DataSpec) become their
    `to_dict()`, the form checkpoints and run.json store and compare.
    """
    out = {}
    for f in fields(cfg):
        if f.metadata.get("setting", True):
            value = getattr(cfg, f.name)
            out[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
    return out


def check_settings(
    recorded: Mapping[str, Any] | None, wanted: Mapping[str, Any], what: str, hint: str
) -> None:
    """Refuse in one line, naming the first flag whose recorded value is not the wanted one."""
    recorded = recorded if isinstance(recorded, Mapping) else {}
    for key in [*wanted, *(k for k in recorded if k not in wanted)]:
        if recorded.get(key) != wanted.get(key):
            flag = "--" + key.replace("_", "-")
            raise LossartError(
                f"{what} with other settings ({flag} {recorded.get(key)!r}, "
                f"asked {wanted.get(key)!r}); {hint}"
            )




def check_finite(loss: float, step: int, lr: float) -> float:
    """The minibatch loss, or a one-line error when training has diverged."""
    if not math.isfinite(loss):
        raise LossartError(
            f"training diverged at step {step} (loss {loss}); lower --lr (now {lr})"
        )
    return loss


@dataclass
class ResumeState:
    """The resume file of one training: `marker` (format keys) and `settings` head every save."""

    path: Path
    marker: dict[str, Any]
    settings: dict[str, Any]
    restart: str  # what the user does to start over, e.g. "remove it to start over"

    def load(self) -> dict[str, Any] | None:
        """The saved state (None: no file), checked to be this training's."""
        if not self.path.is_file():
            return None
        data = read_torch_file(self.path, "lossart resume state")
        if not isinstance(data, dict) or any(data.get(k) != v for k, v in self.marker.items()):
            raise LossartError(
                f"{self.path}: not a resume state this lossart reads; {self.restart}"
            )
        check_settings(data.get("settings"), self.settings, f"{self.path}: resume state",
                       f"rerun with those or {self.restart}")  # fmt: skip
        return data

    def save(self, body: dict[str, Any]) -> None:
        torch_save({**self.marker, "settings": self.settings, **body}, self.path)


class Trainer(Protocol):
    """What a training brings to `run_loop`: its data, its step and its state."""

    def batches(self, epoch: int, start: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """Minibatches `start`, `start + 1`, ... of `epoch`."""

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor) -> float:
        """Step number `step` (from 0) on one minibatch; returns its loss (checked finite)."""

    def after_step(self, steps: int, loss: float) -> dict[str, str]:
        """Bookkeeping once `steps` steps are done; returns the progress bar's postfix."""

    def end_epoch(self, epoch: int) -> None:
        """Bookkeeping at the end of `epoch` (before the epoch's state save)."""

    def state(self, steps: int) -> dict[str, Any]:
        """Everything needed to resume after `steps` steps (saved by `ResumeState.save`)."""


@dataclass(frozen=True)
class LoopPlan:
    """How many steps, how they are shown, how often the state is saved."""

    epochs: int
    steps_per_epoch: int
    desc: str
    save_every_s: float | None = None  # besides every epoch end and Ctrl-C
    progress: bool = True


def run_loop(trainer: Trainer, plan: LoopPlan, state: ResumeState, start: int = 0) -> int:
    """Train from step `start` to the end of `plan`; returns the number of steps done (all).

    Ctrl-C or SIGTERM saves the state after the current step and raises
    `lossart.interrupts.Interrupted` (a KeyboardInterrupt); a crash leaves
    the state of the last save. At an epoch's last step the epoch is closed and saved first.
    """
    spe, total = plan.steps_per_epoch, plan.epochs * plan.steps_per_epoch
    steps = start
    bar = progress(total, desc=plan.desc, unit="step", initial=steps,
                   disable=None if plan.progress else True)  # fmt: skip
    last_save = time.perf_counter()
    with bar, deferred() as interrupt:
        for epoch in range(steps // spe, plan.epochs):
            for x, y in trainer.batches(epoch, steps - epoch * spe):
                loss = trainer.step(steps, x, y)
                steps += 1
                bar.update(1)
                bar.set_postfix(trainer.after_step(steps, loss), refresh=False)
                if steps % spe == 0:
                    continue  # the epoch's end saves (and honours Ctrl-C) next
                if interrupt.requested:
                    state.save(trainer.state(steps))
                    interrupt.stop()
                if plan.save_every_s is not None and (
                    time.perf_counter() - last_save > plan.save_every_s
                ):
                    state.save(trainer.state(steps))
                    last_save = time.perf_counter()
            if steps != (epoch + 1) * spe:
                raise LossartError(
                    f"data loader gave {steps - epoch * spe} batches in epoch {epoch}, "
                    f"expected {spe}"
                )
            trainer.end_epoch(epoch)
            state.save(trainer.state(steps))
            last_save = time.perf_counter()
            if interrupt.requested:
                interrupt.stop()
    return steps
