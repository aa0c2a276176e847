"""Wavefront OBJ and binary STL writers for terrain meshes (numpy only).

OBJ (text, for modelling tools): `v x y z r g b` vertices (the common vertex-colour extension,
colours as floats in [0, 1]), `f` triangles (1-based), and the frame's path as an `l` polyline
over extra vertices. OBJ has no axis convention of its own; tools read it y-up, so it is written
like the glTF export: (x, y, z) as (x, z, -y), a rotation that keeps faces pointing up.

STL (binary, for 3-D printing): the heightfield closed into a solid slab — side walls down to a
flat base below the lowest point and a bottom fanned from its centre — so that slicers get a
watertight mesh; z stays up (the printing convention). Each triangle carries its unit normal.
"""

from __future__ import annotations

import io
import struct

import numpy as np

VERTEX = ["v %.7g", "%.7g", "%.7g"]
VERTEX_RGB = [*VERTEX, "%.4f", "%.4f", "%.4f"]


def y_up(verts: np.ndarray) -> np.ndarray:
    """(x, y, z) z-up to (x, z, -y) y-up."""
    v = np.asarray(verts, np.float64)
    return np.column_stack([v[:, 0], v[:, 2], -v[:, 1]])


def obj_bytes(
    verts: np.ndarray,
    tris: np.ndarray,
    colors: np.ndarray | None = None,
    path: np.ndarray | None = None,
    comment: str = "",
) -> bytes:
    """An OBJ of z-up `verts` [N, 3], `tris` [M, 3] (0-based), uint8 `colors` [N, 3], `path` [K, 3]."""
    buf = io.StringIO()
    if comment:
        buf.write(f"# {comment}\n")
    buf.write(f"o terrain\n# {len(verts)} vertices, {len(tris)} triangles\n")
    v = y_up(verts)
    if colors is not None:
        rows = np.column_stack([v, np.asarray(colors, np.float64) / 255.0])
        np.savetxt(buf, rows, fmt=VERTEX_RGB)
    else:
        np.savetxt(buf, v, fmt=VERTEX)
    np.savetxt(buf, np.asarray(tris, np.int64) + 1, fmt=["f %d", "%d", "%d"])
    if path is not None and len(path) >= 2:
        buf.write(f"o path\n# the curve, {len(path)} points\n")
        p = y_up(np.asarray(path, np.float64).reshape(-1, 3))
        if colors is not None:  # white; readers drop all colours when some vertices lack them
            np.savetxt(buf, np.column_stack([p, np.ones((len(p), 3))]), fmt=VERTEX_RGB)
        else:
            np.savetxt(buf, p, fmt=VERTEX)
        first = len(verts) + 1
        buf.write("l " + " ".join(str(i) for i in range(first, first + len(path))) + "\n")
    return buf.getvalue().encode("ascii")


def _boundary(h: int, w: int) -> np.ndarray:
    """Indices of the grid's border vertices as one closed loop, counter-clockwise from +z."""
    ids = np.arange(h * w).reshape(h, w)
    return np.concatenate(
        [ids[0, :-1], ids[:-1, -1], ids[-1, :0:-1], ids[:0:-1, 0]]
    )  # bottom row →, right column ↑, top row ←, left column ↓ (rows run along +y)


def solid_slab(
    verts: np.ndarray, tris: np.ndarray, shape: tuple[int, int], base_z: float
) -> tuple[np.ndarray, np.ndarray]:
    """Close a grid surface (`grid_mesh` order, `shape` = (H, W)) into a watertight slab."""
    h, w = shape
    loop = _boundary(h, w)
    n, k = len(verts), len(loop)
    low = verts[loop].copy()
    low[:, 2] = base_z
    centre = np.array([[verts[:, 0].mean(), verts[:, 1].mean(), base_z]], verts.dtype)
    out_v = np.concatenate([verts, low, centre])
    a, b = loop, np.roll(loop, -1)  # top edge a -> b, counter-clockwise seen from above
    la, lb = n + np.arange(k), n + np.roll(np.arange(k), -1)
    walls = np.concatenate([np.column_stack([a, la, lb]), np.column_stack([a, lb, b])])
    bottom = np.column_stack([np.full(k, n + k), lb, la])  # faces down
    return out_v, np.concatenate([tris, walls, bottom]).astype(np.int64)


def triangle_normals(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Unit normals [M, 3] by the right-hand rule (zero for degenerate triangles)."""
    p = np.asarray(verts, np.float64)[tris]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def stl_bytes(verts: np.ndarray, tris: np.ndarray, header: str = "") -> bytes:
    """A binary STL: 80-byte header, triangle count, then normal + 3 vertices + 0 per triangle."""
    dt = np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    rec = np.zeros(len(tris), dtype=dt)
    rec["n"] = triangle_normals(verts, tris)
    rec["v"] = np.asarray(verts, np.float32)[tris]
    text = header.encode("ascii", "replace")[:80]
    if text.lower().startswith(b"solid"):  # ascii STL starts so; keep readers from guessing wrong
        text = b"lossart " + text[: 80 - 8]
    return text.ljust(80, b" ") + struct.pack("<I", len(tris)) + rec.tobytes()
