"""Weight snapshots along an endpoint's training (`lossart train --snapshots N`): their files.

Why: the training trajectory (Li et al. 2018's PCA plot, `lossart trajectory`) needs the weights
at several moments of training, and nothing else in a checkpoint keeps them.

N snapshots are taken at evenly spaced steps, `snapshot_steps(N, total)`: step 0 (the initial
weights, before any update) and the last step (the final weights, equal to the checkpoint's
parameters) are always among them. Each is one file, written atomically as soon as its step is
done, in a folder beside the checkpoint:

```
OUT.snapshots/snapshot_000.pt   {"format": "lossart-snapshot", "format_version": 1, "index",
                                 "step", "epoch" (step / steps per epoch), "train_loss"
                                 (mean minibatch loss since the previous snapshot; None for the
                                 initial weights), "params" (flat float32 [P], parameters only,
                                 in named_parameters() order)}
```

Resume is consistent because training resumes bit-identically: a snapshot whose step is redone
after an interruption is rewritten with the same values. The checkpoint's `extra["snapshots"]`
records the folder (its name, beside the checkpoint), the count, the spacing and every record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lossart.atomic import torch_save
from lossart.errors import LossartError
from lossart.options import check_value, option_error
from lossart.training.checkpoint import Checkpoint, check_finite_weights, read_torch_file
from lossart.training.config import TrainConfig

SNAPSHOT_FORMAT = "lossart-snapshot"
SNAPSHOT_VERSION = 1


def snapshot_dir(out: str | Path) -> Path:
    """The snapshot folder of checkpoint `out`: `OUT.snapshots/` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".snapshots")


def snapshot_path(folder: Path, index: int) -> Path:
    return folder / f"snapshot_{index:03d}.pt"


def check_count(count: int | None) -> None:
    """The count against TrainConfig's declaration (the initial and final weights are two)."""
    check_value(TrainConfig, "snapshots", count)


def snapshot_steps(count: int, total: int) -> list[int]:
    """`count` evenly spaced steps from 0 to `total` inclusive (rounded; no step twice)."""
    check_count(count)
    if count > total + 1:
        problem = (f"training has only {total} steps ({total + 1} distinct moments); ask for "
                   "fewer snapshots or more epochs")  # fmt: skip
        raise option_error(TrainConfig, "snapshots", problem, count)
    return [round(k * total / (count - 1)) for k in range(count)]


@dataclass(frozen=True)
class SnapshotRecord:
    """When one snapshot was taken."""

    index: int
    step: int
    epoch: float
    train_loss: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "step": self.step, "epoch": self.epoch,
                "train_loss": self.train_loss}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SnapshotRecord:
        loss = d.get("train_loss")
        return cls(int(d["index"]), int(d["step"]), float(d["epoch"]),
                   None if loss is None else float(loss))  # fmt: skip


def write_snapshot(folder: Path, record: SnapshotRecord, params: torch.Tensor) -> Path:
    """One snapshot file, atomically (an existing file of the same index is replaced)."""
    path = snapshot_path(folder, record.index)
    body = {"format": SNAPSHOT_FORMAT, "format_version": SNAPSHOT_VERSION, **record.to_dict(),
            "params": params.detach().to("cpu", torch.float32).clone()}  # fmt: skip
    torch_save(body, path)
    return path


def snapshot_meta(out: str | Path, records: list[SnapshotRecord]) -> dict[str, Any]:
    """What the checkpoint's `extra["snapshots"]` holds."""
    return {
        "folder": snapshot_dir(out).name,
        "count": len(records),
        "spacing": "steps",
        "records": [r.to_dict() for r in records],
    }


@dataclass
class Snapshots:
    """A checkpoint's snapshots: records in training order and the stacked parameters."""

    folder: Path
    records: list[SnapshotRecord]
    params: torch.Tensor  # float32 [N, P]


def load_snapshots(checkpoint_path: str | Path, ckpt: Checkpoint) -> Snapshots:
    """The snapshots a checkpoint records, each file checked; one-line errors name the file."""
    meta = ckpt.extra.get("snapshots")
    path = Path(checkpoint_path)
    if not isinstance(meta, dict) or not meta.get("records"):
        raise LossartError(
            f"{path}: has no training snapshots (train it with `lossart train --snapshots N`)"
        )
    try:
        folder = path.with_name(str(meta["folder"]))
        records = [SnapshotRecord.from_dict(r) for r in meta["records"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LossartError(
            f"{path}: its snapshot records are malformed ({type(exc).__name__}: {exc})"
        ) from None
    rows = []
    for rec in records:
        file = snapshot_path(folder, rec.index)
        if not file.is_file():
            raise LossartError(f"{file}: snapshot {rec.index} of {path} is missing")
        data = read_torch_file(file, "lossart snapshot")
        if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
            raise LossartError(f"{file}: not a lossart snapshot")
        step, params = data.get("step"), data.get("params")
        if isinstance(step, bool) or not isinstance(step, int):
            raise LossartError(f"{file}: field 'step' is {step!r}, expected a whole number")
        if step != rec.step:
            raise LossartError(
                f"{file}: taken at step {step}, the checkpoint records step {rec.step}"
            )
        if not isinstance(params, torch.Tensor) or params.dim() != 1:
            raise LossartError(f"{file}: field 'params' is not a flat tensor of weights")
        check_finite_weights({"params": params}, file)
        rows.append(params.float())
    sizes = {r.numel() for r in rows}
    if len(sizes) != 1:
        raise LossartError(f"{folder}: snapshots of different sizes {sorted(sizes)}")
    return Snapshots(folder, records, torch.stack(rows))
