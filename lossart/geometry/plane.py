"""Planes in weight space: the 2-D slices that grids are evaluated on and terrain is made of.

A plane through three weight vectors w1, w2, w3 (DESIGN.md): u = w2 − w1, v = w3 − w1, then
Gram–Schmidt v ← v − (u·v / u·u)·u, and w(x, y) = w1 + x·û + y·v̂. w1 is at (0, 0), w2 at
(|u|, 0) and w3 at (x3, y3) with y3 > 0. For a curve frame, w3 is the frame's bend (the mean of
its bends when there are several), so every frame shows w1 and w2 at the same place and the bend
above the x axis. Which plane each frame of a run uses is the grid stage's choice
(`lossart.grid.planes`); this module is pure math on tensors and arrays.

Because a curve is an affine combination of its control points, its projection onto any plane is
the same curve of the projected control points (`control_points_2d`); a quadratic Bézier whose
bend lies in the plane lies in the plane entirely.

Dot products and norms are taken in float64: weight vectors have up to millions of entries and
float32 sums would cost orthonormality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lossart.errors import LossartError

# A third point closer than this (relative to the vectors' size) to the line through the first two
# does not define a plane: float32 rounding of a point on the segment alone is ~1e-7 relative.
DEGENERATE_TOL = 1e-5


@dataclass
class Plane:
    """An affine plane in weight space with an orthonormal basis (flat float32 vectors)."""

    origin: torch.Tensor
    u_hat: torch.Tensor
    v_hat: torch.Tensor

    def coords(self, w: torch.Tensor) -> tuple[float, float, float]:
        """(x, y) of w's orthogonal projection, and w's distance from the plane."""
        d = (w.to(self.origin.device) - self.origin).double()
        x = float(d @ self.u_hat.double())
        y = float(d @ self.v_hat.double())
        rest = d - x * self.u_hat.double() - y * self.v_hat.double()
        return x, y, float(rest.norm())

    def coords_many(self, ws: torch.Tensor) -> np.ndarray:
        """`[N, 3]` array of (x, y, distance) for `[N, P]` weight vectors."""
        return np.array([self.coords(w) for w in ws], dtype=np.float64).reshape(-1, 3)

    def weights(self, xy: torch.Tensor) -> torch.Tensor:
        """Flat weights `[N, P]` at plane coordinates `xy` `[N, 2]` (origin + x·û + y·v̂)."""
        xy = torch.as_tensor(xy, dtype=self.origin.dtype, device=self.origin.device).reshape(-1, 2)
        return self.origin + xy[:, :1] * self.u_hat + xy[:, 1:] * self.v_hat

    def to(self, device: str | torch.device) -> Plane:
        return Plane(self.origin.to(device), self.u_hat.to(device), self.v_hat.to(device))


def _perp(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """v minus its component along u (float64)."""
    return v - (v @ u) / (u @ u) * u


def _is_degenerate(v_perp: torch.Tensor, *ws: torch.Tensor) -> bool:
    scale = max(float(w.double().norm()) for w in ws)
    return float(v_perp.norm()) <= DEGENERATE_TOL * max(scale, 1e-30)


def defines_plane(w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor) -> bool:
    """Whether w3 lies far enough off the line through w1 and w2 to fix a plane with them."""
    vp = _perp((w2 - w1).double(), (w3 - w1).double())
    return not _is_degenerate(vp, w1, w2, w3)


def plane_from_directions(w1: torch.Tensor, w2: torch.Tensor, v: torch.Tensor) -> Plane:
    """The plane through w1 and w2 spanned with direction v (v need not be orthogonal to w2−w1)."""
    u = (w2 - w1).double()
    un = u.norm()
    if float(un) == 0.0:
        raise LossartError("w1 and w2 are the same weights: no plane (or curve) between them")
    vp = _perp(u, v.double())
    vn = vp.norm()
    if float(vn) == 0.0:
        raise LossartError("the plane's second direction is parallel to w2 - w1")
    dtype = w1.dtype if w1.is_floating_point() else torch.float32
    return Plane(w1.clone(), (u / un).to(dtype), (vp / vn).to(dtype))


def plane_through(w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor) -> Plane:
    """The plane through three weight vectors; w1 is the origin, w2 on the +x axis, w3 at y > 0.

    Refuses (one line) three points on one line.
    """
    if not (w1.shape == w2.shape == w3.shape) or w1.dim() != 1:
        raise LossartError(
            f"plane needs three flat weight vectors of one size, got {tuple(w1.shape)}, "
            f"{tuple(w2.shape)}, {tuple(w3.shape)}"
        )
    u = (w2 - w1).double()
    if float(u.norm()) == 0.0:
        raise LossartError("w1 and w2 are the same weights: no plane through them")
    vp = _perp(u, (w3 - w1).double())
    if _is_degenerate(vp, w1, w2, w3):
        raise LossartError("the three weight vectors lie on one line: they define no plane")
    return plane_from_directions(w1, w2, w3 - w1)


def frame_bend(bends: torch.Tensor) -> torch.Tensor:
    """The point that fixes a frame's plane: the bend, or the mean of the bends."""
    return bends.mean(dim=0) if bends.dim() == 2 else bends


