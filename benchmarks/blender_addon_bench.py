"""Add-on and render costs: import of a 1000x1000 grid, per-frame height updates, render time
per frame, baked size per frame. Ratios are against references measured in the same run.

    .venv/bin/python benchmarks/blender_addon_bench.py [--big 1000] [--frames 10]

Needs the bpy module. Prints a small table; writes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LOSSART_QUIET", "1")


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, default=1000, help="grid size for the import benchmark")
    ap.add_argument("--frames", type=int, default=10, help="frames of the 300x300 bundle")
    args = ap.parse_args()

    import bpy

    import lossart.addon
    from lossart.addon import landscape, output, surface
    from lossart.addon.bake import bake_landscape
    from lossart.addon.world import WorldMap
    from lossart.terrain.synthetic import synthetic_bundle

    tmp = Path(tempfile.mkdtemp(prefix="lossart-bench-"))
    t = time.perf_counter()
    big = synthetic_bundle(tmp / "big", frames=1, size=args.big)
    print(f"synthetic {args.big}x{args.big} bundle written in {time.perf_counter() - t:.1f} s")
    mid = synthetic_bundle(tmp / "mid", frames=args.frames, size=300)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    lossart.addon.register()
    scene = bpy.context.scene

    t_import = timed(lambda: landscape.import_landscape(scene, big))
    s = scene.lossart
    b = landscape.get_bundle(s.bundle_path)
    wmap = WorldMap.for_bundle(b)
    heights = b.heights(0)
    t_update = timed(lambda: surface.set_heights(s.terrain, heights, wmap, 1.0), repeat=3)
    # reference: the same z written vertex by vertex from Python (first 100k vertices, scaled)
    verts = s.terrain.data.vertices
    z = wmap.world_z(heights.reshape(-1), 1.0)
    k = 100_000

    def per_vertex():
        for i in range(k):
            verts[i].co.z = float(z[i])

    t_ref = timed(per_vertex) * (len(z) / k)
    print(f"import {args.big}x{args.big} ({len(verts):,} vertices): {t_import:.2f} s")
    print(
        f"height update, bulk foreach_set: {t_update * 1e3:.1f} ms; "
        f"per-vertex Python (extrapolated): "
        f"{t_ref:.2f} s; ratio {t_ref / t_update:.0f}x"
    )

    # reference: Blender's default scene (cube, light, camera) at the same settings, same run
    lossart.addon.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=False)
    ref_scene = bpy.context.scene
    ref_times = {}
    for size, samples in (((96, 64), 8), ((480, 270), 16)):
        output.configure(ref_scene, samples=samples, size=size, denoise=True, device="auto")
        output.render_picture(ref_scene, tmp / "ref.png", frame=1)
        ref_times[size] = timed(lambda: output.render_picture(ref_scene, tmp / "ref.png"), repeat=2)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    lossart.addon.register()
    scene = bpy.context.scene

    landscape.import_landscape(scene, mid)
    n = scene.frame_end - scene.frame_start + 1
    t = time.perf_counter()
    for f in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(f)  # first pass: heights read from the bundle's .npy files
    t_cold = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for f in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(f)  # second pass: from the cache
    t_warm = (time.perf_counter() - t) / n
    print(
        f"scrub 300x300: {t_cold * 1e3:.1f} ms/frame first time, {t_warm * 1e3:.1f} ms/frame cached"
    )
    for size, samples in (((96, 64), 8), ((480, 270), 16)):
        output.configure(scene, samples=samples, size=size, denoise=True, device="auto")
        out = tmp / "r.png"
        output.render_picture(scene, out, frame=1)  # warm-up (kernel load, BVH)
        t = timed(lambda out=out: output.render_picture(scene, out, frame=2), repeat=2)
        print(
            f"render 300x300 terrain at {size[0]}x{size[1]}, {samples} samples, "
            f"{scene.cycles.device}: {t:.2f} s/frame; default cube scene {ref_times[size]:.2f} s "
            f"(ratio {t / ref_times[size]:.1f}x)"
        )

    blend = tmp / "baked.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    plain = blend.stat().st_size
    t = time.perf_counter()
    info = bake_landscape(scene)
    t_bake = time.perf_counter() - t
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    baked = blend.stat().st_size
    per = (baked - plain + info.image_bytes) / info.frames
    print(
        f"bake {info.frames} frames of 300x300: {t_bake:.2f} s "
        f"({t_bake / info.frames * 1e3:.0f} ms/frame); "
        f".blend {plain / 1e6:.2f} -> {baked / 1e6:.2f} MB, "
        f"height PNGs {info.image_bytes / 1e6:.2f} MB; "
        f"{per / 1e3:.0f} kB per frame in all (600 frames: {per * 600 / 1e6:.0f} MB)"
    )
    lossart.addon.unregister()


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
