"""Curves in weight space between two optima: Bézier of any degree and polygonal chains.

A curve is an affine combination of its control points: the endpoints w1, w2 (fixed) and the
bends θ1..θk (trained). φ(t) = c0(t)·w1 + Σ ci(t)·θi + c_{k+1}(t)·w2, with coefficients that
sum to one. Everything here works on flat weight vectors (lossart/weights.py), so any model can
be evaluated at φ(t) with `torch.func.functional_call` without rewriting its layers.

- `bezier` with k bends has degree k+1 and Bernstein coefficients (k=1: the quadratic Bézier of
  Garipov et al. 2018).
- `polychain` with k bends is a polygonal chain with knots evenly spaced in t: bend i sits at
  t = i/(k+1), and φ passes through it.

φ(0) and φ(1) reproduce w1 and w2 to the bit (`curve_point`/`curve_points` return the endpoints
themselves there rather than a sum that could flip the sign of a zero).
"""

from __future__ import annotations

from math import comb

import torch

from lossart.errors import LossartError
from lossart.geometry.specs import KINDS, CurveSpec  # noqa: F401  (importable from here)


def coefficients(spec: CurveSpec, t: torch.Tensor) -> torch.Tensor:
    """Weights of (w1, θ1..θk, w2) at each t in [0, 1]: shape `[*t.shape, k+2]`, summing to 1.

    At t = 0 the result is exactly (1, 0, ..., 0) and at t = 1 exactly (0, ..., 0, 1).
    """
    t = torch.as_tensor(t)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    k = spec.bends
    if spec.kind == "bezier":
        n = k + 1
        i = torch.arange(n + 1, device=t.device, dtype=t.dtype)
        binom = torch.tensor(
            [float(comb(n, j)) for j in range(n + 1)], device=t.device, dtype=t.dtype
        )
        tt = t.unsqueeze(-1)
        # pow(0, 0) == 1, so the ends come out exactly one-hot.
        return binom * tt.pow(i) * (1 - tt).pow(n - i)
    # polychain: hat functions around evenly spaced knots j/(k+1).
    s = t.unsqueeze(-1) * (k + 1)
    j = torch.arange(k + 2, device=t.device, dtype=t.dtype)
    return (1 - (s - j).abs()).clamp_min(0)


def bend_positions(spec: CurveSpec) -> list[float]:
    """Where on the straight segment each bend starts (fraction of the way from w1 to w2).

    With control points evenly spaced on the segment, both families trace the segment itself at
    uniform speed (linear precision of Bernstein polynomials; knots of the chain), so training
    starts from the straight line.
    """
    k = spec.bends
    return [i / (k + 1) for i in range(1, k + 1)]


def init_bends(
    spec: CurveSpec,
    w1: torch.Tensor,
    w2: torch.Tensor,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Initial bends `[k, P]` on the segment w1→w2, plus optional Gaussian noise.

    `noise` is the expected norm of each bend's perturbation as a fraction of |w2 − w1|, so the
    same value means the same thing for any model size.
    """
    alphas = torch.tensor(bend_positions(spec), dtype=w1.dtype, device=w1.device).unsqueeze(1)
    bends = (1 - alphas) * w1 + alphas * w2
    if noise:  # its range is CurveConfig.init_noise's (lossart.options)
        scale = noise * (w2 - w1).norm() / w1.numel() ** 0.5
        eps = torch.randn(bends.shape, generator=generator, dtype=w1.dtype, device="cpu")
        bends = bends + scale * eps.to(w1.device)
    return bends


def _check_shapes(w1: torch.Tensor, bends: torch.Tensor, w2: torch.Tensor, spec: CurveSpec) -> None:
    if w1.shape != w2.shape or w1.dim() != 1:
        raise LossartError(
            "endpoints must be flat vectors of one size, "
            f"got {tuple(w1.shape)} and {tuple(w2.shape)}"
        )
    if bends.shape != (spec.bends, w1.shape[0]):
        raise LossartError(
            f"bends have shape {tuple(bends.shape)}, expected ({spec.bends}, {w1.shape[0]})"
        )


def curve_point(
    spec: CurveSpec,
    w1: torch.Tensor,
    bends: torch.Tensor,
    w2: torch.Tensor,
    t: float | torch.Tensor,
) -> torch.Tensor:
    """φ(t) as a flat vector `[P]`; differentiable with respect to `bends`.

    t = 0 and t = 1 return (copies of) w1 and w2 exactly.
    """
    _check_shapes(w1, bends, w2, spec)
    tf = float(t)
    if tf == 0.0:
        return w1.clone()
    if tf == 1.0:
        return w2.clone()
    c = coefficients(spec, torch.tensor(tf, dtype=w1.dtype, device=w1.device))
    return c[0] * w1 + c[-1] * w2 + c[1:-1] @ bends


def curve_points(
    spec: CurveSpec, w1: torch.Tensor, bends: torch.Tensor, w2: torch.Tensor, ts: torch.Tensor
) -> torch.Tensor:
    """φ at many t at once: `[N, P]` for `ts` of shape `[N]` (exact endpoints at t = 0, 1)."""
    _check_shapes(w1, bends, w2, spec)
    ts = torch.as_tensor(ts, dtype=w1.dtype, device=w1.device).reshape(-1)
    c = coefficients(spec, ts)
    out = c[:, :1] * w1 + c[:, -1:] * w2 + c[:, 1:-1] @ bends
    out = torch.where((ts == 0).unsqueeze(1), w1, out)
    return torch.where((ts == 1).unsqueeze(1), w2, out)


def segment_points(w1: torch.Tensor, w2: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Points of the straight segment w1 -> w2 at many t: `[N, P]`, exact endpoints at t = 0, 1.

    The reference path that every curve is compared with (eval-curve, ensembles)."""
    ts = torch.as_tensor(ts).reshape(-1).to(w1.device)
    tf = ts.to(w1.dtype)[:, None]
    out = (1 - tf) * w1 + tf * w2
    out = torch.where((ts == 0)[:, None], w1, out)
    return torch.where((ts == 1)[:, None], w2, out)

