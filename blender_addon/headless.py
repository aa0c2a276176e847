"""Entry point for headless renders started by `lossart render` (lossart/render/job.py).

Runs inside a fresh Blender process: either `python -c` with the `bpy` module or
`blender -b --python-expr` with this package on sys.path. It reads a `RenderJob` (JSON),
builds the landscape through the same code as the add-on's import operator, renders a still or
a frame sequence, and writes a small status JSON (device used, or the one-line error) for the
caller. This module imports bpy only inside `main`, so lossart writes jobs with the same type.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, fields
from pathlib import Path

from ..format.look import Look, LookError

JOB_FORMAT = "lossart-render-job"
JOB_VERSION = 2  # 2: the look as one `Look` dict (1 had hand-written "options" and "render")


@dataclass
class RenderJob:
    """One headless render: a still of one bundle frame, or every scene frame of the video."""

    mode: str  # "still" | "video"
    bundle: str  # bundle folder or manifest
    look: Look
    out: str | None = None  # still: the PNG to write
    frame: int | None = None  # still: the bundle frame (default: the last)
    frames_dir: str | None = None  # video: scene frame f goes to frames_dir/frame_{f:05d}.png
    status: str | None = None  # where to write the status JSON

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return {"format": JOB_FORMAT, "version": JOB_VERSION, **d, "look": self.look.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> RenderJob:
        if data.get("format") != JOB_FORMAT or data.get("version") != JOB_VERSION:
            raise LookError(
                f"render job: format {data.get('format')!r} version {data.get('version')!r}, "
                f"expected {JOB_FORMAT!r} version {JOB_VERSION} (lossart and its add-on differ)"
            )
        if data.get("mode") not in ("still", "video"):
            raise LookError(f"render job: mode {data.get('mode')!r}, expected still or video")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["look"] = Look.from_dict(data.get("look", {}), what="render job look")
        return cls(**values)


def _write_status(path: str | None, **values) -> None:
    if path:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(values))
        tmp.replace(path)


def watch_parent(interval: float = 0.5) -> None:
    """End this process once the lossart that started it is gone (LOSSART_PARENT_PID).

    Linux kills the child at once (PR_SET_PDEATHSIG, set by lossart); elsewhere this thread
    does it, within `interval` of the parent's death once Blender gives Python a turn."""
    parent = os.environ.get("LOSSART_PARENT_PID", "")
    if not parent.isdigit():
        return

    def loop() -> None:
        while True:
            if os.getppid() != int(parent):
                os._exit(5)
            time.sleep(interval)

    threading.Thread(target=loop, name="lossart-watch-parent", daemon=True).start()


def main(job_path: str) -> None:
    watch_parent()
    raw = json.loads(Path(job_path).read_text())
    status = raw.get("status")
    import bpy

    from ..format.bundle import BundleError
    from . import handlers, register, unregister
    from .landscape import import_landscape, refresh
    from .output import apply_look, render_frames, render_picture

    bpy.ops.wm.read_factory_settings(use_empty=True)
    register()
    code = 0
    try:
        job = RenderJob.from_dict(raw)
        scene = bpy.context.scene
        # the picture's size first: the import frames the camera for it, and the refresh after
        # the render settings finds that framing remembered (a camera search takes seconds)
        scene.render.resolution_x, scene.render.resolution_y = (int(v) for v in job.look.size)
        scene.render.resolution_percentage = 100
        bundle = import_landscape(scene, job.bundle, job.look)
        device = apply_look(scene, job.look)
        refresh(scene)  # fit the cameras to the render size's aspect ratio
        _write_status(
            status, device=device, frame_start=scene.frame_start, frame_end=scene.frame_end
        )
        if job.mode == "still":
            index = len(bundle.frames) - 1 if job.frame is None else int(job.frame)
            if not 0 <= index < len(bundle.frames):
                raise BundleError(
                    f"--frame {index}: the bundle has frames 0..{len(bundle.frames) - 1}"
                )
            timeline = job.look.timeline(len(bundle.frames))
            render_picture(scene, job.out, frame=timeline.scene_frame(index))
        else:
            render_frames(
                scene,
                job.frames_dir,
                range(scene.frame_start, scene.frame_end + 1),
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
    except (BundleError, ValueError) as exc:  # LookError is a ValueError
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
