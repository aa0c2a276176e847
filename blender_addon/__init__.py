"""lossart's Blender extension: loss-landscape terrain, animated, with the curve as a glowing path.

Works as an installed Blender 4.2+ extension (this folder is the extension root, see
blender_manifest.toml) and as the plain package `lossart.blender` with the `bpy` module from the
registry, which is how lossart's tests and headless renders use it. It reads terrain bundles
(docs/bundle.md) with json and numpy only.
"""

from __future__ import annotations

_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    from . import handlers, props, ui

    props.register()
    ui.register()
    handlers.install()
    _registered = True


def unregister() -> None:
    global _registered
    if not _registered:
        return
    from . import handlers, props, ui

    handlers.uninstall()
    ui.unregister()
    props.unregister()
    _registered = False
