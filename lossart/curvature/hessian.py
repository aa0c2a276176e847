"""`lossart hessian A.pt`: top eigenpairs, trace and more of the training loss's Hessian.

`hessian_of` works on any model, weights and subset (the library core); `hessian_at` loads a
checkpoint and its fixed evaluation subset first. What is computed, on the exact-BN loss over
the subset (lossart.curvature.operator), restricted to the parameters random planes move:

- the top `k` eigenvalues and unit eigenvectors (Lanczos, full reorthogonalization, stopped at
  residual `tol · λ_max`), with their residuals; with `smallest`, the most negative eigenvalue
  from the same Krylov space (a clear negative value: a saddle, not a minimum);
- the trace by Hutchinson's estimator, deflated by the Lanczos basis of the first item (its
  part of the trace is exact; lossart.curvature.lanczos), with its standard error;
- `per_layer`: the top eigenvalue of each parameter tensor's own block (the others held fixed);
- `density`: stochastic Lanczos quadrature nodes and weights of the spectral density.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lossart.curvature.config import HessianConfig  # noqa: F401  (importable from here)
from lossart.curvature.lanczos import Density, hutchinson_trace, lanczos, slq_density
from lossart.curvature.operator import HessianOperator
from lossart.data import eval_subset, load_dataset
from lossart.devices import cpu_threads, resolve_device
from lossart.errors import LossartError
from lossart.geometry.trajectory import filter_mask
from lossart.geometry.weights import ParamLayout
from lossart.progress import progress
from lossart.training.checkpoint import load_checkpoint


@dataclass
class LayerTop:
    name: str
    size: int
    eigenvalue: float
    residual: float


@dataclass
class HessianResult:
    """Everything `hessian_of` found; `vectors` [k (+1 for the smallest), P] are unit, float32."""

    loss: float
    gradient_norm: float
    dim: int  # coordinates the Hessian acts on
    params: int  # all parameters
    subset: int
    eigenvalues: list[float]
    residuals: list[float]
    smallest: float | None
    smallest_residual: float | None
    trace: float | None
    trace_stderr: float | None
    lanczos_steps: int
    converged: bool
    products: int
    seconds: dict[str, float]
    config: dict[str, Any]
    per_layer: list[LayerTop] = field(default_factory=list)
    density: Density | None = None
    vectors: torch.Tensor | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("vectors", "density")}
        d["density"] = None if self.density is None else asdict(self.density)
        return d

    def table(self) -> str:
        """A short text table for the terminal."""
        lines = [f"loss {self.loss:.4f}, |grad| {self.gradient_norm:.3g}; Hessian over "
                 f"{self.dim:,} of {self.params:,} parameters, {self.subset} examples"]  # fmt: skip
        lines.append(f"{'':>10} {'eigenvalue':>12} {'residual':>10}")
        for i, (v, r) in enumerate(zip(self.eigenvalues, self.residuals, strict=True)):
            lines.append(f"{'λ' + str(i + 1):>10} {v:12.5g} {r:10.2g}")
        if self.smallest is not None:
            lines.append(f"{'λ_min':>10} {self.smallest:12.5g} {self.smallest_residual:10.2g}")
        if self.trace is not None:
            lines.append(f"{'trace':>10} {self.trace:12.5g} ± {self.trace_stderr:.2g} (Hutchinson)")
        for layer in self.per_layer:
            lines.append(f"  {layer.name:<34} {layer.size:>9,}  λ_max {layer.eigenvalue:10.4g}")
        state = "converged" if self.converged else "NOT converged (raise --steps)"
        secs = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        lines.append(f"Lanczos {self.lanczos_steps} steps, {state}; {self.products} Hessian-vector "
                     f"products; {secs}")  # fmt: skip
        return "\n".join(lines)


def hessian_of(
    model: nn.Module,
    flat: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    task: str = "classification",
    config: HessianConfig | None = None,
    show_progress: bool = True,
) -> HessianResult:
    """Eigenpairs, trace (and per layer, density) of the exact-BN loss's Hessian at `flat`."""
    cfg = (config or HessianConfig()).check()
    layout = ParamLayout.of(model)
    mask = filter_mask(layout, cfg.ignore)
    if not bool(mask.any()):
        raise LossartError("no parameters to move: every one is 1-dimensional; pass --keep-bn")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    op = HessianOperator(model, flat, x, y, task, mask, cfg.dtype, layout)
    seconds["gradient"] = time.perf_counter() - t0
    device = op.device
    layers = _layer_masks(layout, mask) if cfg.per_layer else []
    budget = (cfg.steps + cfg.trace_samples
              + len(layers) * cfg.layer_steps
              + (cfg.density_probes * cfg.density_steps if cfg.density else 0))  # fmt: skip
    bar = progress(total=budget, desc="hessian", unit="Hv", disable=None if show_progress else True)
    try:
        tick = _Ticker(bar)
        t0 = time.perf_counter()
        k = min(cfg.k, op.dim)
        top = lanczos(op.hvp, op.n, steps=cfg.steps, k=k, tol=cfg.tol, smallest=cfg.smallest,
                      device=device, mask=op.mask, seed=cfg.seed, on_step=tick)  # fmt: skip
        bar.total -= cfg.steps - top.steps
        bar.refresh()
        seconds["eigenpairs"] = time.perf_counter() - t0
        idx = list(range(min(k, len(top.values))))
        vectors = top.vectors(idx + ([len(top.values) - 1] if cfg.smallest else []))
        trace = None
        if cfg.trace_samples:
            t0 = time.perf_counter()
            tick.base = bar.n
            trace = hutchinson_trace(op.hvp, op.n, cfg.trace_samples, device, op.mask,
                                     cfg.seed + 1, top.basis, on_sample=tick,
                                     known=float(top.values.sum()))  # fmt: skip
            seconds["trace"] = time.perf_counter() - t0
        per_layer = []
        if layers:
            t0 = time.perf_counter()
            for name, size, lmask in layers:
                tick.base = bar.n
                block = op.restricted(lmask)
                res = lanczos(block.hvp, op.n, steps=min(cfg.layer_steps, size), k=1,
                              tol=max(cfg.tol, 1e-2), device=device, mask=block.mask,
                              seed=cfg.seed, on_step=tick)  # fmt: skip
                bar.total -= min(cfg.layer_steps, size) - res.steps
                per_layer.append(LayerTop(name, size, float(res.values[0]),
                                          float(res.residuals[0])))  # fmt: skip
            seconds["per_layer"] = time.perf_counter() - t0
        density = None
        if cfg.density:
            t0 = time.perf_counter()
            tick.base = bar.n
            density = slq_density(op.hvp, op.n, cfg.density_probes, cfg.density_steps, device,
                                  op.mask, cfg.seed, on_step=_Counter(bar))  # fmt: skip
            seconds["density"] = time.perf_counter() - t0
    finally:
        bar.close()
    op.release()
    return HessianResult(
        loss=op.loss,
        gradient_norm=op.gradient_norm(),
        dim=op.dim,
        params=op.n,
        subset=int(x.shape[0]),
        eigenvalues=[float(top.values[i]) for i in idx],
        residuals=[float(top.residuals[i]) for i in idx],
        smallest=float(top.values[-1]) if cfg.smallest else None,
        smallest_residual=float(top.residuals[-1]) if cfg.smallest else None,
        trace=None if trace is None else trace.value,
        trace_stderr=None if trace is None else trace.stderr,
        lanczos_steps=top.steps,
        converged=top.converged,
        products=op.products,
        seconds={k: round(v, 3) for k, v in seconds.items()},
        config=cfg.key(),
        per_layer=per_layer,
        density=density,
        vectors=vectors.float().cpu(),
    )


