"""Tiny runs of every kind for the viewer's tests: grids written through lossart.grid.files with
synthetic losses (no training, no torch), then the real `build_terrain`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lossart.grid.files import FrameGrid, FrameMeta, GridMeta, write_frame_grid, write_grid_meta
from lossart.runs import Run
from lossart.terrain.build import build_terrain
from lossart.terrain.heightfield import TerrainConfig
from lossart.terrain.synthetic import W1, W2, W3, X_RANGE, Y_RANGE, synthetic_frames, synthetic_loss


def make_run(
    root: Path,
    kind: str = "curve",
    frames: int = 3,
    size: tuple[int, int] = (25, 19),
    adaptive: bool = False,
    upsample: int = 1,
) -> Run:
    """A run folder with grids/ and terrain/ of `kind` (curve, plane3, around, trajectory)."""
    run = Run(Path(root))
    run.write({"kind": "plane3" if kind == "around" else kind})
    w, h = size
    xs, ys = np.linspace(*X_RANGE, w), np.linspace(*Y_RANGE, h)
    rng = np.random.default_rng(0)
    grids: list[tuple[np.ndarray, FrameMeta]] = []
    if kind == "curve":
        data = synthetic_frames(frames, 33)
        for i, cp in enumerate(data.control_points):
            loss = synthetic_loss(cp, (h, w), "bezier")
            meta = FrameMeta(i, 10 * i, 0.5 * i, 1.0 / (i + 1), cp, {"w1": W1, "w2": W2})
            grids.append((loss, meta))
    elif kind == "plane3":
        loss = synthetic_loss(np.array([W1, W3, W2]), (h, w), "polychain")
        grids.append((loss, FrameMeta(0, 0, 0.0, None, np.zeros((0, 2)),
                                      {"w1": W1, "w2": W2, "w3": W3})))  # fmt: skip
    elif kind == "around":
        loss = synthetic_loss(np.array([W1, (5.0, 0.0), W1]), (h, w), "bezier")
        grids.append((loss, FrameMeta(0, 0, 0.0, None, np.zeros((0, 2)), {"w": (0.0, 0.0)})))
    elif kind == "trajectory":
        route = np.array([(10.0, 4.0), (7.0, 3.0), (4.0, 1.5), (2.0, 0.5), (0.0, 0.0)])[:frames]
        loss = synthetic_loss(np.array([W1, (5.0, 2.0), route[0]]), (h, w), "bezier")
        snaps = tuple({"index": k, "step": 5 * k, "epoch": float(k), "train_loss": 2.0 / (k + 1)}
                      for k in range(len(route)))  # fmt: skip
        points = {"start": tuple(route[0]), "final": tuple(route[-1])}
        grids.append((loss, FrameMeta(0, 0, 0.0, None, route, points, snaps)))
    for loss, meta in grids:
        evaluated = None
        if adaptive:
            evaluated = np.zeros(loss.shape, bool)
            evaluated[::4, ::4] = True
            evaluated[rng.random(loss.shape) < 0.1] = True
        write_frame_grid(run.grids, FrameGrid(meta.index, loss, 1 - loss / 3, xs, ys, meta, evaluated))
    spec = GridMeta(
        kind, (w, h), X_RANGE, Y_RANGE, 64, "train", "float32", h, [m.index for _, m in grids],
        curve={"kind": "bezier", "bends": 1} if kind == "curve" else None,
        adaptive=0.02 if adaptive else None,
    )  # fmt: skip
    write_grid_meta(run.grids, spec)
    build_terrain(run.root, TerrainConfig(path_samples=40, upsample=upsample))
    return run
