"""Bake: a .blend that plays the animation without the add-on.

- Terrain: one 16-bit grayscale PNG per scene frame (heights 0..1 over the bundle's range, rows
  flipped to Blender's bottom-up image order) read back by a geometry-nodes modifier (Image
  Texture node, image sequence, frame = scene frame) that sets z and the height attribute.
  The images stay beside the .blend, so the .blend itself stays small.
- Path: absolute shape keys, one per scene frame, played by a `frame` driver on the key's
  evaluation time (no Python needed at playback).
- Markers, bends and the fly-through camera: location keyframes.

Cost (measured, see the report in the issue): about 2 bytes per grid point per frame of PNG
before compression (300x300: ~0.1 MB/frame on disk), a few kB of shape keys per frame in the
.blend, and about 10 ms per frame to write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..format.bundle import quantize16
from ..format.png16 import write_png16
from . import landscape, path, surface
from .world import WorldMap

PATH_SAMPLES = 128
MODIFIER = "lossart_baked_heights"


@dataclass
class BakeInfo:
    frames: int
    image_dir: Path
    image_bytes: int


def _resample(points: np.ndarray, n: int) -> np.ndarray:
    """Resample a polyline [M, 3] to n points evenly in index (bundle paths are even in t)."""
    if len(points) == 0:
        return np.zeros((n, 3), dtype=np.float32)
    src = np.linspace(0.0, 1.0, len(points))
    dst = np.linspace(0.0, 1.0, n)
    return np.column_stack([np.interp(dst, src, points[:, k]) for k in range(3)]).astype(np.float32)


def _height_nodes(
    name: str, image: bpy.types.Image, grid_points: int, relief: float, frame_start: int
):
    """Geometry nodes: z = relief * image(uv, frame) on the first `grid_points` vertices."""
    ng = bpy.data.node_groups.new(name, "GeometryNodeTree")
    ng.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    ng.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    n = ng.nodes
    gin, gout = n.new("NodeGroupInput"), n.new("NodeGroupOutput")
    uv = n.new("GeometryNodeInputNamedAttribute")
    uv.data_type = "FLOAT_VECTOR"
    uv.inputs["Name"].default_value = "UVMap"
    tex = n.new("GeometryNodeImageTexture")
    tex.interpolation = "Closest"
    tex.extension = "EXTEND"
    tex.inputs["Image"].default_value = image
    time = n.new("GeometryNodeInputSceneTime")
    offset = n.new("ShaderNodeMath")
    offset.operation = "SUBTRACT"
    offset.inputs[1].default_value = frame_start - 1  # sequence file 1 <-> scene frame_start
    sep = n.new("FunctionNodeSeparateColor")
    pos = n.new("GeometryNodeInputPosition")
    xyz = n.new("ShaderNodeSeparateXYZ")
    z = n.new("ShaderNodeMath")
    z.operation = "MULTIPLY"
    z.inputs[1].default_value = relief
    comb = n.new("ShaderNodeCombineXYZ")
    index = n.new("GeometryNodeInputIndex")
    sel = n.new("FunctionNodeCompare")
    sel.data_type = "INT"
    sel.operation = "LESS_THAN"
    sel.inputs["B"].default_value = grid_points
    setpos = n.new("GeometryNodeSetPosition")
    store = n.new("GeometryNodeStoreNamedAttribute")
    store.data_type = "FLOAT"
    store.domain = "POINT"
    store.inputs["Name"].default_value = surface.HEIGHT_ATTR
    L = ng.links.new
    L(uv.outputs["Attribute"], tex.inputs["Vector"])
    L(time.outputs["Frame"], offset.inputs[0])
    L(offset.outputs[0], tex.inputs["Frame"])
    L(tex.outputs["Color"], sep.inputs["Color"])
    L(pos.outputs["Position"], xyz.inputs["Vector"])
    L(sep.outputs[0], z.inputs[0])
    L(xyz.outputs["X"], comb.inputs["X"])
    L(xyz.outputs["Y"], comb.inputs["Y"])
    L(z.outputs[0], comb.inputs["Z"])
    L(index.outputs["Index"], sel.inputs["A"])
    L(gin.outputs[0], setpos.inputs["Geometry"])
    L(sel.outputs["Result"], setpos.inputs["Selection"])
    L(comb.outputs["Vector"], setpos.inputs["Position"])
    L(setpos.outputs["Geometry"], store.inputs["Geometry"])
    L(sel.outputs["Result"], store.inputs["Selection"])
    L(sep.outputs[0], store.inputs["Value"])
    L(store.outputs["Geometry"], gout.inputs[0])
    return ng


def bake_landscape(scene: bpy.types.Scene, folder: str | Path | None = None) -> BakeInfo:
    """Bake the scene's landscape over its frame range; afterwards the handler leaves it alone.

    `folder` defaults to `lossart_bake/` beside the saved .blend (save the file first).
    """
    s = scene.lossart
    bundle = landscape.active_bundle(scene)
    if bundle is None:
        raise RuntimeError("no lossart landscape in this scene")
    if s.baked:
        raise RuntimeError("this landscape is already baked (reload the bundle to bake again)")
    if folder is None:
        if not bpy.data.filepath:
            raise RuntimeError("save the .blend first: the height images are written beside it")
        folder = Path(bpy.path.abspath("//")) / "lossart_bake"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wmap = WorldMap.for_bundle(bundle)
    hs = landscape.height_scale(s)
    fs, fe = scene.frame_start, scene.frame_end
    w, h = bundle.width, bundle.height
    # the grid and the skirt's top ring follow the heights; a folded skirt's bottom ring too
    grid_points = w * h + len(surface.boundary_ring(w, h)) * (1 if s.slab else 2)

    # the path: one absolute shape key per frame on a fixed-size spline
    curve_obj = s.path
    path.set_path(curve_obj, np.zeros((PATH_SAMPLES, 3)))
    curve_obj.shape_key_add(name="basis", from_mix=False)
    key = curve_obj.data.shape_keys
    key.use_relative = False
    movers = [o for o in s.collection.objects if "lossart_point" in o or "lossart_bend" in o]
    fly = s.camera_preset == "flythrough"
    total = 0
    for f in range(fs, fe + 1):
        st = bundle.state(landscape.bundle_position(scene, bundle, f))
        png = folder / f"height_{f - fs + 1:05d}.png"
        write_png16(png, quantize16(np.flipud(wmap.height01(st.heights)), 0.0, 1.0), level=6)
        total += png.stat().st_size
        pw = _resample(wmap.world(st.path, hs, lift=path.PATH_LIFT), PATH_SAMPLES)
        block = curve_obj.shape_key_add(name=f"frame_{f:05d}", from_mix=False)
        block.interpolation = "KEY_LINEAR"
        block.data.foreach_set("co", pw.reshape(-1))
        scene.frame_current = f
        landscape.update(scene)  # markers, bends and the fly-through camera for this frame
        for obj in movers:
            obj.keyframe_insert("location", frame=f)
            obj.keyframe_insert("hide_render", frame=f)
        if fly:
            s.camera.keyframe_insert("location", frame=f)
            s.target.keyframe_insert("location", frame=f)
    # absolute keys sit 10 frames apart from the basis at 0: eval_time = 10 * (k + 1)
    drv = key.driver_add("eval_time")
    drv.driver.type = "SCRIPTED"
    drv.driver.expression = f"(frame - {fs} + 1) * 10"

    image = bpy.data.images.load(str(folder / "height_00001.png"), check_existing=False)
    image.name = "lossart_heights"
    image.source = "SEQUENCE"
    image.colorspace_settings.name = "Non-Color"
    if bpy.data.filepath:
        try:
            image.filepath = bpy.path.relpath(str(folder / "height_00001.png"))
        except ValueError:  # another drive on Windows
            pass
    ng = _height_nodes("lossart_baked_heights", image, grid_points, wmap.top(hs), fs)
    mod = s.terrain.modifiers.new(MODIFIER, "NODES")
    mod.node_group = ng
    s.baked = True
    scene.frame_set(fs)
    return BakeInfo(frames=fe - fs + 1, image_dir=folder, image_bytes=total)
