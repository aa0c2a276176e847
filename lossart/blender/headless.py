"""Entry point for headless renders started by `lossart render` (lossart/render.py).

Runs inside a fresh Blender process: either `python -c` with the `bpy` module or
`blender -b --python-expr` with this package on sys.path. It reads a job (JSON), builds the
landscape through the same code as the add-on's import operator, renders a still or a frame
sequence, and writes a small status JSON (device used, or the one-line error) for the caller.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def _write_status(path: str | None, **fields) -> None:
    if path:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(fields))
        tmp.replace(path)


def scene_frame(scene, bundle_frame: int) -> int:
    """The scene frame that shows bundle frame `bundle_frame` exactly."""
    s = scene.lossart
    return s.frame_start + int(round(bundle_frame / s.playback_speed))


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    status = job.get("status")
    import bpy

    from . import handlers, register, unregister
    from .bundle import BundleError
    from .landscape import LandscapeOptions, import_landscape, refresh
    from .render import configure, render_frames, render_still

    bpy.ops.wm.read_factory_settings(use_empty=True)
    register()
    code = 0
    try:
        scene = bpy.context.scene
        bundle = import_landscape(scene, job["bundle"], LandscapeOptions(**job["options"]))
        device = configure(scene, **job["render"])
        refresh(scene)  # fit the cameras to the render size's aspect ratio
        _write_status(
            status, device=device, frame_start=scene.frame_start, frame_end=scene.frame_end
        )
        if job["mode"] == "still":
            index = job.get("frame")
            index = len(bundle.frames) - 1 if index is None else int(index)
            if not 0 <= index < len(bundle.frames):
                raise BundleError(
                    f"--frame {index}: the bundle has frames 0..{len(bundle.frames) - 1}"
                )
            render_still(scene, job["out"], frame=scene_frame(scene, index))
        else:
            frames = range(scene.frame_start, scene.frame_end + 1)
            render_frames(
                scene,
                job["frames_dir"],
                frames,
                on_frame=lambda f, skipped: print(
                    f"lossart-frame {f} {'skipped' if skipped else 'rendered'}", flush=True
                ),
            )
        _write_status(
            status,
            device=device,
            frame_start=scene.frame_start,
            frame_end=scene.frame_end,
            done=True,
        )
    except (BundleError, ValueError) as exc:
        _write_status(status, error=str(exc))
        code = 3
    except Exception as exc:  # anything else: keep the traceback in the log, one line for the user
        traceback.print_exc()
        _write_status(status, error=f"Blender failed: {type(exc).__name__}: {exc}")
        code = 4
    finally:
        handlers.uninstall()  # bpy 4.5 can hang at exit with a frame handler installed
        unregister()
    sys.stdout.flush()
    if code:
        sys.exit(code)
