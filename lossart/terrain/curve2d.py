"""The curve in the plane: dense 2-D samples of a Bézier curve or polygonal chain (numpy only).

The writer derives a frame's `path` from its `control_points` with it, the validator checks the
path against it, and analyses draw curves with it; Blender only reads the path, so it stays
out of the add-on. A quadratic Bézier through
w1, θ, w2 lies in the frame's plane, and its image there is exactly the Bézier of the projected
control points (DESIGN.md), so the path is computed in 2-D from the control points alone. `k`
bends give a Bézier of degree k+1 (Bernstein basis) or a chain of k+1 straight segments, each
covering an equal share of t.
"""

from __future__ import annotations

from math import comb

import numpy as np

from lossart.format.bundle import BundleError
from lossart.format.manifest import CURVE_KINDS


def bernstein(t: np.ndarray, degree: int) -> np.ndarray:
    """[len(t), degree+1] Bernstein weights; row sums are 1."""
    t = np.asarray(t, dtype=np.float64)[:, None]
    k = np.arange(degree + 1)[None, :]
    binom = np.array([comb(degree, int(i)) for i in range(degree + 1)], dtype=np.float64)[None, :]
    return binom * t**k * (1 - t) ** (degree - k)


def polychain_weights(t: np.ndarray, n_points: int) -> np.ndarray:
    """[len(t), n_points] weights of a chain through n_points, segment s on t in [s/m, (s+1)/m]."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    segments = n_points - 1
    pos = t * segments
    s = np.minimum(np.floor(pos).astype(np.int64), segments - 1)
    frac = pos - s
    w = np.zeros((len(t), n_points))
    rows = np.arange(len(t))
    w[rows, s] = 1 - frac
    w[rows, s + 1] += frac
    return w


def plane_points(control_points: np.ndarray, kind: str, t: np.ndarray) -> np.ndarray:
    """[len(t), 2] points of the curve at parameters t, from control points [k+2, 2] (w1 first)."""
    cp = np.asarray(control_points, dtype=np.float64)
    if cp.ndim != 2 or cp.shape[0] < 2 or cp.shape[1] != 2:
        raise BundleError(f"control points: expected an array [k+2, 2], got shape {cp.shape}")
    if kind == "bezier":
        weights = bernstein(t, cp.shape[0] - 1)
    elif kind == "polychain":
        weights = polychain_weights(t, cp.shape[0])
    else:
        raise BundleError(f"curve kind: expected one of {CURVE_KINDS}, got {kind!r}")
    return weights @ cp


def curve_polyline(control_points: np.ndarray, kind: str, samples: int) -> np.ndarray:
    """`samples` points at t = 0..1 evenly; the first is w1's position, the last w2's."""
    return plane_points(control_points, kind, np.linspace(0.0, 1.0, samples))
