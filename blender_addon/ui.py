"""Blender UI: File > Import > Loss landscape, the "lossart" sidebar panel, bake and reload.

The import operator's options and the panel's rows come from the fields of `look.Look`, like the
scene properties they edit. Operators turn every bundle or look problem into Blender's own error
report, never a traceback.
"""

from __future__ import annotations

import bpy
from bpy_extras.io_utils import ImportHelper

from ..format.bundle import BundleError
from ..format.look import Look, LookError
from .props import look_properties

IMPORT_GROUPS = ("look", "timeline")  # the render options do not change what is imported


class LOSSART_OT_import(bpy.types.Operator, ImportHelper):
    """Import a lossart terrain bundle (its folder or manifest.json) as animated terrain"""

    bl_idname = "lossart.import_landscape"
    bl_label = "Import Loss Landscape"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="manifest.json;*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        # the file browser's options start from the scene's look
        values = Look.from_settings(context.scene.lossart).to_dict()
        for name in Look.names(*IMPORT_GROUPS):
            setattr(self, name, values[name])
        return ImportHelper.invoke(self, context, event)

    def execute(self, context):
        from .landscape import import_landscape

        # options not set in this call (a script passing only filepath) keep the scene's
        chosen = [n for n in Look.names(*IMPORT_GROUPS) if self.properties.is_property_set(n)]
        scene_look = Look.from_settings(context.scene.lossart)
        look = Look.from_settings(self, base=scene_look, names=chosen)
        try:
            bundle = import_landscape(context.scene, self.filepath, look)
        except (BundleError, LookError) as exc:
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
            import_landscape(context.scene, path, Look.from_settings(context.scene.lossart))
        except (BundleError, LookError) as exc:
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
        for group in ("look", "timeline"):
            col = layout.column(align=True)
            for name in Look.names(group):
                col.prop(s, name)
        box = layout.box()
        box.label(text="Render", icon="SCENE")
        col = box.column(align=True)
        for name in Look.names("render"):
            col.prop(s, name)
        row = layout.row(align=True)
        row.operator(LOSSART_OT_reload.bl_idname, icon="FILE_REFRESH")
        row.operator(LOSSART_OT_bake.bl_idname, icon="RENDER_ANIMATION")
        if s.baked:
            layout.label(text="Baked: plays without the add-on", icon="CHECKMARK")


# generated options, not remembered between calls: `invoke` starts them from the scene's look
LOSSART_OT_import.__annotations__.update(
    look_properties(*IMPORT_GROUPS, update=False, options={"SKIP_SAVE"})
)


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
