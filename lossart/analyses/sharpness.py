"""Sharpness along the curve and the segment (`lossart eval-curve --sharpness`): is the tunnel flat?

At evenly spaced t on both paths of a curve run, the top eigenvalue of the training loss's
Hessian (lossart.curvature: Lanczos on exact-BN Hessian-vector products over a fixed train
subset, over the parameters random planes move). Endpoints are shared by both paths and computed
once. Writes RUN/analyses/sharpness.{json,png}: one figure, the loss on that subset and λ_max
against t for both paths.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lossart.analyses.sampling import PathSampling
from lossart.atomic import atomic_path, write_json
from lossart.curvature import HessianConfig, hessian_of
from lossart.data import eval_subset, load_dataset
from lossart.devices import cpu_threads, resolve_device
from lossart.geometry.curves import curve_points, segment_points
from lossart.progress import progress
from lossart.runs import Run, now_iso, open_run
from lossart.training.curve_run import load_curve_run


@dataclass(frozen=True)
class SharpPoint:
    t: float
    loss: float  # on the Hessian's subset (exact BN)
    top: float  # λ_max
    residual: float
    steps: int


@dataclass
class Sharpness:
    """Both paths' top eigenvalues at the same t, and where they were written."""

    curve: list[SharpPoint]
    segment: list[SharpPoint]
    subset: int
    seconds: float
    files: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"{'t':>5}  {'curve λ_max':>12} {'loss':>8}   {'segment λ_max':>13} {'loss':>8}"]
        for c, s in zip(self.curve, self.segment, strict=True):
            lines.append(f"{c.t:5.2f}  {c.top:12.4g} {c.loss:8.4f}   {s.top:13.4g} {s.loss:8.4f}")
        mid = max(self.curve, key=lambda p: p.top)
        lines.append(f"sharpest on the curve: λ_max {mid.top:.4g} at t = {mid.t:.2f}; on the "
                     f"segment: {max(p.top for p in self.segment):.4g} "
                     f"({self.subset} examples, {self.seconds:.0f} s)")  # fmt: skip
        return "\n".join(lines)


def sharpness_along(
    run: Run | str | Path,
    points: int = 5,
    config: HessianConfig | None = None,
    show_progress: bool = True,
) -> Sharpness:
    """λ_max at `points` evenly spaced t on both paths of a finished curve run (no files)."""
    PathSampling(points=points)
    cfg = dataclasses.replace(config or HessianConfig(), k=1, trace_samples=0, smallest=False,
                              per_layer=False, density=False).check()  # fmt: skip
    run = run if isinstance(run, Run) else open_run(run)
    cr = load_curve_run(run)
    device = resolve_device(cfg.device)
    ds = load_dataset(cr.data_spec)
    model = cr.build_model()
    started = time.perf_counter()
    out: dict[str, list[SharpPoint]] = {"curve": [], "segment": []}
    cache: dict[float, SharpPoint] = {}
    with cpu_threads(cfg.threads, device, cr.data_spec.kind == "builtin"):
        x, y = eval_subset(ds, "train", cfg.subset, seed=cfg.subset_seed, device=device)
        w1, w2 = cr.w1.to(device), cr.w2.to(device)
        ts = torch.linspace(0, 1, points, dtype=torch.float64)
        paths = {
            "curve": curve_points(cr.spec, w1, cr.final_bends.to(device), w2, ts),
            "segment": segment_points(w1, w2, ts),
        }
        bar = progress(total=2 * points - 2, desc="sharpness", unit="pt",
                       disable=None if show_progress else True)  # fmt: skip
        try:
            for name, ws in paths.items():
                for t, w in zip(ts.tolist(), ws, strict=True):
                    if t in cache:  # an endpoint: the same weights on both paths
                        out[name].append(cache[t])
                        continue
                    res = hessian_of(model, w.float(), x, y, ds.task, cfg, show_progress=False)
                    point = SharpPoint(t, res.loss, res.eigenvalues[0], res.residuals[0],
                                       res.lanczos_steps)  # fmt: skip
                    if t in (0.0, 1.0):
                        cache[t] = point
                    out[name].append(point)
                    bar.update(1)
        finally:
            bar.close()
    return Sharpness(out["curve"], out["segment"], int(x.shape[0]),
                     time.perf_counter() - started)  # fmt: skip


def sharpness_run(
    run: Run | str | Path, points: int = 5, config: HessianConfig | None = None
) -> Sharpness:
    """`sharpness_along` and RUN/analyses/sharpness.{json,png}."""
    run = run if isinstance(run, Run) else open_run(run)
    cfg = config or HessianConfig()
    result = sharpness_along(run, points, cfg)
    folder = run.analyses
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / "sharpness.json", "png": folder / "sharpness.png"}
    write_json(files["json"], {
        "created": now_iso(),
        "points": points,
        "subset": result.subset,
        "hessian": dataclasses.replace(cfg, k=1, trace_samples=0).key(),
        "seconds": result.seconds,
        "paths": {"curve": [asdict(p) for p in result.curve],
                  "segment": [asdict(p) for p in result.segment]},
    })  # fmt: skip
    plot_sharpness(result, files["png"], title=f"{run.root.name}: sharpness along the paths")
    result.files = {k: str(v) for k, v in files.items()}
    run.record_command("eval-curve")
    return result


def plot_sharpness(result: Sharpness, path: Path, title: str = "") -> None:
    """One figure: loss (left) and top Hessian eigenvalue (right) against t, both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, pts, colour in (("curve", result.curve, "tab:blue"),
                              ("segment", result.segment, "tab:red")):  # fmt: skip
        ts = [p.t for p in pts]
        axes[0].plot(ts, [p.loss for p in pts], "-o", color=colour, ms=4, label=name)
        axes[1].plot(ts, [p.top for p in pts], "-o", color=colour, ms=4, label=name)
    axes[0].set(xlabel="t", ylabel="train loss", title=f"loss ({result.subset} examples, exact BN)")
    axes[1].set(xlabel="t", ylabel="top Hessian eigenvalue λ_max", title="sharpness along the path")
    tops = [p.top for p in result.curve + result.segment]
    if min(tops) > 0 and max(tops) / min(tops) > 20:
        axes[1].set_yscale("log")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
