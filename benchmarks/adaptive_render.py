"""An adaptive grid and its fully evaluated twin rendered alike: how far apart the pictures are.

    python benchmarks/adaptive_render.py --run RUN --frame I [--tol 0.01] [--normal-deg 1]
                                         [--criterion picture|log10] [--out DIR]
                                         [--size 1280x720] [--samples 32] [--style classic]

RUN holds the full grid of frame I (`lossart grid RUN --select-frames I --resolution 201x113`).
The adaptive plan is driven at that lattice with the truth's values at the plan's points (a
grid value is a deterministic function of the point, so that equals evaluating them; see
benchmarks/adaptive.py). Two run folders under DIR get the frame's grid, one the full field and
one the adaptive field (the same npz but for `loss`, `accuracy` and `evaluated`); each gets
`lossart terrain` and `lossart render --still` with the same look (by default the issue's: the
classic style, no haze or depth of field, 1280x720), the same samples and seed. Both
bundles are built with the full grid's loss cap (the lowest loss is each field's own: the
adaptive field's is evaluated or interpolated, so the two agree to its error).

Printed: the plan's points and the height-space errors (as benchmarks/adaptive.py), then the
pictures' difference: SSIM on luminance (Gaussian window sigma 1.5, K1 0.01, K2 0.03, the usual
constants) and the mean absolute difference. Last lines: `adaptive/points_saved`,
`adaptive/max_height_share`, `adaptive/p99_normal_deg`, `adaptive/render_ssim`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from adaptive import read_grid  # noqa: E402

from lossart.grid.adaptive import AdaptivePlan, PictureTolerance, refine  # noqa: E402
from lossart.terrain.fidelity import picture_errors  # noqa: E402
from lossart.terrain.heightfield import TerrainConfig, resolve_loss_cap  # noqa: E402


def luminance(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    rgb = iio.imread(path)[..., :3].astype(np.float64)
    return rgb @ np.array([0.2126, 0.7152, 0.0722])


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5, peak: float = 255.0) -> float:
    """Mean structural similarity of two greyscale pictures (Wang et al. 2004, Gaussian window)."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = gaussian_filter(a, sigma), gaussian_filter(b, sigma)
    var_a = gaussian_filter(a * a, sigma) - mu_a**2
    var_b = gaussian_filter(b * b, sigma) - mu_b**2
    cov = gaussian_filter(a * b, sigma) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def twin_run(run: Path, out: Path, index: int, values: dict[str, np.ndarray]) -> Path:
    """A run folder at `out` sharing RUN's model, curve and grid.json (hard links where the
    file system allows), with frame `index`'s grid only, its arrays replaced by `values`."""
    if out.exists():
        shutil.rmtree(out)
    (out / "grids").mkdir(parents=True)
    for name in ("run.json", "curve", "endpoints"):
        src = run / name
        if src.is_dir():
            shutil.copytree(src, out / name, copy_function=_link)
        elif src.is_file():
            _link(src, out / name)
    shutil.copyfile(run / "grids" / "grid.json", out / "grids" / "grid.json")
    name = f"frame_{index:05d}.npz"
    with np.load(run / "grids" / name) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(values)
    np.savez(out / "grids" / name, **arrays)
    return out


def _link(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def lossart(*args: str) -> None:
    cmd = [sys.executable, "-m", "lossart", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "LOSSART_QUIET": "1"})
    if proc.returncode:
        sys.exit(f"benchmarks/adaptive_render.py: {' '.join(args[:2])} failed:\n"
                 f"{proc.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a run folder with a full grid")
    parser.add_argument("--frame", type=int, required=True, help="frame index")
    parser.add_argument("--tol", type=float, default=0.01,
                        help="tolerance: a share of the relief (picture) or log10 loss (log10)")
    parser.add_argument("--criterion", choices=["picture", "log10"], default="picture")
    parser.add_argument("--normal-deg", type=float, default=1.0, help="picture: the normals' bound")
    parser.add_argument("--out", type=Path, default=Path("adaptive-render"),
                        help="where the two run folders and renders go")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--style", default="classic")
    args = parser.parse_args()

    truth, xs, ys = read_grid(args.run, args.frame)
    h, w = truth.shape
    picture = None
    if args.criterion == "picture":
        aspect = float((xs[-1] - xs[0]) / (ys[-1] - ys[0]))
        picture = PictureTolerance(args.tol, args.normal_deg, aspect)
    plan = AdaptivePlan(w, h, args.tol, picture=picture)
    field, evaluated, stats = refine(lambda cols, rows: truth[rows, cols], plan)
    with np.load(args.run / "grids" / f"frame_{args.frame:05d}.npz") as z:
        accuracy = plan.fill(z["accuracy"].astype(np.float64), evaluated) if "accuracy" in z.files else None
    cap = resolve_loss_cap([truth], TerrainConfig())
    share, p99 = picture_errors(field, truth, cap, xs, ys)
    print(f"frame {args.frame}: {w}x{h} = {w * h} points; adaptive ({args.criterion}, tol "
          f"{args.tol}) evaluates {stats.points} ({stats.saved:.1f}x fewer), per level "
          f"{stats.per_level}; max height error {100 * share:.2f}% of the relief, normals p99 "
          f"{p99:.2f} deg")

    pictures = {}
    for name, values in (
        ("full", {}),
        ("adaptive", {"loss": field.astype(np.float32), "evaluated": evaluated,
                      **({"accuracy": accuracy.astype(np.float32)} if accuracy is not None else {})}),
    ):
        t0 = time.perf_counter()
        twin = twin_run(args.run, args.out / name, args.frame, values)
        lossart("terrain", str(twin), "--loss-cap", repr(cap), "--select-frames",
                f"{args.frame}:{args.frame + 1}")
        png = args.out / f"{name}.png"
        lossart("render", str(twin), "--still", "--out", str(png), "--style", args.style,
                "--size", args.size, "--samples", str(args.samples))
        pictures[name] = luminance(png)
        print(f"{name}: {png} ({time.perf_counter() - t0:.0f} s)")
    a, b = pictures["adaptive"], pictures["full"]
    similarity = ssim(a, b)
    print(f"pictures: SSIM {similarity:.4f}, mean |difference| {np.abs(a - b).mean():.2f}/255")
    print(f"adaptive/points_saved {w * h / stats.points:.2f}")
    print(f"adaptive/max_height_share {share:.5f}")
    print(f"adaptive/p99_normal_deg {p99:.3f}")
    print(f"adaptive/render_ssim {similarity:.4f}")


if __name__ == "__main__":
    main()
