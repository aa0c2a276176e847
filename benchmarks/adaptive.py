"""Adaptive refinement on real loss grids: points against error, beside a uniform coarse grid.

    python benchmarks/adaptive.py --run RUN [--frame i ...] [--tol 0.01] [--prior]
                                  [--coarse-step S] [--dilate D] [--interpolation cubic|linear]
                                  [--evaluate [--device cpu|cuda]]

For each frame it reads the full grid `RUN/grids/frame_XXXXX.npz` (arrays loss, xs, ys): the
truth. It then compares, in the same run,

- the adaptive grid (`lossart.grid.adaptive`): the plan asks for points level by level and gets
  the truth's values there. That equals evaluating them, since a grid value is a deterministic
  function of the point (same weights bit for bit, same subset, same pass);
  `--evaluate` does evaluate them through the grid engine instead, and reports how far those
  values are from the stored grid (zero, or float32 rounding where the stored grid was compiled
  or run with another thread count), and the engine's points/s;
- the uniform grid with at least as many points (every k-th point, k the largest step that
  keeps as many), upsampled bicubically: `lossart.terrain.heightfield.upsample` (what `lossart
  terrain --upsample k` does) where k divides both sides, else scipy's cubic
  RegularGridInterpolator on the same nodes;
- the adaptive grid at equal points ("adaptive="): the plan at the largest tolerance whose
  points do not exceed the uniform grid's (bisected, truth sampled).

Errors are in log10 loss (floored at 1e-4, the terrain's floor), and in terrain heights: log
transform with one loss cap (the truth's, so the three differ only by their fields) and the
default Gaussian smoothing (`TerrainConfig()`), via `lossart.terrain.heightfield.frame_heights`.
`--prior` seeds each frame's plan with the previous frame's evaluated points.

The last five lines are `adaptive/points_saved X` (full points / adaptive points over all
frames), `adaptive/max_log10 Y` (worst adaptive error of log10 loss over all frames) and
`adaptive/vs_uniform_max Z` (worst frame's max error of the adaptive grid at equal points /
the uniform grid's; below 1: adaptive is better with as many points), then what the picture
shows (the default mapping and smoothing at the default relief): `adaptive/max_height_share`
(the largest height error as a share of the relief) and `adaptive/p99_normal_deg` (the 99th
percentile of the angle between the adaptive and the full surface's normals, degrees).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lossart.grid.adaptive import AdaptivePlan, axis_nodes, log_loss, refine  # noqa: E402
from lossart.terrain.heightfield import (  # noqa: E402
    TerrainConfig,
    frame_heights,
    resolve_loss_cap,
    upsample,
)


def read_grid(run: Path, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = run / "grids" / f"frame_{index:05d}.npz"
    if not path.is_file():
        sys.exit(f"benchmarks/adaptive.py: {path} not found (run `lossart grid {run}` first)")
    with np.load(path) as z:
        return z["loss"].astype(np.float64), z["xs"], z["ys"]


def frames_of(run: Path) -> list[int]:
    names = sorted((run / "grids").glob("frame_*.npz"))
    return [int(p.stem.split("_")[1]) for p in names]


def uniform_field(truth_log: np.ndarray, points: int) -> tuple[np.ndarray, int, int]:
    """(upsampled field, points used, step k): the coarsest uniform grid with >= `points`."""
    h, w = truth_log.shape

    def count(k: int) -> int:
        return len(axis_nodes(w, k)) * len(axis_nodes(h, k))

    k = 1
    while k + 1 < max(w, h) and count(k + 1) >= points:
        k += 1
    ny, nx = axis_nodes(h, k), axis_nodes(w, k)
    coarse = truth_log[np.ix_(ny, nx)]
    if (w - 1) % k == 0 and (h - 1) % k == 0:
        return upsample(coarse, k).astype(np.float64), count(k), k
    from scipy.interpolate import RegularGridInterpolator

    interp = RegularGridInterpolator((ny, nx), coarse, method="cubic")
    gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = interp(np.stack([gy.ravel(), gx.ravel()], axis=1)).reshape(h, w)
    return out, count(k), k


def matched_tol(make_plan, evaluate, points: int, tol: float):
    """(tol, field, stats) at the smallest tolerance (within 2%) whose plan asks for at most
    `points` points; `tol` itself must fit."""
    field, _, stats = refine(evaluate, make_plan(tol))
    best = (tol, field, stats)
    lo = tol
    for _ in range(30):  # halve until the plan no longer fits
        lo /= 2
        field, _, stats = refine(evaluate, make_plan(lo))
        if stats.points > points:
            break
        best = (lo, field, stats)
    else:
        return best
    hi = best[0]
    while hi / lo > 1.02:
        mid = (lo * hi) ** 0.5
        field, _, stats = refine(evaluate, make_plan(mid))
        if stats.points <= points:
            hi, best = mid, (mid, field, stats)
        else:
            lo = mid
    return best


def errors(field_log: np.ndarray, truth_log: np.ndarray) -> tuple[float, float]:
    d = field_log - truth_log
    d = d[np.isfinite(d)]
    return float(np.sqrt(np.mean(d**2))), float(np.abs(d).max())


def height_errors(loss: np.ndarray, truth_loss: np.ndarray, cap: float) -> tuple[float, float]:
    config = TerrainConfig()  # the default mapping (log10-excess) is relative to the lowest loss
    low = float(np.nanmin(truth_loss))
    z, _ = frame_heights(loss, config, cap, low)
    zt, _ = frame_heights(truth_loss, config, cap, low)
    return errors(z.astype(np.float64), zt.astype(np.float64))


def picture_errors(
    loss: np.ndarray, truth_loss: np.ndarray, cap: float, xs: np.ndarray, ys: np.ndarray
) -> tuple[float, float]:
    """What the picture shows: (largest height error as a share of the relief, 99th percentile
    of the angle in degrees between the surfaces' normals), with the terrain's default
    mapping and smoothing drawn at the default relief (the window's longer side 10 units wide,
    the full height range rising `relief` of its width, as the add-on's WorldMap draws it)."""
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
    return share, float(np.nanpercentile(angle, 99))


class RealEvaluator:
    """`--evaluate`: the plan's points through the grid engine, with grid.json's settings."""

    def __init__(self, run: Path, device: str) -> None:
        import torch

        from lossart.data import load_dataset
        from lossart.data.batches import eval_subset
        from lossart.geometry.weights import ParamLayout
        from lossart.grid.engine import EngineConfig, GridEngine
        from lossart.grid.planes import grid_source
        from lossart.runs import open_run

        self.spec = json.loads((run / "grids" / "grid.json").read_text())
        self.source = grid_source(open_run(run))
        ds = load_dataset(self.source.data_spec)
        x, y = eval_subset(ds, self.spec["split"], self.spec["subset"], seed=0, device=device)
        model = self.source.model
        config = EngineConfig(device=device, dtype=self.spec["dtype"])
        self.engine = GridEngine(model, ParamLayout.of(model), x, y, ds.task, config)
        if self.spec.get("compile"):
            self.engine.plan_compile(force=True)
        self.seconds = 0.0
        self.points = 0
        torch.set_grad_enabled(False)

    def for_frame(self, index: int, xs: np.ndarray, ys: np.ndarray):
        plane = self.source.plane(index)
        self.engine.set_plane(plane.origin, plane.u_hat, plane.v_hat)

        def evaluate(cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
            t0 = time.perf_counter()
            loss = self.engine.evaluate(xs[cols], ys[rows]).loss
            self.seconds += time.perf_counter() - t0
            self.points += len(cols)
            return loss

        return evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a run folder with full grids")
    parser.add_argument("--frame", type=int, action="append", help="frame index (repeatable)")
    parser.add_argument("--tol", type=float, default=0.01, help="tolerance in log10 loss")
    parser.add_argument("--coarse-step", type=int, default=None)
    parser.add_argument("--dilate", type=int, default=1)
    parser.add_argument("--surplus-ratio", type=float, default=2.0)
    parser.add_argument("--interpolation", default="cubic", choices=["spline", "cubic", "linear"])
    parser.add_argument("--prior", action="store_true", help="seed with the previous frame")
    parser.add_argument("--evaluate", action="store_true", help="evaluate through the engine")
    parser.add_argument("--device", default="cpu", help="with --evaluate: cpu or cuda[:i]")
    args = parser.parse_args()
    os.environ.setdefault("LOSSART_QUIET", "1")
    frames = args.frame or frames_of(args.run)
    if not frames:
        sys.exit(f"benchmarks/adaptive.py: no frame grids under {args.run / 'grids'}")
    real = RealEvaluator(args.run, args.device) if args.evaluate else None
    print(
        f"run {args.run}; frames {frames}; tol {args.tol} (log10 loss); "
        f"{'evaluated through the engine' if real else 'truth sampled at the plan points'}"
    )
    total_full = total_adaptive = 0
    worst_max = worst_ratio = worst_share = worst_p99 = 0.0
    prior = None
    for index in frames:
        truth, xs, ys = read_grid(args.run, index)
        h, w = truth.shape
        truth_log = log_loss(truth)

        def make_plan(tol: float, w=w, h=h) -> AdaptivePlan:
            return AdaptivePlan(
                w,
                h,
                tol,
                args.coarse_step,
                dilate=args.dilate,
                surplus_ratio=args.surplus_ratio,
                interpolation=args.interpolation,
            )

        plan = make_plan(args.tol)

        def lookup(cols, rows, truth=truth):
            return truth[rows, cols]

        evaluate = real.for_frame(index, xs, ys) if real is not None else lookup

        t0 = time.perf_counter()
        field, evaluated, stats = refine(evaluate, plan, prior=prior if args.prior else None)
        wall = time.perf_counter() - t0
        prior = evaluated
        if real is not None:
            d = np.abs(log_loss(field[evaluated]) - truth_log[evaluated])
            print(
                f"frame {index}: engine vs stored grid at evaluated points: max |Δlog10| {d.max():.2e}"
            )
        a_rms, a_max = errors(log_loss(field), truth_log)
        uni, u_points, k = uniform_field(truth_log, stats.points)
        u_rms, u_max = errors(uni, truth_log)
        # Equal points: the adaptive plan at the tolerance that fits the uniform grid's count.
        m_tol, m_field, m_stats = matched_tol(make_plan, lookup, u_points, args.tol)
        m_rms, m_max = errors(log_loss(m_field), truth_log)
        cap = resolve_loss_cap([truth], TerrainConfig())
        ha_rms, ha_max = height_errors(field, truth, cap)
        hu_rms, hu_max = height_errors(10.0**uni, truth, cap)
        hm_rms, hm_max = height_errors(m_field, truth, cap)
        share, p99 = picture_errors(field, truth, cap, xs, ys)
        u_share, u_p99 = picture_errors(10.0**uni, truth, cap, xs, ys)
        print(
            f"frame {index}: {w}x{h} = {w * h} points; plan {plan.levels} levels, "
            f"coarse step {plan.coarse_step}; {wall:.2f} s"
        )
        print(f"  {'':10s} {'points':>7s} {'saved':>7s} {'rms log10':>10s} {'max log10':>10s} "
              f"{'rms height':>11s} {'max height':>11s}")  # fmt: skip
        print(
            f"  {'adaptive':10s} {stats.points:7d} {stats.saved:6.1f}x {a_rms:10.5f} {a_max:10.4f} "
            f"{ha_rms:11.5f} {ha_max:11.4f}   per level {stats.per_level}"
        )
        print(
            f"  {'adaptive=':10s} {m_stats.points:7d} {m_stats.saved:6.1f}x {m_rms:10.5f} "
            f"{m_max:10.4f} {hm_rms:11.5f} {hm_max:11.4f}   tol {m_tol:.4f}: as many points "
            "as uniform"
        )
        print(
            f"  {'uniform':10s} {u_points:7d} {w * h / u_points:6.1f}x {u_rms:10.5f} {u_max:10.4f} "
            f"{hu_rms:11.5f} {hu_max:11.4f}   every {k} points, bicubic"
        )
        print(
            f"  picture (default relief): adaptive max height {100 * share:.2f}% of relief, "
            f"normals p99 {p99:.2f} deg; uniform {100 * u_share:.2f}%, {u_p99:.2f} deg"
        )
        worst_share, worst_p99 = max(worst_share, share), max(worst_p99, p99)
        total_full += w * h
        total_adaptive += stats.points
        worst_max = max(worst_max, a_max)
        worst_ratio = max(worst_ratio, m_max / u_max if u_max > 0 else float("inf"))
    if real is not None and real.seconds > 0:
        rate = real.points / real.seconds
        print(f"engine: {real.points} points in {real.seconds:.1f} s, {rate:.2f} points/s "
              f"[{real.engine.describe()}]")  # fmt: skip
    print(f"adaptive/points_saved {total_full / total_adaptive:.2f}")
    print(f"adaptive/max_log10 {worst_max:.4f}")
    print(f"adaptive/vs_uniform_max {worst_ratio:.3f}")
    print(f"adaptive/max_height_share {worst_share:.5f}")
    print(f"adaptive/p99_normal_deg {worst_p99:.3f}")


if __name__ == "__main__":
    main()
