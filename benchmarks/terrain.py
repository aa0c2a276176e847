"""Benchmark: building the terrain bundle (heights + .npy + 16-bit PNG + manifest).

Two cases from issue 5: 600 frames of 300x300 (a video) and one 1000x1000 frame (a still), on
synthetic loss grids held in memory (the grid engine's cost is not part of this). Each case is
compared with a reference measured in the same run on the same arrays: `np.save` of the raw
float32 loss grids to the same disk, the least any bundle writer must do.

    .venv/bin/python benchmarks/terrain.py [--frames 600] [--size 300] [--still 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LOSSART_QUIET", "1")

from lossart.terrain.bundle_write import BundleFrame, BundleSpec, NamedPoint, write_bundle  # noqa: E402
from lossart.terrain.heightfield import (  # noqa: E402
    HeightMapping,
    TerrainConfig,
    resolve_loss_cap,
    resolve_loss_min,
    stream_heights,
)

X_RANGE, Y_RANGE = (-2.0, 12.0), (-5.0, 7.0)


def synthetic_losses(frames: int, size: int) -> list[np.ndarray]:
    """Cheap analytic loss grids: a valley along a moving quadratic curve between two wells."""
    x = np.linspace(*X_RANGE, size, dtype=np.float32)[None, :]
    y = np.linspace(*Y_RANGE, size, dtype=np.float32)[:, None]
    out = []
    for i in range(frames):
        bend = 4.0 * (1 - i / max(frames - 1, 1)) + 1.0
        centre = bend * (x / 10.0) * (1 - x / 10.0) * 2.0
        valley = 1 - np.exp(-((y - centre) ** 2) / 1.5)
        ends = 1 - np.exp(-np.minimum(x**2 + y**2, (x - 10) ** 2 + y**2) / 8.0)
        loss = 0.01 + 2.3 * valley + 0.3 * ends + 0.05 * np.sin(3 * x + i * 0.05) * np.cos(2 * y)
        out.append(np.abs(loss).astype(np.float32))
    return out


def build(losses: list[np.ndarray], root: Path, config: TerrainConfig) -> float:
    """Seconds to write the bundle of these grids (cap, heights, npy, png, manifest)."""
    t0 = time.perf_counter()
    cap = resolve_loss_cap(losses, config)
    mapping = HeightMapping.resolve(config, cap, resolve_loss_min(losses, config, cap))
    cp = np.array([[0.0, 0.0], [5.0, 3.0], [10.0, 0.0]])

    def frames():
        load = losses.__getitem__
        for i, z, nonfinite in stream_heights(load, len(losses), config, cap, mapping.loss_min):
            yield BundleFrame(
                i,
                10 * i,
                0.1 * i,
                1.0,
                z,
                nonfinite,
                cp,
                [NamedPoint("w1", (0.0, 0.0), 0.01), NamedPoint("w2", (10.0, 0.0), 0.01)],
            )

    spec = BundleSpec(
        "curve", {"kind": "bezier", "bends": 1}, X_RANGE, Y_RANGE, losses[0].shape, config, cap,
        loss_min=mapping.loss_min, offset=mapping.offset,
    )
    write_bundle(root, spec, frames(), total=len(losses))
    return time.perf_counter() - t0


def heights_only(losses: list[np.ndarray], config: TerrainConfig) -> float:
    """Seconds for the math alone (cap, log, smoothing), no files: splits the bundle's time."""
    t0 = time.perf_counter()
    cap = resolve_loss_cap(losses, config)
    lowest = resolve_loss_min(losses, config, cap)
    for _ in stream_heights(losses.__getitem__, len(losses), config, cap, lowest):
        pass
    return time.perf_counter() - t0


def raw_save(losses: list[np.ndarray], root: Path) -> float:
    """Seconds to np.save the same float32 grids (the reference)."""
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, loss in enumerate(losses):
        np.save(root / f"frame_{i:05d}.npy", loss)
    return time.perf_counter() - t0


def case(name: str, frames: int, size: int, config: TerrainConfig, tmp: Path) -> None:
    losses = synthetic_losses(frames, size)
    ref = raw_save(losses, tmp / f"{name}-raw")
    math_s = heights_only(losses, config)
    secs = build(losses, tmp / f"{name}-bundle", config)
    mb = sum(p.stat().st_size for p in (tmp / f"{name}-bundle").rglob("*") if p.is_file()) / 1e6
    print(
        f"{name:<28} {frames:>4} x {size}x{size}  bundle {secs:7.2f} s  "
        f"({secs / frames * 1e3:6.1f} ms/frame, {mb:6.1f} MB; math alone {math_s:6.2f} s)  "
        f"raw np.save {ref:6.2f} s  "
        f"ratio {secs / ref:5.1f}x"
    )
    shutil.rmtree(tmp / f"{name}-raw")
    shutil.rmtree(tmp / f"{name}-bundle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--still", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"numpy {np.__version__}, {os.cpu_count()} CPU(s) visible; "
        "defaults: sigma 1, cap quantile 0.99"
    )
    with tempfile.TemporaryDirectory(prefix="lossart-bench-") as d:
        tmp = Path(d)
        case("video", args.frames, args.size, TerrainConfig(), tmp)
        case("video, frame_sigma 2", args.frames, args.size, TerrainConfig(frame_sigma=2.0), tmp)
        case("still", 1, args.still, TerrainConfig(), tmp)
        case("still, upsample 2", 1, args.still // 2, TerrainConfig(upsample=2), tmp)


if __name__ == "__main__":
    main()
