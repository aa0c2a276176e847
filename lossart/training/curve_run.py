"""A trained (or training) curve on disk: what `lossart curve` writes and every later stage reads.

```
RUN/run.json                      kind "curve", model/data specs, curve, training settings
RUN/endpoints/w1.pt, w2.pt        the endpoint checkpoints (copied in)
RUN/curve/frames.json             {"curve": {...}, "total_steps": S, "frames_requested": F,
                                   "frame_spacing": ..., "train_loss": "<what it means>",
                                   "frames": [{"index", "step", "epoch", "train_loss", "file"}]}
RUN/curve/frames/frame_00000.pt   {"bends": Tensor[k, P] float32}
RUN/curve/final.pt                {"bends": Tensor[k, P]} once training has finished
RUN/curve/state.pt                resume state (bends, optimizer, step, recent losses, frames)
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lossart.checks import field as json_field
from lossart.checks import json_repr
from lossart.data import DataSpec
from lossart.errors import LossartError
from lossart.format.kinds import CURVE
from lossart.geometry.curves import CurveSpec
from lossart.geometry.weights import ParamLayout
from lossart.models import ModelSpec, create_model
from lossart.runs import Run, open_run, run_model
from lossart.training.checkpoint import check_finite_weights, load_checkpoint

FRAMES_JSON = "frames.json"


@dataclass
class FrameRecord:
    """One snapshot of the bends during curve training."""

    index: int
    step: int
    epoch: float
    train_loss: float
    path: Path
    params: int | None = None  # the run's parameter count P: a frame of another width is refused

    @property
    def bends(self) -> torch.Tensor:
        """The frame's bends `[k, P]`, read from disk on each access (frames can be many)."""
        return load_bends(self.path, self.params)

    def to_dict(self, curve_dir: Path) -> dict[str, Any]:
        return {
            "index": self.index,
            "step": self.step,
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "file": self.path.relative_to(curve_dir).as_posix(),
        }


def load_bends(path: Path, params: int | None = None) -> torch.Tensor:
    """A bends file `[k, P]`, checked: finite, and `params` wide where given."""
    if not path.is_file():
        raise LossartError(f"{path}: bends file missing (rerun `lossart curve` to finish the run)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        bends = data["bends"]
    except Exception as exc:  # torch raises many kinds on a torn or foreign file
        raise LossartError(f"{path}: not a lossart bends file ({type(exc).__name__})") from None
    if not isinstance(bends, torch.Tensor) or bends.dim() != 2:
        raise LossartError(f"{path}: expected 'bends' as a [k, P] tensor")
    if params is not None and bends.shape[1] != params:
        raise LossartError(
            f"{path}: bends have {bends.shape[1]} parameters, the run's model {params} "
            "(bends from another run?)"
        )
    check_finite_weights({"bends": bends}, path)
    return bends


@dataclass
class CurveRun:
    """Everything needed to evaluate any frame of a curve: endpoints, bends, model and data."""

    run: Run
    spec: CurveSpec
    model_spec: ModelSpec
    data_spec: DataSpec
    w1: torch.Tensor
    w2: torch.Tensor
    frames: list[FrameRecord]
    total_steps: int
    frames_requested: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Training finished: every requested frame is recorded and final.pt exists."""
        return len(self.frames) == self.frames_requested and self.final_path.is_file()

    @property
    def final_path(self) -> Path:
        return self.run.curve / "final.pt"

    @property
    def final_bends(self) -> torch.Tensor:
        """The trained bends (final.pt); refuses an unfinished run."""
        if not self.final_path.is_file():
            raise LossartError(
                f"{self.run.root}: curve training has not finished (no curve/final.pt)"
            )
        return load_bends(self.final_path, self.w1.numel())

    def build_model(self) -> nn.Module:
        """A fresh model of the run's architecture (its own weights are irrelevant: evaluation is
        functional at flat weight vectors)."""
        return create_model(self.model_spec)

    def layout(self) -> ParamLayout:
        return ParamLayout.of(self.build_model())


def frames_json(run: Run) -> Path:
    return run.curve / FRAMES_JSON


def read_frames(run: Run) -> tuple[dict[str, Any], list[FrameRecord]]:
    path = frames_json(run)
    if not path.is_file():
        raise LossartError(f"{run.root}: no curve/frames.json (run `lossart curve` first)")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
            raise TypeError("expected an object with a 'frames' list")
        for f in data["frames"]:
            if not isinstance(f, dict) or not isinstance(f.get("file"), str):
                raise TypeError(f"frame {json_repr(f)}: expected an object with a 'file' string")
        frames = [
            FrameRecord(
                int(f["index"]),
                int(f["step"]),
                float(f["epoch"]),
                float(f["train_loss"]),
                run.curve / f["file"],
            )
            for f in data["frames"]
        ]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LossartError(
            f"{path}: not a valid frames file ({type(exc).__name__}: {exc})"
        ) from None
    return data, frames


def load_curve_run(run: Run | str | Path) -> CurveRun:
    """Open a curve run folder: specs, flat endpoints, and the frame records recorded so far."""
    if not isinstance(run, Run):
        run = open_run(run)
    meta = run.read()
    if meta.get("kind") != CURVE.name:
        raise LossartError(f"{run.root}: not a curve run (run.json kind is {meta.get('kind')!r})")
    model_spec = ModelSpec.from_dict(run_model(meta, run.manifest))
    data_spec = DataSpec.from_dict(json_field(meta, "data", run.manifest, dict))
    ck1 = load_checkpoint(run.endpoint("w1"), expect_model=model_spec)
    ck2 = load_checkpoint(run.endpoint("w2"), expect_model=model_spec)
    layout = ParamLayout.of(create_model(model_spec))
    w1 = layout.flatten(ck1.state_dict).float().clone()
    w2 = layout.flatten(ck2.state_dict).float().clone()
    data, frames = read_frames(run)
    frames = [replace(f, params=w1.numel()) for f in frames]
    spec = CurveSpec.from_dict(data["curve"])
    return CurveRun(
        run=run,
        spec=spec,
        model_spec=model_spec,
        data_spec=data_spec,
        w1=w1,
        w2=w2,
        frames=frames,
        total_steps=int(data["total_steps"]),
        frames_requested=int(data.get("frames_requested", len(frames))),
        info=meta,
    )
