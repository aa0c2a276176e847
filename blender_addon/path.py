"""The curve as a glowing path over the terrain, its endpoints as markers, its bends optionally.

The path is a poly spline (one point per bundle path sample) with a bevel, so it renders as a
thin tube; its points are rewritten in bulk each frame. Markers are small spheres sharing one mesh.
"""

from __future__ import annotations

import bmesh
import bpy
import numpy as np

from .world import SIZE

# Sizes are shares of the terrain's size (its longer side spans SIZE world units), so a path
# reads as a thin bright line and a marker as a bead at any bundle's scale.
PATH_RADIUS = 0.0022 * SIZE
PATH_LIFT = 0.003 * SIZE  # lies on the surface: just enough to never sink into it between samples
MARKER_RADIUS = 0.011 * SIZE
BEND_RADIUS = 0.008 * SIZE


def build_path(name: str, collection) -> bpy.types.Object:
    curve = bpy.data.curves.new(name, "CURVE")
    curve.dimensions = "3D"
    curve.bevel_depth = PATH_RADIUS
    curve.bevel_resolution = 4
    curve.use_fill_caps = True
    obj = bpy.data.objects.new(name, curve)
    collection.objects.link(obj)
    return obj


def set_path(obj: bpy.types.Object, points: np.ndarray) -> None:
    """Replace the path's points with world positions [N, 3] (N >= 2; fewer hides the path)."""
    curve = obj.data
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    obj.hide_render = obj.hide_viewport = len(pts) < 2
    if len(pts) < 2:
        return
    if len(curve.splines) != 1 or len(curve.splines[0].points) != len(pts):
        curve.splines.clear()
        spline = curve.splines.new("POLY")
        spline.points.add(len(pts) - 1)
    co = np.ones((len(pts), 4), dtype=np.float32)
    co[:, :3] = pts
    curve.splines[0].points.foreach_set("co", co.reshape(-1))
    curve.update_tag()


def path_points(obj: bpy.types.Object) -> np.ndarray:
    spline = obj.data.splines[0]
    co = np.empty(len(spline.points) * 4, dtype=np.float32)
    spline.points.foreach_get("co", co)
    return co.reshape(-1, 4)[:, :3].copy()


def sphere_mesh(name: str, radius: float) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=24, v_segments=12, radius=radius)
    bm.to_mesh(mesh)
    bm.free()
    mesh.shade_smooth()
    return mesh


def build_markers(
    prefix: str,
    names: list[str],
    mesh: bpy.types.Mesh | None,
    collection,
    radius: float = MARKER_RADIUS,
) -> list[bpy.types.Object]:
    """One object per name sharing `mesh`, or each with its own sphere (own material) if None."""
    objs = []
    for name in names:
        data = mesh if mesh is not None else sphere_mesh(f"{prefix}{name}", radius)
        obj = bpy.data.objects.new(f"{prefix}{name}", data)
        collection.objects.link(obj)
        objs.append(obj)
    return objs


def place(objs: list[bpy.types.Object], positions: np.ndarray, visible: bool = True) -> None:
    for k, obj in enumerate(objs):
        show = visible and k < len(positions)
        obj.hide_render = obj.hide_viewport = not show
        if show:
            obj.location = tuple(float(v) for v in positions[k])
