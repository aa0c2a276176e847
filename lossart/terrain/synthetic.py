"""Synthetic loss grids and bundles with known structure, for tests and for the Blender side.

`synthetic_bundle` writes a valid bundle through the real writer (the same code `lossart
terrain` uses), so the add-on's tests can run without training anything. The loss has its two
minima at w1 = (0, 0) and w2 = (10, 0), a low valley along the frame's curve, and a bend that
moves from frame to frame; frame 0 has a few diverged (NaN) points in one corner.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lossart.format.bundle import sample_bilinear
from lossart.format.kinds import CURVE, PLANE3
from lossart.progress import progress
from lossart.terrain.bundle_write import BundleFrame, BundleSpec, NamedPoint, write_bundle
from lossart.terrain.curve2d import curve_polyline
from lossart.terrain.heightfield import (
    HeightMapping,
    TerrainConfig,
    fill_nonfinite,
    grid_coords,
    resolve_loss_cap,
    resolve_loss_min,
    stream_heights,
)

X_RANGE = (-3.0, 13.0)
Y_RANGE = (-6.0, 6.0)
W1 = (0.0, 0.0)
W2 = (10.0, 0.0)
W3 = (4.0, 4.5)


@dataclass
class SyntheticFrames:
    """Loss grids [F][H, W] with the control points [k+2, 2] that shaped them."""

    losses: list[np.ndarray]
    control_points: list[np.ndarray]
    x_range: tuple[float, float] = X_RANGE
    y_range: tuple[float, float] = Y_RANGE


def synthetic_loss(
    control_points: np.ndarray,
    size: int | tuple[int, int],
    kind: str = "bezier",
    x_range: tuple[float, float] = X_RANGE,
    y_range: tuple[float, float] = Y_RANGE,
) -> np.ndarray:
    """A float32 [H, W] loss: 0.01 at w1 and w2 (the minima), low along the curve, ~2.3 far off."""
    h, w = (size, size) if isinstance(size, int) else size
    xs, ys = grid_coords(w, *x_range), grid_coords(h, *y_range)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    curve = curve_polyline(control_points, kind, 256)
    d2 = np.full(len(pts), np.inf)
    for c in curve:  # squared distance to the curve, point by point (small grids)
        d2 = np.minimum(d2, ((pts - c) ** 2).sum(axis=1))
    ends = np.minimum(
        ((pts - control_points[0]) ** 2).sum(1), ((pts - control_points[-1]) ** 2).sum(1)
    )
    loss = 0.01 + 2.3 * (1 - np.exp(-d2 / 1.5)) + 0.3 * (1 - np.exp(-ends / 8.0))
    return loss.reshape(h, w).astype(np.float32)


def synthetic_frames(frames: int = 3, size: int = 33, kind: str = "bezier") -> SyntheticFrames:
    """Frames of a curve whose bend moves from (5, 5) toward (5, 1.5); NaNs in frame 0's corner."""
    losses, cps = [], []
    for i in range(frames):
        s = i / max(frames - 1, 1)
        cp = np.array([W1, (5.0, 5.0 - 3.5 * s), W2])
        loss = synthetic_loss(cp, size, kind)
        if i == 0:
            loss[-2:, -2:] = np.nan  # diverged points: filled with the cap, counted
        losses.append(loss)
        cps.append(cp)
    return SyntheticFrames(losses=losses, control_points=cps)


def synthetic_bundle(
    path: str | os.PathLike,
    frames: int = 3,
    size: int = 33,
    *,
    kind: str = CURVE.bundle,
    curve_kind: str = "bezier",
    config: TerrainConfig | None = None,
) -> Path:
    """Write a valid bundle of `frames` synthetic frames of `size`×`size` to `path`; return `path`.

    `kind="plane3"` writes the one-frame plane of three optima (w1, w2, w3, no path).
    """
    path = Path(path)
    config = config or TerrainConfig(path_samples=64)
    if kind == PLANE3.bundle:
        frames = 1
        cp3 = np.array([W1, W3, W2])
        loss = synthetic_loss(cp3, size, "polychain")
        data = SyntheticFrames(losses=[loss], control_points=[np.zeros((0, 2))])
        named = [("w1", W1), ("w2", W2), ("w3", W3)]
        curve = None
    else:
        data = synthetic_frames(frames, size, curve_kind)
        named = [("w1", W1), ("w2", W2)]
        curve = {"kind": curve_kind, "bends": 1}
    cap = resolve_loss_cap(data.losses, config)
    mapping = HeightMapping.resolve(config, cap, resolve_loss_min(data.losses, config, cap))

    def stream():
        load = data.losses.__getitem__
        for i, z, nonfinite in stream_heights(load, frames, config, cap, mapping.loss_min):
            filled = fill_nonfinite(data.losses[i], cap)
            points = [
                NamedPoint(
                    name,
                    xy,
                    float(sample_bilinear(filled, data.x_range, data.y_range, np.array([xy]))[0]),
                )
                for name, xy in named
            ]
            yield BundleFrame(
                index=i,
                step=i * 100,
                epoch=float(i),
                train_loss=None if kind == PLANE3.bundle else float(1.0 / (i + 1)),
                heights=z,
                nonfinite=nonfinite,
                control_points=data.control_points[i],
                points=points,
            )

    spec = BundleSpec(
        kind=kind,
        curve=curve,
        x_range=data.x_range,
        y_range=data.y_range,
        source_shape=data.losses[0].shape,
        config=config,
        loss_cap=cap,
        source_run=None,
        loss_min=mapping.loss_min,
        offset=mapping.offset,
    )
    write_bundle(path, spec, stream(), total=frames, progress=progress)
    return path
