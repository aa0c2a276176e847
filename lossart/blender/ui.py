"""Blender UI: File > Import > Loss landscape, the "lossart" sidebar panel, bake and reload.

Operators turn every bundle problem into Blender's own error report, never a traceback.
"""

from __future__ import annotations

import bpy
from bpy_extras.io_utils import ImportHelper

from .bundle import BundleError


def _options(scene):
    from .landscape import LandscapeOptions

    s = scene.lossart
    return LandscapeOptions(
        palette=s.palette,
        height_scale=s.height_scale,
        path_glow=s.path_glow,
        camera=s.camera_preset,
        show_bends=s.show_bends,
        contours=s.contours,
        playback_speed=s.playback_speed,
        frame_start=s.frame_start,
    )


class LOSSART_OT_import(bpy.types.Operator, ImportHelper):
    """Import a lossart terrain bundle (its folder or manifest.json) as animated terrain"""

    bl_idname = "lossart.import_landscape"
    bl_label = "Import Loss Landscape"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="manifest.json;*.json", options={"HIDDEN"})

    def execute(self, context):
        from .landscape import import_landscape

        try:
            bundle = import_landscape(context.scene, self.filepath, _options(context.scene))
        except BundleError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report(
            {"INFO"}, f"lossart: {len(bundle.frames)} frames of {bundle.width}x{bundle.height}"
        )
        return {"FINISHED"}


class LOSSART_OT_reload(bpy.types.Operator):
    """Rebuild the landscape from its bundle (after the bundle was rewritten)"""

    bl_idname = "lossart.reload"
    bl_label = "Reload Bundle"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from .landscape import import_landscape

        path = context.scene.lossart.bundle_path
        if not path:
            self.report({"ERROR"}, "lossart: no bundle imported in this scene")
            return {"CANCELLED"}
        try:
            import_landscape(context.scene, path, _options(context.scene))
        except BundleError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class LOSSART_OT_bake(bpy.types.Operator):
    """Bake heights and path into the .blend so it plays without the add-on"""

    bl_idname = "lossart.bake"
    bl_label = "Bake Animation"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from .bake import bake_landscape

        try:
            info = bake_landscape(context.scene)
        except (BundleError, RuntimeError, OSError) as exc:
            self.report({"ERROR"}, f"lossart: bake failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"lossart: baked {info.frames} frames to {info.image_dir}")
        return {"FINISHED"}


class LOSSART_PT_panel(bpy.types.Panel):
    bl_label = "lossart"
    bl_idname = "LOSSART_PT_panel"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "lossart"

    def draw(self, context):
        layout = self.layout
        s = context.scene.lossart
        layout.operator(LOSSART_OT_import.bl_idname, icon="IMPORT")
        if s.bundle_path:
            layout.label(text=bpy.path.basename(s.bundle_path.rstrip("/")) or s.bundle_path)
        col = layout.column(align=True)
        col.prop(s, "height_scale")
        col.prop(s, "palette")
        col.prop(s, "path_glow")
        col.prop(s, "show_bends")
        col.prop(s, "contours")
        layout.prop(s, "camera_preset")
        col = layout.column(align=True)
        col.prop(s, "frame_start")
        col.prop(s, "playback_speed")
        row = layout.row(align=True)
        row.operator(LOSSART_OT_reload.bl_idname, icon="FILE_REFRESH")
        row.operator(LOSSART_OT_bake.bl_idname, icon="RENDER_ANIMATION")
        if s.baked:
            layout.label(text="Baked: plays without the add-on", icon="CHECKMARK")


def _menu_import(self, context):
    self.layout.operator(LOSSART_OT_import.bl_idname, text="Loss landscape (lossart bundle)")


CLASSES = (LOSSART_OT_import, LOSSART_OT_reload, LOSSART_OT_bake, LOSSART_PT_panel)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
