"""Filter-normalized random directions (Li et al. 2018, "Visualizing the loss landscape of
neural nets"): the plane around one network, for any model.

A Gaussian direction d is rescaled filter by filter to the weights' scale: for every parameter
tensor with two or more dimensions (conv and linear weights), each filter d[i] (the slice along
dim 0: one output channel or unit) becomes d[i] / |d[i]| · |w[i]|. Without this, directions
would mean different things for layers of different scale, and for the same function under BN's
scale invariance. One-dimensional parameters (biases, BN weights and biases) are zeroed by
default (`ignore="biasbn"`, as in the paper). Kept (`ignore=None`), they are filter-normalized
like the rest with each element its own filter, so d[i] = sign(d[i]) · |w[i]|: the direction
takes the weight's magnitude and a random sign. (The authors' code copies w itself there instead.)

Directions are drawn on the CPU in float32 from a `torch.Generator`, so a seed gives the same
vector on every machine and device; norms are taken in float64.

`random_plane` gives the two directions as a `DirectionPlane`: origin = the weights, axes = the
two directions, NOT orthonormalized. Li et al.'s coordinates are in units of the directions
(x = 1 moves every filter by its own norm), which is what makes plots of different networks
comparable; in millions of dimensions two such directions are nearly orthogonal anyway
(`DirectionPlane.cosine`). Grids are evaluated on it exactly as on a `Plane`, which it mimics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lossart.errors import LossartError
from lossart.geometry.plane import Window
from lossart.geometry.specs import IGNORE
from lossart.geometry.weights import ParamLayout


def _layout(model_or_layout: nn.Module | ParamLayout) -> ParamLayout:
    if isinstance(model_or_layout, ParamLayout):
        return model_or_layout
    if isinstance(model_or_layout, nn.Module):
        return ParamLayout.of(model_or_layout)
    raise LossartError(
        f"expected an nn.Module or a ParamLayout, got {type(model_or_layout).__name__}"
    )


def filter_normalize(
    layout: ParamLayout,
    direction: torch.Tensor,
    weights: torch.Tensor,
    ignore: str | None = "biasbn",
) -> torch.Tensor:
    """`direction` [P] rescaled filter by filter to the norms of `weights` [P] (module docstring)."""
    if ignore not in IGNORE:
        raise LossartError(f"ignore={ignore!r}: expected 'biasbn' or None")
    for name, t in (("direction", direction), ("weights", weights)):
        if t.dim() != 1 or t.shape[0] != layout.numel:
            raise LossartError(
                f"{name} has shape {tuple(t.shape)}; the model has {layout.numel} parameters"
            )
    d_all = direction.detach().to(weights.device, torch.float64)
    w_all = weights.detach().to(torch.float64)
    parts = []
    for shape, d, w in zip(layout.shapes, d_all.split(layout.sizes), w_all.split(layout.sizes)):
        if len(shape) >= 2:
            d2, w2 = d.reshape(shape[0], -1), w.reshape(shape[0], -1)
            scale = w2.norm(dim=1) / d2.norm(dim=1).clamp_min(1e-300)
            parts.append((d2 * scale[:, None]).reshape(-1))
        elif ignore == "biasbn":
            parts.append(torch.zeros_like(d))
        else:
            parts.append(torch.sign(d) * w.abs())
    dtype = weights.dtype if weights.is_floating_point() else torch.float32
    return torch.cat(parts).to(dtype) if parts else d_all.to(dtype)


def random_direction(
    model_or_layout: nn.Module | ParamLayout,
    weights: torch.Tensor,
    seed: int | torch.Generator,
    ignore: str | None = "biasbn",
) -> torch.Tensor:
    """A filter-normalized Gaussian direction at `weights` (flat [P], on the weights' device).

    `seed` is an int or a CPU `torch.Generator` (advanced by P draws, for several directions).
    """
    layout = _layout(model_or_layout)
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    d = torch.randn(layout.numel, generator=g, dtype=torch.float32)
    return filter_normalize(layout, d, weights, ignore)


@dataclass
class DirectionPlane:
    """The plane origin + x·u + y·v with free (not orthonormal) axes, in units of u and v.

    It offers what grids and terrain use of a `Plane`: `origin`, `u_hat`/`v_hat` (here simply u
    and v: the grid engine evaluates origin + x·u_hat + y·v_hat, which is right for any axes),
    `weights(xy)`, `coords(w)`, `coords_many`, `to(device)`.
    """

    origin: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor

    @property
    def u_hat(self) -> torch.Tensor:
        return self.u

    @property
    def v_hat(self) -> torch.Tensor:
        return self.v

    @property
    def cosine(self) -> float:
        """cos of the angle between the axes (near 0 for random directions in many dimensions)."""
        u, v = self.u.double(), self.v.double()
        return float(u @ v / (u.norm() * v.norm()))

    def weights(self, xy: torch.Tensor) -> torch.Tensor:
        """Flat weights `[N, P]` at coordinates `xy` `[N, 2]` (origin + x·u + y·v)."""
        xy = torch.as_tensor(xy, dtype=self.origin.dtype, device=self.origin.device).reshape(-1, 2)
        return self.origin + xy[:, :1] * self.u + xy[:, 1:] * self.v

    def coords(self, w: torch.Tensor) -> tuple[float, float, float]:
        """(x, y) with origin + x·u + y·v closest to w (least squares), and w's distance from it.

        For w in the plane these are exactly the coefficients that `weights` takes; with
        orthonormal axes they reduce to `Plane.coords`.
        """
        d = (w.to(self.origin.device) - self.origin).double()
        u, v = self.u.double(), self.v.double()
        gram = np.array([[float(u @ u), float(u @ v)], [float(u @ v), float(v @ v)]])
        rhs = np.array([float(u @ d), float(v @ d)])
        x, y = np.linalg.solve(gram, rhs)
        rest = d - float(x) * u - float(y) * v
        return float(x), float(y), float(rest.norm())

    def coords_many(self, ws: torch.Tensor) -> np.ndarray:
        """`[N, 3]` array of (x, y, distance) for `[N, P]` weight vectors."""
        return np.array([self.coords(w) for w in ws], dtype=np.float64).reshape(-1, 3)

    def to(self, device: str | torch.device) -> DirectionPlane:
        return DirectionPlane(self.origin.to(device), self.u.to(device), self.v.to(device))


def random_plane(
    weights: torch.Tensor,
    layout: nn.Module | ParamLayout,
    seed: int,
    ignore: str | None = "biasbn",
) -> DirectionPlane:
    """Li et al.'s plane around `weights`: two filter-normalized directions as the axes.

    Both come from one generator seeded with `seed` (u first, then v), so `u` equals
    `random_direction(layout, weights, seed)` and different seeds share no direction.
    """
    lay = _layout(layout)
    g = torch.Generator().manual_seed(int(seed))
    u = random_direction(lay, weights, g, ignore)
    v = random_direction(lay, weights, g, ignore)
    if float(u.double().norm()) == 0.0:
        raise LossartError(
            "the random directions are zero: every parameter is one-dimensional "
            "(biases, BN) and ignore='biasbn' drops them; pass ignore=None"
        )
    return DirectionPlane(weights.detach().clone(), u, v)


def centred_window(extent: float = 1.0) -> Window:
    """[-extent, extent]² around the origin: Li et al.'s usual view is extent 1."""
    if not extent > 0:
        raise LossartError(f"extent: expected a number > 0, got {extent}")
    return Window((-float(extent), float(extent)), (-float(extent), float(extent)))
