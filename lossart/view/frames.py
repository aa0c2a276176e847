"""One shown frame's arrays: heights on the lattice, the losses behind them, path and points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lossart.format.kinds import AROUND, PLANE3, TRAJECTORY
from lossart.view.plan import ViewPlan
from lossart.view.source import ViewSource


@dataclass
class FrameView:
    """What one slider position shows, in plane coordinates."""

    position: int
    title: str
    label: str
    heights: np.ndarray  # float32 [h, w] on the lattice
    loss: np.ndarray | None  # float32 [h, w] measured loss (NaN where it diverged); None: bare
    accuracy: np.ndarray | None
    path: np.ndarray  # [n, 3]
    points: list[tuple[str, float, float, float, float | None]]  # name, x, y, z, loss
    bends: np.ndarray  # [k, 3], only those inside the window
    bends_all: np.ndarray  # [k, 2], for the map (which clips)
    evaluated: np.ndarray | None  # [m, 3] the adaptive grid's evaluated points; None: full grid


def frame_title(source: ViewSource, position: int) -> str:
    """The caption of a frame: what the picture is, and where in training it was recorded."""
    frame = source.bundle.frames[position]
    kind = source.kind
    if kind == AROUND.name:
        return {
            "hessian": "plane of the Hessian's top two eigenvectors around one network",
            "hessian-min": "plane of the Hessian's top and most negative eigenvectors around one network",
        }.get(source.directions, "random plane around one network")
    if kind == PLANE3.name:
        return "plane through three optima"
    what = "snapshot" if kind == TRAJECTORY.name else "frame"
    parts = [f"{what} {frame.index}"]
    if frame.step is not None:
        parts.append(f"step {frame.step}")
    if frame.epoch is not None:
        parts.append(f"epoch {frame.epoch:.2f}")
    if frame.train_loss is not None:
        parts.append(f"train loss {frame.train_loss:.4g}")
    return " · ".join(parts)


def frame_view(source: ViewSource, plan: ViewPlan, position: int) -> FrameView:
    bundle = source.bundle
    frame = bundle.frames[position]
    full = bundle.heights(position)
    heights = full[np.ix_(plan.rows, plan.cols)].astype(np.float32)
    loss = accuracy = evaluated = None
    if source.grids is not None:
        grid = source.grids.frame(position)
        rows, cols = plan.rows // plan.base, plan.cols // plan.base
        loss = grid.loss[np.ix_(rows, cols)].astype(np.float32)
        accuracy = grid.accuracy[np.ix_(rows, cols)].astype(np.float32)
        if grid.evaluated is not None:
            i, j = np.nonzero(grid.evaluated)
            xy = np.column_stack([grid.xs[j], grid.ys[i]])
            evaluated = np.column_stack([xy, bundle.sample(full, xy)]).astype(np.float32)
    lift = 0.02 * (bundle.z_max - bundle.z_min)  # above the surface: its triangles cut chords
    path = frame.path.copy()
    if len(path):
        path[:, 2] = bundle.sample(full, path[:, :2]) + lift
    points = []
    for p in frame.points:  # raised a little more, so their labels clear the ground nearby
        z = float(bundle.sample(full, np.array([p.xy]))[0]) + 2 * lift
        points.append((p.name, p.xy[0], p.xy[1], z, p.loss))
    (x0, x1), (y0, y1) = bundle.x_range, bundle.y_range
    b = frame.bends
    inside = (b[:, 0] >= x0) & (b[:, 0] <= x1) & (b[:, 1] >= y0) & (b[:, 1] <= y1)
    bends = np.column_stack([b[inside], bundle.sample(full, b[inside]) + lift]) if len(b) else np.zeros((0, 3))
    return FrameView(
        position=position,
        title=frame_title(source, position),
        label=str(frame.index),
        heights=heights,
        loss=loss,
        accuracy=accuracy,
        path=path.astype(np.float32),
        points=points,
        bends=bends,
        bends_all=b,
        evaluated=evaluated,
    )
