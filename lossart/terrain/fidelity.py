"""How far a grid's picture is from another's: height error as a share of the relief, normals.

Used by `benchmarks/adaptive.py` and the adaptive sampler's tests to judge an interpolated grid
in what the terrain shows (the default height mapping and smoothing, drawn at the default
relief) rather than in log10 loss at the nodes.
"""

from __future__ import annotations

import numpy as np

from lossart.terrain.heightfield import TerrainConfig, frame_heights


def picture_errors(
    loss: np.ndarray,
    truth_loss: np.ndarray,
    cap: float,
    xs: np.ndarray,
    ys: np.ndarray,
    percentile: float = 99.0,
) -> tuple[float, float]:
    """(largest height error as a share of the relief, `percentile` of the angle in degrees
    between the two surfaces' normals), both with the terrain's default mapping (relative to the
    truth's lowest loss, capped at `cap`) and smoothing, drawn at the default relief (the
    window's longer side 10 units wide, the full height range rising `relief` of its width, as
    the add-on's WorldMap draws it)."""
    config = TerrainConfig()
    low = float(np.nanmin(truth_loss))
    z, _ = frame_heights(loss, config, cap, low)
    zt, _ = frame_heights(truth_loss, config, cap, low)
    z, zt = z.astype(np.float64), zt.astype(np.float64)
    span = float(np.nanmax(zt) - np.nanmin(zt)) or 1.0
    share = float(np.nanmax(np.abs(z - zt))) / span
    wx, wy = float(xs[-1] - xs[0]), float(ys[-1] - ys[0])
    scale = 10.0 / max(wx, wy)
    relief = config.relief * wx * scale  # world units the full height range rises
    dx, dy = wx * scale / (len(xs) - 1), wy * scale / (len(ys) - 1)

    def normals(h: np.ndarray) -> np.ndarray:
        gy, gx = np.gradient((h - np.nanmin(zt)) / span * relief, dy, dx)
        n = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

    cos = np.clip((normals(z) * normals(zt)).sum(axis=-1), -1.0, 1.0)
    angle = np.degrees(np.arccos(cos))
    return share, float(np.nanpercentile(angle, percentile))
