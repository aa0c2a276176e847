"""RUN/trajectory/plane.pt: the plane a trajectory run's grid is evaluated in (its one home).

Why a file: the principal directions come from all snapshots (an SVD of N×P numbers); the grid
stage reads them from here instead of redoing the PCA, so every `lossart grid RUN` rerun and every
shard uses the same plane bit for bit.

```
RUN/trajectory/plane.pt   {"format": "lossart-trajectory-plane", "format_version": 1,
                           "u", "v": float32 [P] (unit, orthogonal: the first two principal
                           directions), "coords": float64 [N, 2] (each snapshot's projection;
                           the last, the final weights, at (0, 0)), "explained": float64 [k],
                           "distance": float64 [N], "centred": bool, "snapshots": [records]}
RUN/endpoints/w.pt        the final checkpoint (the plane's origin, the model and the data)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lossart.atomic import torch_save
from lossart.errors import LossartError
from lossart.geometry.trajectory import TrajectoryPlane
from lossart.runs import Run
from lossart.training.checkpoint import read_torch_file

PLANE_FORMAT = "lossart-trajectory-plane"
PLANE_VERSION = 1
FINAL_NAME = "w"  # RUN/endpoints/w.pt, as an around run's checkpoint
START_POINT, FINAL_POINT = "start", "final"


def trajectory_dir(run: Run) -> Path:
    return run.root / "trajectory"


def plane_file(run: Run) -> Path:
    return trajectory_dir(run) / "plane.pt"


@dataclass
class StoredTrajectory:
    """What plane.pt holds: the plane's axes and every snapshot's place in it."""

    u: torch.Tensor
    v: torch.Tensor
    coords: np.ndarray
    explained: np.ndarray
    distance: np.ndarray
    centred: bool
    snapshots: list[dict[str, Any]]


def write_plane_file(run: Run, tp: TrajectoryPlane, snapshots: list[dict[str, Any]]) -> Path:
    path = plane_file(run)
    torch_save(
        {
            "format": PLANE_FORMAT,
            "format_version": PLANE_VERSION,
            "u": tp.plane.u_hat.detach().cpu().float().clone(),
            "v": tp.plane.v_hat.detach().cpu().float().clone(),
            "coords": torch.from_numpy(tp.coords.copy()),
            "explained": torch.from_numpy(tp.explained.copy()),
            "distance": torch.from_numpy(tp.distance.copy()),
            "centred": bool(tp.centred),
            "snapshots": [dict(r) for r in snapshots],
        },
        path,
    )
    return path


def read_plane_file(run: Run) -> StoredTrajectory:
    path = plane_file(run)
    if not path.is_file():
        raise LossartError(f"{path}: missing (make the run with `lossart trajectory CKPT --out`)")
    d = read_torch_file(path, "lossart trajectory plane")
    if not isinstance(d, dict) or d.get("format") != PLANE_FORMAT:
        raise LossartError(f"{path}: not a lossart trajectory plane")
    if int(d.get("format_version", 0)) > PLANE_VERSION:
        raise LossartError(f"{path}: written by a newer lossart; update lossart")
    return StoredTrajectory(
        u=d["u"].float(),
        v=d["v"].float(),
        coords=d["coords"].numpy().astype(np.float64),
        explained=d["explained"].numpy().astype(np.float64),
        distance=d["distance"].numpy().astype(np.float64),
        centred=bool(d["centred"]),
        snapshots=[dict(r) for r in d["snapshots"]],
    )
