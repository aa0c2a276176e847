"""Extreme eigenpairs, trace and spectral density of a symmetric operator known only by its
products (pure linear algebra: no model, no data).

- `lanczos`: the Lanczos process with full reorthogonalization (every new vector is made
  orthogonal to all earlier ones twice, in float64), stopped when the wanted Ritz pairs' residuals
  `|A x - θ x| = β_m |s_m|` fall under `tol · max|θ|`. Full reorthogonalization costs m stored
  vectors but removes the ghost eigenvalues plain Lanczos produces in finite precision, so the
  top-k values come out once each and to the residual's accuracy; both ends of the spectrum
  converge in the same run (the smallest eigenvalue: negative curvature, a saddle).
- `hutchinson_trace`: Rademacher probes z, tr(A) ≈ mean zᵀAz. With an orthonormal basis Q,
  tr(A) = tr(QᵀAQ) + tr(P A P) exactly for P = I - QQᵀ, and only the second term is estimated
  (deflation, as in Hutch++: the directions Q spans no longer add variance). The Lanczos basis
  of the eigenvalue run is such a Q, with tr(QᵀAQ) = tr(T) known for free; it holds the top of
  the spectrum, where most of the variance comes from.
- `slq_density`: stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani et al. 2019):
  per probe, the Ritz values of m Lanczos steps are the nodes and the squared first components of
  T's eigenvectors the weights of a quadrature for zᵀ f(A) z; the density is their Gaussian blur.

Vectors are 1-d tensors in a subspace chosen by `mask` (bool, the coordinates the operator
acts on; all by default); probes and starts are drawn on the CPU from a seeded generator so a
seed gives the same numbers on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from lossart.errors import LossartError

MatVec = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LanczosResult:
    """Ritz pairs of the Krylov space built, largest first."""

    values: np.ndarray  # float64 [m]: Ritz values, descending
    residuals: np.ndarray  # float64 [m]: |A x - θ x| of each Ritz pair (unit x)
    basis: torch.Tensor  # float64 [m, n]: the orthonormal Lanczos vectors
    rotation: np.ndarray  # float64 [m, m]: T's eigenvectors, columns in the order of `values`
    weights: np.ndarray  # float64 [m]: squared first components (quadrature weights)
    steps: int
    converged: bool
    products: int

    def vector(self, i: int) -> torch.Tensor:
        """The unit Ritz vector of `values[i]` (float64, on the basis' device)."""
        s = torch.as_tensor(self.rotation[:, i], dtype=self.basis.dtype, device=self.basis.device)
        x = s @ self.basis
        return x / x.norm()

    def vectors(self, idx: list[int]) -> torch.Tensor:
        return torch.stack([self.vector(i) for i in idx]) if idx else self.basis[:0]


@dataclass
class TraceEstimate:
    """Hutchinson's estimate with its standard error and what it took."""

    value: float
    stderr: float
    samples: int
    deflated: float = 0.0  # the exact part tr(QᵀAQ) included in `value`
    history: list[float] = field(default_factory=list)  # running estimate after each probe


def rademacher(n: int, generator: torch.Generator, mask: torch.Tensor | None = None) -> torch.Tensor:
    """A ±1 vector (float64, CPU), zero outside `mask`."""
    z = torch.randint(0, 2, (n,), generator=generator, dtype=torch.int8).double() * 2 - 1
    return z if mask is None else z * mask.double()


def _check_mask(n: int, mask: torch.Tensor | None) -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.dtype != torch.bool or mask.shape != (n,):
        raise LossartError(f"mask: expected a bool tensor of shape ({n},), got {tuple(mask.shape)}")
    if not bool(mask.any()):
        raise LossartError("mask: no coordinates left to act on")
    return mask


def lanczos(
    matvec: MatVec,
    n: int,
    start: torch.Tensor | None = None,
    steps: int = 100,
    k: int = 1,
    tol: float = 1e-3,
    smallest: bool = False,
    device: torch.device | str = "cpu",
    mask: torch.Tensor | None = None,
    seed: int = 0,
    check_every: int = 1,
    on_step: Callable[[int], None] | None = None,
    stop: bool = True,
) -> LanczosResult:
    """Lanczos with full reorthogonalization on the symmetric `matvec` over `n` coordinates.

    Stops after `steps` products, on an invariant subspace (β ≈ 0), or (`stop`) once the `k`
    largest Ritz pairs (and the smallest too with `smallest`) have residuals under
    `tol · max|θ|`. `matvec` takes and returns float64 vectors on `device`.
    """
    if steps < 1 or k < 1:
        raise LossartError(f"lanczos: steps {steps} and k {k} must be at least 1")
    mask = _check_mask(n, mask)
    dim = int(mask.sum()) if mask is not None else n
    steps = min(steps, dim)
    if start is None:
        start = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q = start.to(device, torch.float64)
    if mask is not None:
        q = q * mask.to(device)
    if float(q.norm()) == 0.0:
        raise LossartError("lanczos: the start vector is zero on the coordinates acted on")
    q = q / q.norm()
    basis = torch.empty(steps, n, dtype=torch.float64, device=device)
    alpha: list[float] = []
    beta: list[float] = []
    converged = False
    done = 0
    for j in range(steps):
        basis[j] = q
        w = matvec(q).to(device, torch.float64)
        done += 1
        a = float(q @ w)
        alpha.append(a)
        w = w - a * q
        if j > 0:
            w = w - beta[-1] * basis[j - 1]
        for _ in range(2):  # twice is enough (Kahan's "twice is enough")
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        b = float(w.norm())
        if on_step is not None:
            on_step(j + 1)
        scale = max(abs(v) for v in alpha) or 1.0
        if b <= 1e-10 * scale:  # an invariant subspace: the Ritz values are exact
            beta.append(0.0)
            converged = True
            break
        beta.append(b)
        if stop and (j + 1) % check_every == 0 and j + 1 >= k:
            vals, rot = _tridiagonal_eig(alpha, beta[:-1])
            res = np.abs(b * rot[-1, :])
            wanted = list(range(min(k, len(vals))))
            if smallest:
                wanted.append(len(vals) - 1)
            if np.all(res[wanted] <= tol * max(np.abs(vals).max(), 1e-300)):
                converged = True
                break
        q = w / b
    m = len(alpha)
    vals, rot = _tridiagonal_eig(alpha, beta[: m - 1])
    res = np.abs(beta[m - 1] * rot[-1, :])
    return LanczosResult(
        values=vals,
        residuals=res,
        basis=basis[:m],
        rotation=rot,
        weights=rot[0, :] ** 2,
        steps=m,
        converged=converged,
        products=done,
    )


def _tridiagonal_eig(alpha: list[float], beta: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors of the symmetric tridiagonal T."""
    t = np.diag(np.asarray(alpha, dtype=np.float64))
    if beta:
        off = np.asarray(beta, dtype=np.float64)
        t += np.diag(off, 1) + np.diag(off, -1)
    vals, vecs = np.linalg.eigh(t)
    order = np.argsort(vals)[::-1]
    return vals[order], vecs[:, order]


def hutchinson_trace(
    matvec: MatVec,
    n: int,
    samples: int = 50,
    device: torch.device | str = "cpu",
    mask: torch.Tensor | None = None,
    seed: int = 0,
    basis: torch.Tensor | None = None,
    on_sample: Callable[[int], None] | None = None,
    known: float | None = None,
) -> TraceEstimate:
    """tr(A) over the masked coordinates by Rademacher probes (module docstring).

    `basis` `[k, n]`: orthonormal vectors whose part of the trace, tr(QᵀAQ), is taken exactly
    and removed from the probes: `known` if given (a Lanczos basis: tr(T), the sum of its Ritz
    values, at no cost), else computed with k more products. The probes are independent of the
    basis, so the estimate stays unbiased.
    """
    if samples < 2:
        raise LossartError(f"hutchinson: samples {samples}: expected at least 2")
    mask = _check_mask(n, mask)
    g = torch.Generator().manual_seed(int(seed))
    exact = 0.0
    q = None
    if basis is not None and len(basis):
        q = basis.to(device, torch.float64)
        if known is not None:
            exact = float(known)
        else:
            exact = float(sum(float(v @ matvec(v).to(device, torch.float64)) for v in q))

    def project(v: torch.Tensor) -> torch.Tensor:
        return v if q is None else v - q.T @ (q @ v)

    values: list[float] = []
    history: list[float] = []
    for i in range(samples):
        z = project(rademacher(n, g, mask).to(device))
        values.append(float(z @ project(matvec(z).to(device, torch.float64))))
        history.append(exact + float(np.mean(values)))
        if on_sample is not None:
            on_sample(i + 1)
    arr = np.asarray(values)
    return TraceEstimate(
        value=exact + float(arr.mean()),
        stderr=float(arr.std(ddof=1) / np.sqrt(len(arr))),
        samples=samples,
        deflated=exact,
        history=history,
    )


@dataclass
class Density:
    """Stochastic Lanczos quadrature: nodes and weights per probe, and their blurred density."""

    nodes: list[list[float]]
    weights: list[list[float]]

    def curve(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """The spectral density on `grid` (integrates to about 1): Gaussians of width sigma."""
        out = np.zeros_like(grid, dtype=np.float64)
        for nodes, weights in zip(self.nodes, self.weights, strict=True):
            for t, w in zip(nodes, weights, strict=True):
                out += w * np.exp(-((grid - t) ** 2) / (2 * sigma**2))
        return out / (len(self.nodes) * sigma * np.sqrt(2 * np.pi))


def slq_density(
    matvec: MatVec,
    n: int,
    probes: int = 2,
    steps: int = 40,
    device: torch.device | str = "cpu",
    mask: torch.Tensor | None = None,
    seed: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> Density:
    """Nodes and weights of `probes` Lanczos runs of `steps` each from Rademacher starts."""
    mask = _check_mask(n, mask)
    g = torch.Generator().manual_seed(int(seed) + 7919)
    nodes, weights = [], []
    for _ in range(probes):
        res = lanczos(matvec, n, rademacher(n, g, mask), steps, device=device, mask=mask,
                      stop=False, on_step=on_step)  # fmt: skip
        nodes.append([float(v) for v in res.values])
        weights.append([float(v) for v in res.weights])
    return Density(nodes, weights)