class _Ticker:
    """Moves the bar to `base + i` (callbacks report a count within their own stage)."""

    def __init__(self, bar) -> None:
        self.bar, self.base = bar, 0

    def __call__(self, i: int) -> None:
        self.bar.update(self.base + i - self.bar.n)


class _Counter:
    def __init__(self, bar) -> None:
        self.bar = bar

    def __call__(self, _i: int) -> None:
        self.bar.update(1)


def _layer_masks(layout: ParamLayout, mask: torch.Tensor) -> list[tuple[str, int, torch.Tensor]]:
    """(name, size, mask) of every parameter tensor the operator acts on."""
    out, start = [], 0
    for name, size in zip(layout.names, layout.sizes, strict=True):
        m = torch.zeros_like(mask)
        m[start : start + size] = mask[start : start + size]
        if bool(m.any()):
            out.append((name, int(m.sum()), m))
        start += size
    return out


def hessian_at(
    checkpoint: str | Path,
    config: HessianConfig | None = None,
    show_progress: bool = True,
) -> HessianResult:
    """`hessian_of` at a checkpoint, on its dataset's fixed train subset (`config.subset`)."""
    cfg = (config or HessianConfig()).check()
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build_model()
    flat = ParamLayout.of(model).flatten(ckpt.state_dict).float()
    device = resolve_device(cfg.device)
    ds = load_dataset(ckpt.data)
    with cpu_threads(cfg.threads, device, ckpt.data.kind == "builtin"):
        x, y = eval_subset(ds, "train", cfg.subset, seed=cfg.subset_seed, device=device)
        return hessian_of(model, flat, x, y, ds.task, cfg, show_progress)


def axis_scale(flat: torch.Tensor, mask: torch.Tensor) -> float:
    """|w| over the moved parameters: the length of every filter-normalized random direction
    (each filter of it has its weight filter's norm), so Hessian axes of this length make a
    Hessian plane's `--span` mean the same distance as a random plane's (docs/curvature.md)."""
    return float((flat.double().cpu() * mask.double()).norm())


def plane_axes(
    result: HessianResult, flat: torch.Tensor, layout: ParamLayout, kind: str = "hessian"
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The two axes of a Hessian plane at `flat` and their description for grids and bundles.

    `kind` "hessian": eigenvectors 1 and 2; "hessian-min": eigenvector 1 against the most
    negative one. Both are scaled to `axis_scale` (so they stay orthogonal, of equal length).
    """
    if result.vectors is None:
        raise LossartError("the Hessian result holds no eigenvectors")
    k = len(result.eigenvalues)
    if kind == "hessian":
        if k < 2:
            raise LossartError("a Hessian plane needs the top 2 eigenvectors (k >= 2)")
        pick = [(0, result.eigenvalues[0], "eigenvector 1"), (1, result.eigenvalues[1], "eigenvector 2")]
    elif kind == "hessian-min":
        if result.smallest is None:
            raise LossartError("a hessian-min plane needs the smallest eigenvalue (smallest=True)")
        pick = [(0, result.eigenvalues[0], "eigenvector 1"), (k, result.smallest, "eigenvector min")]
    else:
        raise LossartError(f"directions {kind!r}: expected hessian or hessian-min")
    mask = filter_mask(layout, result.config.get("ignore", "biasbn"))
    scale = axis_scale(flat, mask)
    u, v = (result.vectors[i].to(flat.device, flat.dtype) * scale for i, _, _ in pick)
    description = {
        "kind": kind,
        "scale": scale,
        "axes": [{"name": name, "eigenvalue": float(lam)} for _, lam, name in pick],
        "trace": result.trace,
        "subset": result.subset,
    }
    return u, v, description

