"""Bundle -> Blender subprocess -> PNG / MP4, and the extension zip.

The library API: `render_still(source, out, frame, look)`, `render_video(source, out, fps,
interpolate, look, caption)`, both returning a `RenderResult`; `Look` (the add-on's look
options, lossart.format.look) says how the bundle is shown and rendered.

Modules, one job each: options (Look <-> command-line flags), source (run/bundle in, paths out),
job (the Blender subprocess and its job file), still, video (frame planning, reuse, blending,
ffmpeg), captions, addon_build (the extension zip).
"""

from lossart.format.look import Look
from lossart.render.job import RenderResult, blender_command
from lossart.render.options import check_look, checked_size
from lossart.render.source import default_out, resolve_source
from lossart.render.still import render_still
from lossart.render.video import render_video

__all__ = [
    "Look",
    "RenderResult",
    "blender_command",
    "check_look",
    "checked_size",
    "default_out",
    "render_still",
    "render_video",
    "resolve_source",
]
