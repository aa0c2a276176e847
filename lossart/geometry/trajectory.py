"""The plane of a training trajectory (Li et al. 2018, section 7): PCA of the snapshots.

Why: two random directions miss the optimizer's route (it lies in a tiny subspace), so Li et al.
take the weights w_0..w_n saved along training, form the matrix M of rows w_i − w_final, and use
its first two principal directions: the plane through the final weights that the trajectory
varies in most. Every snapshot is then drawn at its projection ((w_i − w_final)·u,
(w_i − w_final)·v), so the final weights sit at (0, 0).

Centring: Li et al.'s code fits scikit-learn's PCA to M, which subtracts the rows' mean before
the SVD; `centre=True` (the default) does the same, so the directions and the explained variance
shares are theirs. `centre=False` takes the SVD of M itself (directions through w_final that best
fit the differences). Either way the coordinates are projections of w_i − w_final, uncentred.

The variance share of direction k is s_k² / Σ s_j² over all singular values of the (centred)
matrix: scikit-learn's `explained_variance_ratio_`. With `ignore="biasbn"` (the default, as their
code), one-dimensional parameters (biases, BN weights and biases) are zeroed in M, so the
directions move only filters and the plane keeps the final network's biases and BN parameters.

For N snapshots of P parameters the SVD comes from the N×N Gram matrix (float64), so memory is
N·P, not P².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lossart.errors import LossartError
from lossart.geometry.directions import IGNORE
from lossart.geometry.plane import Plane
from lossart.geometry.weights import ParamLayout


def filter_mask(layout: ParamLayout, ignore: str | None = "biasbn") -> torch.Tensor:
    """bool [P]: the parameters that directions may move (1-dim ones dropped with "biasbn")."""
    if ignore not in IGNORE:
        raise LossartError(f"ignore={ignore!r}: expected 'biasbn' or None")
    parts = [
        torch.full((size,), ignore is None or len(shape) >= 2, dtype=torch.bool)
        for shape, size in zip(layout.shapes, layout.sizes, strict=True)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)


@dataclass
class TrajectoryPlane:
    """The first principal directions of a trajectory and where every snapshot lies in them."""

    plane: Plane  # origin w_final, u_hat, v_hat: the first two principal directions (unit)
    coords: np.ndarray  # float64 [N, 2]: projections of w_i − w_final; the final one is (0, 0)
    explained: np.ndarray  # float64 [components]: variance share of each principal direction
    distance: np.ndarray  # float64 [N]: each snapshot's distance from the plane
    centred: bool

    @property
    def explained_plane(self) -> float:
        """Share of the variance the plane's two directions explain together."""
        return float(self.explained[:2].sum())


def trajectory_plane(
    snapshots: torch.Tensor,
    final: torch.Tensor,
    components: int = 2,
    mask: torch.Tensor | None = None,
    centre: bool = True,
) -> TrajectoryPlane:
    """PCA of `snapshots` [N, P] relative to `final` [P] (module docstring).

    `mask` (bool [P], `filter_mask`) zeroes the parameters directions must not move. Each
    direction's sign is chosen so that the first snapshot has a coordinate >= 0 along it.
    """
    if snapshots.dim() != 2 or final.dim() != 1 or snapshots.shape[1] != final.shape[0]:
        raise LossartError(
            f"snapshots {tuple(snapshots.shape)} and final weights {tuple(final.shape)}: "
            "expected [N, P] and [P]"
        )
    n = snapshots.shape[0]
    # `components` >= 2: its range is declared once, on lossart.grid.config.TrajectoryConfig
    if n < 3:
        raise LossartError(
            f"a trajectory plane needs at least 3 snapshots, got {n} (train with --snapshots 3 "
            "or more)"
        )
    diffs = snapshots.double() - final.double().to(snapshots.device)
    if mask is not None:
        diffs = diffs * mask.to(diffs.device, torch.float64)
    m = diffs - diffs.mean(dim=0, keepdim=True) if centre else diffs
    gram = (m @ m.T).cpu().numpy()
    evals, evecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0.0, None), evecs[:, order]
    total = float(evals.sum())
    if total <= 0 or evals[1] <= 1e-12 * total:
        raise LossartError(
            "the snapshots vary along fewer than two directions: no trajectory plane "
            "(did training move the weights?)"
        )
    k = min(components, n)
    sing = np.sqrt(evals[:2])
    dirs = (m.T @ torch.from_numpy(evecs[:, :2].copy()).to(m.device)) / torch.from_numpy(
        sing
    ).to(m.device)  # [P, 2] unit columns: the right singular vectors
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    coords = (diffs @ dirs).cpu().numpy()
    signs = np.where(coords[0] < 0, -1.0, 1.0)
    dirs, coords = dirs * torch.from_numpy(signs).to(dirs.device), coords * signs
    rest = diffs - torch.from_numpy(coords).to(diffs.device) @ dirs.T
    dtype = final.dtype if final.is_floating_point() else torch.float32
    plane = Plane(final.detach().clone(), dirs[:, 0].to(dtype).contiguous(),
                  dirs[:, 1].to(dtype).contiguous())  # fmt: skip
    return TrajectoryPlane(
        plane=plane,
        coords=coords.astype(np.float64),
        explained=(evals[:k] / total).astype(np.float64),
        distance=rest.norm(dim=1).cpu().numpy().astype(np.float64),
        centred=centre,
    )