def control_points_2d(
    plane: Plane, w1: torch.Tensor, bends: torch.Tensor, w2: torch.Tensor
) -> np.ndarray:
    """`[k+2, 2]` plane coordinates of (w1, θ1..θk, w2).

    The curve of these 2-D control points (same family) is exactly the projection of φ onto the
    plane, since projection is affine and the coefficients sum to one.
    """
    pts = [w1, *bends.reshape(-1, w1.shape[0]), w2]
    return np.array([plane.coords(p)[:2] for p in pts], dtype=np.float64)


@dataclass(frozen=True)
class Window:
    """The rectangle of plane coordinates a grid covers."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]

    @property
    def shape(self) -> float:
        """Width over height (the adaptive picture criterion judges slopes in these units)."""
        return (self.x_range[1] - self.x_range[0]) / (self.y_range[1] - self.y_range[0])

    def to_dict(self) -> dict[str, list[float]]:
        return {"x_range": list(self.x_range), "y_range": list(self.y_range)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Window:
        x0, x1 = d["x_range"]
        y0, y1 = d["y_range"]
        return cls((float(x0), float(x1)), (float(y0), float(y1)))

    def contains(self, xy: np.ndarray) -> bool:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return bool(
            np.all((xy[:, 0] >= self.x_range[0]) & (xy[:, 0] <= self.x_range[1]))
            and np.all((xy[:, 1] >= self.y_range[0]) & (xy[:, 1] <= self.y_range[1]))
        )


def window_around(points: np.ndarray, margin: float = 0.2) -> Window:
    """The bounding box of 2-D points grown by `margin` × its larger side on every side.

    One margin for both axes keeps the plane's units square; a box flatter than 10% of its width
    is grown in y to that height, so a curve still on the straight line gets terrain around it.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    width, height = hi - lo
    if width <= 0 and height <= 0:
        raise LossartError("window needs points that are not all the same")
    min_h = 0.1 * width
    if height < min_h:
        mid = (lo[1] + hi[1]) / 2
        lo[1], hi[1] = mid - min_h / 2, mid + min_h / 2
    pad = margin * max(width, hi[1] - lo[1])
    return Window(
        (float(lo[0] - pad), float(hi[0] + pad)), (float(lo[1] - pad), float(hi[1] + pad))
    )


def fit_aspect(window: Window, aspect: float | None) -> Window:
    """`window` grown symmetrically along its short side until width / height == `aspect`.

    A picture's frame is wider than tall (16:9 for video), while the curve's window is often a
    thin strip along w1 -> w2; growing it to the picture's aspect fills the frame with terrain
    instead of background, and keeps the curve centred. None leaves the window as it is.
    """
    if aspect is None:
        return window
    if not (aspect > 0 and aspect < float("inf")):
        raise LossartError(f"aspect {aspect!r}: expected a finite ratio > 0 (e.g. 16/9) or None")
    (x0, x1), (y0, y1) = window.x_range, window.y_range
    width, height = x1 - x0, y1 - y0
    if width > aspect * height:
        grow = (width / aspect - height) / 2
        y0, y1 = y0 - grow, y1 + grow
    else:
        grow = (height * aspect - width) / 2
        x0, x1 = x0 - grow, x1 + grow
    return Window((float(x0), float(x1)), (float(y0), float(y1)))
