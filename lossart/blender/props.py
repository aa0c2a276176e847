"""The add-on's settings, stored on the scene (`scene.lossart`) so they persist in the .blend."""

from __future__ import annotations

import bpy

from .looks import CAMERA_PRESETS, PALETTES


def _refresh(self, context):
    from . import landscape

    landscape.refresh(context.scene)


def _retime(self, context):
    from . import landscape

    landscape.retime(context.scene)


class LossartSettings(bpy.types.PropertyGroup):
    bundle_path: bpy.props.StringProperty(
        name="Bundle", subtype="FILE_PATH", description="Terrain bundle folder or its manifest.json"
    )
    height_scale: bpy.props.FloatProperty(
        name="Height scale",
        default=1.0,
        min=0.0,
        soft_max=4.0,
        description="Relief relative to the default",
        update=_refresh,
    )
    palette: bpy.props.EnumProperty(
        name="Palette",
        items=[(k, k, v[3]) for k, v in PALETTES.items()],
        update=_refresh,
        description="Colour map from low loss (valleys) to high loss (ridges)",
    )
    path_glow: bpy.props.FloatProperty(
        name="Path glow",
        default=4.0,
        min=0.0,
        soft_max=30.0,
        description="Emission strength of the path",
        update=_refresh,
    )
    camera_preset: bpy.props.EnumProperty(
        name="Camera", items=[(k, k, v) for k, v in CAMERA_PRESETS.items()], update=_refresh
    )
    show_bends: bpy.props.BoolProperty(
        name="Show bends",
        default=False,
        update=_refresh,
        description="Show the curve's bend points as small spheres",
    )
    contours: bpy.props.BoolProperty(
        name="Contour lines",
        default=False,
        update=_refresh,
        description="Faint contour lines over the surface (off: a glossy sculpted surface)",
    )
    frame_start: bpy.props.IntProperty(name="Start frame", default=1, update=_retime)
    playback_speed: bpy.props.FloatProperty(
        name="Playback speed",
        default=1.0,
        min=0.01,
        soft_max=4.0,
        update=_retime,
        description="Bundle frames per scene frame; below 1 interpolates heights for slow motion",
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


CLASSES = (LossartSettings,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.lossart = bpy.props.PointerProperty(type=LossartSettings)


def unregister() -> None:
    del bpy.types.Scene.lossart
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
