"""`lossart render --still`: one bundle frame of a run or bundle, rendered to a PNG."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lossart.addon.headless import RenderJob
from lossart.atomic import atomic_path
from lossart.checks import output_file
from lossart.errors import LossartError
from lossart.format.look import Look
from lossart.render.compare import compare_still
from lossart.render.job import RenderResult, blender_executable, claim, run_job
from lossart.render.options import check_look
from lossart.render.source import check_bundle, default_out, resolve_source, writable


def render_still(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    frame: int | None = None,
    look: Look | None = None,
    blender: str | None = None,
    compare: bool = False,
) -> RenderResult:
    """Render bundle frame `frame` (default: the last) of a run or bundle to a PNG.

    `compare`: also write compare-<name>.png beside it, the still next to the flat preview of
    the same frame (lossart.render.compare). `blender`: a Blender executable to run instead of
    the bpy module."""
    look = check_look(look or Look())
    bundle_dir, _ = resolve_source(source)
    bundle = check_bundle(bundle_dir)
    if frame is not None and not 0 <= frame < len(bundle.frames):
        raise LossartError(f"--frame {frame}: the bundle has frames 0..{len(bundle.frames) - 1}")
    stem = f"still_{'last' if frame is None else f'{frame:05d}'}"
    out = Path(out) if out else default_out(source, ".png", stem)
    if out.suffix.lower() != ".png":
        raise LossartError(f"--out {out}: a still is written as PNG (.png)")
    output_file(out)
    if blender is not None:  # before anything is created: a wrong --blender leaves no trace
        blender_executable(blender)
    writable(out.parent, "--out")
    t0 = time.perf_counter()
    with claim(out, "this still") as owner:
        left = [*out.parent.glob(f".{out.name}.*.tmp"), *out.parent.glob(f".{out.name}.*.png")]
        for p in left:
            p.unlink(missing_ok=True)  # what a killed render of this still left
        with atomic_path(out) as tmp:
            png = tmp.with_suffix(".png")
            job = RenderJob(
                mode="still", bundle=str(bundle_dir), look=look, out=str(png), frame=frame
            )
            try:
                status = run_job(job, out.parent, out.stem, blender, keep=owner.fileno())
                if not png.is_file():
                    raise LossartError(
                        f"Blender wrote no image; see {out.parent / (out.stem + '.log')}"
                    )
                png.replace(tmp)
            finally:
                png.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    sheet = None
    if compare:
        position = len(bundle.frames) - 1 if frame is None else frame
        sheet = compare_still(out, bundle, position)
    return RenderResult(
        out=out,
        device=status.get("device", "?"),
        seconds=seconds,
        log=out.parent / f"{out.stem}.log",
        compare=sheet,
    )
