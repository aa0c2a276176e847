"""Does a highlight wash the palette out? The share of the terrain's pixels near white.

    python benchmarks/highlights.py BUNDLE|RUN [BUNDLE|RUN ...] [--style hero] [--camera overview]
                                   [--size 960x540] [--samples 16] [--frame I ...] [--out DIR]

Each bundle's frames (default: the last) is rendered through the add-on (the bpy module, in this
process) in the style and camera asked for, with the path, markers and bends hidden from every
ray (their glow and its light on the ground excluded) and a transparent film, so the alpha says
which pixels are terrain. Each frame is seen from where the camera preset has the camera when it
shows (`--camera orbit`: the video's move). Printed per frame: the terrain's share of the
picture (issue 22: at least 0.9 in every frame) and the share of its pixels whose every
channel is at least 85% of full scale (`lossart.render.highlights.near_white_share`; issue 22:
under 0.01); the last lines are the worst, `look/terrain_coverage_min X` and
`look/near_white_share Y`. The terrain-only renders go to DIR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lossart.render.highlights import NEAR_WHITE, near_white_share  # noqa: E402


def terrain_only(bundle: Path, look, frames: list[int] | None, out: Path) -> list:
    """Render the bundle's frames (default: the last) with only the terrain visible, each
    where the look's camera is when that frame shows; their RGBA pictures."""
    import bpy
    import imageio.v3 as iio

    from lossart.addon import register
    from lossart.addon.landscape import hide_marks, import_landscape, refresh
    from lossart.addon.output import apply_look, render_picture

    bpy.ops.wm.read_factory_settings(use_empty=True)
    register()
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = look.size
    loaded = import_landscape(scene, bundle, look)
    apply_look(scene, look)
    refresh(scene)
    timeline = look.timeline(len(loaded.frames))
    pictures = []
    for index in frames or [len(loaded.frames) - 1]:
        scene.frame_set(timeline.scene_frame(index))
        hide_marks(scene)
        png = out.with_name(f"{out.stem}-frame{index}.png")
        render_picture(scene, png)
        pictures.append((index, iio.imread(png)))
    return pictures


def main() -> None:
    from lossart.format.look import Look

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", type=Path, help="bundle folders or run folders")
    parser.add_argument("--style", default="hero")
    parser.add_argument("--camera", default="overview", help="camera preset")
    parser.add_argument("--size", default="960x540")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--frame", type=int, action="append",
                        help="bundle frame (repeatable; default: the last)")
    parser.add_argument("--out", type=Path, default=Path("highlights"))
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    look = Look(style=args.style, camera_preset=args.camera, size=size,
                samples=args.samples, transparent=True).validate()
    args.out.mkdir(parents=True, exist_ok=True)
    worst, least = 0.0, 1.0
    for k, given in enumerate(args.bundles):
        bundle = given / "terrain" if (given / "terrain" / "manifest.json").is_file() else given
        for index, rgba in terrain_only(bundle, look, args.frame, args.out / f"terrain-only-{k}.png"):
            share = near_white_share(rgba)
            worst = max(worst, share)
            cover = (rgba[..., 3] > 127).mean()
            least = min(least, cover)
            print(f"{given} frame {index}: terrain {100 * cover:.1f}% of the picture; near white "
                  f"(every channel >= {NEAR_WHITE:.0%}) {100 * share:.3f}% of it")
    print(f"look/terrain_coverage_min {least:.4f}")
    print(f"look/near_white_share {worst:.5f}")


if __name__ == "__main__":
    main()
