"""The terrain mesh: built once from the grid, heights rewritten in bulk on every frame.

Everything goes through `foreach_set` on flat float32/int32 arrays (databpy style): a
1000x1000 grid builds in about a second and a frame update is a few milliseconds, with nothing
per vertex in Python. Only one frame's heights live in the .blend; the others stay in the bundle.
"""

from __future__ import annotations

import bpy
import numpy as np

from .world import WorldMap

HEIGHT_ATTR = "lossart_height"  # 0..1 over the bundle's height range; the palettes read it


BASE_Z = -0.12  # the skirt's bottom, a little under the lowest possible surface


def grid_topology(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Quad corner indices (flattened, counter-clockwise seen from +z) and loop starts."""
    idx = np.arange(width * height, dtype=np.int32).reshape(height, width)
    a = idx[:-1, :-1]
    b = idx[:-1, 1:]
    c = idx[1:, 1:]
    d = idx[1:, :-1]
    corners = np.stack([a, b, c, d], axis=-1).reshape(-1)
    starts = np.arange(0, corners.size, 4, dtype=np.int32)
    return corners, starts


def boundary_ring(width: int, height: int) -> np.ndarray:
    """Grid indices around the border, counter-clockwise seen from +z (first not repeated)."""
    idx = np.arange(width * height, dtype=np.int32).reshape(height, width)
    return np.concatenate([idx[0, :-1], idx[:-1, -1], idx[-1, :0:-1], idx[:0:-1, 0]])


def build_surface(name: str, bundle, wmap: WorldMap, collection) -> bpy.types.Object:
    """A grid mesh over the bundle's window with a skirt around its border; flat until
    `set_heights` is called. The skirt reaches down to a flat base when the look asks for a
    slab, and is folded flat onto the border otherwise (zero-area faces render nothing, and
    switching the look needs no new mesh).

    Vertices: the W*H grid first (row-major, row 0 = smallest y), then the skirt's top ring and
    bottom ring. The skirt's top ring duplicates the border so the sides get their own normals.
    """
    w, h = bundle.width, bundle.height
    n = w * h
    xs, ys = wmap.grid_xy(bundle)
    grid = np.zeros((h, w, 3), dtype=np.float32)
    grid[:, :, 0] = xs[None, :]
    grid[:, :, 1] = ys[:, None]
    grid = grid.reshape(-1, 3)
    ring = boundary_ring(w, h)
    nr = len(ring)
    top = grid[ring]
    bottom = top.copy()
    bottom[:, 2] = BASE_Z
    co = np.concatenate([grid, top, bottom])

    corners, starts = grid_topology(w, h)
    k = np.arange(nr, dtype=np.int32)
    k1 = (k + 1) % nr
    # outward-facing sides: top k -> bottom k -> bottom k+1 -> top k+1
    sides = np.stack([n + k, n + nr + k, n + nr + k1, n + k1], axis=-1).reshape(-1)
    corners = np.concatenate([corners, sides])
    starts = np.arange(0, corners.size, 4, dtype=np.int32)
    smooth = np.zeros(starts.size, dtype=bool)
    smooth[: (w - 1) * (h - 1)] = True

    # generic attributes take numpy buffers directly (much faster than the legacy RNA arrays)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(co))
    mesh.loops.add(corners.size)
    mesh.polygons.add(starts.size)
    attrs = mesh.attributes
    attrs["position"].data.foreach_set("vector", co.reshape(-1))
    attrs[".corner_vert"].data.foreach_set("value", corners)
    mesh.polygons.foreach_set("loop_start", starts)
    attrs.new("sharp_face", "BOOLEAN", "FACE").data.foreach_set("value", ~smooth)
    attrs.new("material_index", "INT", "FACE").data.foreach_set(
        "value", (~smooth).astype(np.int32)
    )  # slot 1: sides
    u = (np.arange(w, dtype=np.float32) + 0.5) / w
    v = (np.arange(h, dtype=np.float32) + 0.5) / h
    uv_grid = np.stack(np.broadcast_arrays(u[None, :], v[:, None]), axis=-1).reshape(-1, 2)
    uv_vert = np.concatenate([uv_grid, uv_grid[ring], uv_grid[ring]])
    attrs.new("UVMap", "FLOAT2", "CORNER").data.foreach_set("vector", uv_vert[corners].reshape(-1))
    attrs.new(HEIGHT_ATTR, "FLOAT", "POINT")
    mesh["lossart_grid"] = [w, h]
    mesh.update(calc_edges=True)

    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    return obj


def set_heights(
    obj: bpy.types.Object,
    heights: np.ndarray,
    wmap: WorldMap,
    height_scale: float,
    slab: bool = False,
) -> None:
    """Write one heightfield [H, W] into the grid's z, the skirt (down to BASE_Z for a `slab`,
    else folded onto the border) and the height attribute, in bulk."""
    mesh = obj.data
    total = len(mesh.vertices)
    w, h = mesh["lossart_grid"]
    n = w * h
    ring = boundary_ring(w, h)
    flat = np.asarray(heights, dtype=np.float32).reshape(-1)
    co = np.empty(total * 3, dtype=np.float32)
    pos = mesh.attributes["position"].data
    pos.foreach_get("vector", co)
    co = co.reshape(total, 3)
    z = wmap.world_z(flat, height_scale)
    nr = len(ring)
    co[:n, 2] = z
    co[n : n + nr, 2] = z[ring]
    co[n + nr : n + 2 * nr, 2] = BASE_Z if slab else z[ring]
    pos.foreach_set("vector", co.reshape(-1))
    h01 = np.zeros(total, dtype=np.float32)
    h01[:n] = wmap.height01(flat)
    h01[n : n + nr] = h01[ring]
    if not slab:
        h01[n + nr : n + 2 * nr] = h01[ring]
    mesh.attributes[HEIGHT_ATTR].data.foreach_set("value", h01)
    mesh.update()


def grid_z(obj: bpy.types.Object) -> np.ndarray:
    """The grid vertices' z as float32 [H, W] (row 0 = smallest y), for tests and baking."""
    w, h = obj.data["lossart_grid"]
    return vertex_z(obj)[: w * h].reshape(h, w)


def vertex_z(obj: bpy.types.Object) -> np.ndarray:
    """The mesh's vertex z as float32 (for tests and baking)."""
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.attributes["position"].data.foreach_get("vector", co)
    return co[2::3].copy()
