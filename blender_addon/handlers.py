"""The frame-change handler: every scene frame shows its bundle frame.

Installed on register, removed on unregister and by `uninstall()` after headless renders (bpy
4.5 can hang at exit after an animation render while a handler is still installed). The render
interface is locked on import (`use_lock_interface`) because the handler edits mesh data while
Cycles renders an animation.
"""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent


@persistent
def on_frame_change(scene, depsgraph=None) -> None:
    from ..format.bundle import BundleError
    from . import landscape

    try:
        landscape.update(scene)
    except BundleError as exc:  # e.g. the bundle folder moved: say so once per frame, never crash
        print(f"lossart: {exc}")


def install() -> None:
    uninstall()
    bpy.app.handlers.frame_change_post.append(on_frame_change)


def uninstall() -> None:
    for handlers in (bpy.app.handlers.frame_change_post, bpy.app.handlers.frame_change_pre):
        for h in list(handlers):
            if getattr(h, "__name__", "") == "on_frame_change" and getattr(
                h, "__module__", ""
            ).endswith("handlers"):
                handlers.remove(h)


def installed() -> bool:
    return any(
        getattr(h, "__name__", "") == "on_frame_change" for h in bpy.app.handlers.frame_change_post
    )
