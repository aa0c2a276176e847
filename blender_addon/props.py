"""The add-on's settings, stored on the scene (`scene.lossart`) so they persist in the .blend.

The look options are generated from the fields of `look.Look` (name, label, help, default,
range, choices), so the panel, the import operator and `lossart render` offer the same options
with the same defaults. Changing one updates the scene: a look option refreshes materials and
camera, a timeline option refits the frame range, a render option sets Blender's render
settings.
"""

from __future__ import annotations

from dataclasses import fields

import bpy

from ..format.look import Look


def _refresh(self, context):
    from . import landscape

    landscape.refresh(context.scene)


def _retime(self, context):
    from . import landscape

    landscape.retime(context.scene)


def _apply_render(self, context):
    from . import landscape

    landscape.apply_render(context.scene)


UPDATES = {"look": _refresh, "timeline": _retime, "render": _apply_render}


def look_properties(*groups: str, update: bool = True, options: set[str] | None = None) -> dict:
    """Blender properties for the Look fields of `groups` (default all), keyed by field name."""
    props = {}
    for f in fields(Look):
        meta = f.metadata
        if groups and meta["group"] not in groups:
            continue
        kw = {"name": meta["label"], "description": meta["help"][:1].upper() + meta["help"][1:]}
        if update:
            kw["update"] = UPDATES[meta["group"]]
        if options is not None:
            kw["options"] = options
        limits = {k: meta[k] for k in ("min", "max", "soft_max") if k in meta}
        d = f.default
        if isinstance(d, bool):
            props[f.name] = bpy.props.BoolProperty(default=d, **kw)
        elif isinstance(d, int):
            props[f.name] = bpy.props.IntProperty(default=d, **limits, **kw)
        elif isinstance(d, float):
            props[f.name] = bpy.props.FloatProperty(default=d, **limits, **kw)
        elif isinstance(d, str):
            items = [(k, k, desc) for k, desc in meta["choices"].items()]
            props[f.name] = bpy.props.EnumProperty(items=items, default=d, **kw)
        elif isinstance(d, tuple):
            props[f.name] = bpy.props.IntVectorProperty(size=len(d), default=d, **limits, **kw)
        else:
            raise TypeError(f"Look.{f.name}: no Blender property for {type(d).__name__}")
    return props


class LossartSettings(bpy.types.PropertyGroup):
    bundle_path: bpy.props.StringProperty(
        name="Bundle", subtype="FILE_PATH", description="Terrain bundle folder or its manifest.json"
    )
    baked: bpy.props.BoolProperty(
        name="Baked",
        default=False,
        description="The scene plays from baked data; the handler leaves it alone",
    )
    terrain: bpy.props.PointerProperty(type=bpy.types.Object)
    path: bpy.props.PointerProperty(type=bpy.types.Object)
    camera: bpy.props.PointerProperty(type=bpy.types.Object)
    pivot: bpy.props.PointerProperty(type=bpy.types.Object)
    target: bpy.props.PointerProperty(type=bpy.types.Object)
    collection: bpy.props.PointerProperty(type=bpy.types.Collection)


LossartSettings.__annotations__.update(look_properties())

CLASSES = (LossartSettings,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.lossart = bpy.props.PointerProperty(type=LossartSettings)


def unregister() -> None:
    del bpy.types.Scene.lossart
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
