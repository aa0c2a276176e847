"""Does a highlight wash the palette out? The share of the terrain's pixels near white.

    python benchmarks/highlights.py BUNDLE|RUN [BUNDLE|RUN ...] [--style hero] [--camera overview]
                                   [--size 960x540] [--samples 16] [--frame I] [--out DIR]

Each bundle's frame (default: the last) is rendered through the add-on (the bpy module, in this
process) in the style and camera asked for, with the path, markers and bends hidden from every
ray (their glow and its light on the ground excluded) and a transparent film, so the alpha says
which pixels are terrain. Printed per bundle: the terrain's share of the picture and the share
of its pixels whose every channel is at least 85% of full scale
(`lossart.render.highlights.near_white_share`); the last line is the worst,
`look/near_white_share X` (issue 22: under 0.01). The terrain-only renders go to DIR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lossart.render.highlights import NEAR_WHITE, near_white_share  # noqa: E402


def terrain_only(bundle: Path, look, frame: int | None, out: Path):
    """Render the bundle's frame with only the terrain visible; the RGBA picture."""
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
    index = len(loaded.frames) - 1 if frame is None else frame
    scene.frame_set(look.timeline(len(loaded.frames)).scene_frame(index))
    hide_marks(scene)
    bpy.ops.render.render(write_still=False)  # settle the frame handler's updates first
    render_picture(scene, out)
    return iio.imread(out)


def main() -> None:
    from lossart.format.look import Look

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", type=Path, help="bundle folders or run folders")
    parser.add_argument("--style", default="hero")
    parser.add_argument("--camera", default="overview", help="camera preset")
    parser.add_argument("--size", default="960x540")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--frame", type=int, default=None, help="bundle frame (default: last)")
    parser.add_argument("--out", type=Path, default=Path("highlights"))
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    look = Look(style=args.style, camera_preset=args.camera, size=size,
                samples=args.samples, transparent=True).validate()
    args.out.mkdir(parents=True, exist_ok=True)
    worst = 0.0
    for k, given in enumerate(args.bundles):
        bundle = given / "terrain" if (given / "terrain" / "manifest.json").is_file() else given
        rgba = terrain_only(bundle, look, args.frame, args.out / f"terrain-only-{k}.png")
        share = near_white_share(rgba)
        worst = max(worst, share)
        print(f"{given}: terrain {100 * (rgba[..., 3] > 127).mean():.1f}% of the picture; "
              f"near white (every channel >= {NEAR_WHITE:.0%}) {100 * share:.3f}% of it")
    print(f"look/near_white_share {worst:.5f}")


if __name__ == "__main__":
    main()
