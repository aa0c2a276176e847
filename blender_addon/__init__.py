"""lossart's Blender extension: loss-landscape terrain, animated, with the curve as a glowing path.

Works as an installed Blender 4.2+ extension (`lossart addon build` packs this folder as the
zip's `addon/`, beside a copy of lossart's `format/` package, under a root that registers it)
and as the plain package `lossart.addon` with the `bpy` module from the registry, which is how
lossart's tests and headless renders use it. Either way it reads terrain bundles (docs/bundle.md)
through `..format` with json and numpy only, and imports nothing else of lossart.
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
