"""One bundle frame as a standard mesh file: PLY (binary or ascii), glTF binary (.glb), OBJ or
binary STL (the last two in `mesh_obj_stl`: OBJ with the path as a polyline, STL a closed slab).

A regular triangle grid over the heightfield with height-coloured vertices (the bundle's one
height range through a matplotlib colormap), for viewers and tools other than Blender. Small
writers of our own, vectorized with numpy structured arrays; no mesh library needed.

Axes: PLY keeps the bundle's axes (x, y plane coordinates, z up = height × z_scale, Blender's
convention); glTF is y-up by specification, so there (x, y, z) is written as (x, z, -y), a
rotation that keeps the triangles' winding (faces point up).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from lossart.atomic import atomic_path
from lossart.errors import LossartError
from lossart.format.bundle import load_bundle
from lossart.terrain import mesh_obj_stl
from lossart.terrain.heightfield import grid_coords

FORMATS = ("ply", "gltf", "obj", "stl")
SUFFIX = {"ply": ".ply", "gltf": ".glb", "obj": ".obj", "stl": ".stl"}
CMAP = "magma"


def grid_mesh(
    z: np.ndarray, x_range: tuple[float, float], y_range: tuple[float, float], z_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [H*W, 3] (row-major, like the heights), triangles [2(H-1)(W-1), 3] CCW from +z."""
    h, w = z.shape
    gx, gy = np.meshgrid(grid_coords(w, *x_range), grid_coords(h, *y_range))
    verts = np.column_stack([gx.ravel(), gy.ravel(), np.asarray(z, np.float64).ravel() * z_scale])
    ids = np.arange(h * w, dtype=np.int64).reshape(h, w)
    v00, v01 = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel()
    v10, v11 = ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    tris = np.empty((2 * v00.size, 3), dtype=np.int64)
    tris[0::2] = np.column_stack([v00, v01, v11])
    tris[1::2] = np.column_stack([v00, v11, v10])
    return verts.astype(np.float32), tris


def height_colors(z: np.ndarray, z_min: float, z_max: float, cmap: str = CMAP) -> np.ndarray:
    """uint8 RGB [N, 3] of heights through a colormap over [z_min, z_max]."""
    from matplotlib import colormaps

    t = np.clip((np.asarray(z, np.float64).ravel() - z_min) / (z_max - z_min), 0.0, 1.0)
    return (colormaps[cmap](t)[:, :3] * 255.0 + 0.5).astype(np.uint8)


def ply_bytes(
    verts: np.ndarray, tris: np.ndarray, colors: np.ndarray, ascii: bool = False, comment: str = ""
) -> bytes:
    """A PLY file: float x, y, z + uchar red, green, blue per vertex; int triangle lists."""
    header = ["ply", f"format {'ascii' if ascii else 'binary_little_endian'} 1.0"]
    if comment:
        header.append(f"comment {comment}")
    header += [
        f"element vertex {len(verts)}",
        "property float x",
        "property float y",
        "property float z",
        "property uchar red",
        "property uchar green",
        "property uchar blue",
        f"element face {len(tris)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    head = ("\n".join(header) + "\n").encode("ascii")
    if ascii:
        vlines = [
            f"{x:.7g} {y:.7g} {z:.7g} {r} {g} {b}"
            for (x, y, z), (r, g, b) in zip(verts.tolist(), colors.tolist(), strict=True)
        ]
        flines = [f"3 {a} {b} {c}" for a, b, c in tris.tolist()]
        return head + ("\n".join(vlines + flines) + "\n").encode("ascii")
    vdt = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")]
    )
    v = np.empty(len(verts), dtype=vdt)
    v["x"], v["y"], v["z"] = verts[:, 0], verts[:, 1], verts[:, 2]
    v["r"], v["g"], v["b"] = colors[:, 0], colors[:, 1], colors[:, 2]
    fdt = np.dtype([("n", "u1"), ("v", "<i4", (3,))])
    f = np.empty(len(tris), dtype=fdt)
    f["n"] = 3
    f["v"] = tris
    return head + v.tobytes() + f.tobytes()


def glb_bytes(
    verts: np.ndarray, tris: np.ndarray, colors: np.ndarray, name: str = "terrain"
) -> bytes:
    """A glTF 2.0 binary: one mesh, POSITION + COLOR_0 (float RGB) + uint32 indices; y-up."""
    pos = np.ascontiguousarray(
        np.column_stack([verts[:, 0], verts[:, 2], -verts[:, 1]]), np.float32
    )
    col = np.ascontiguousarray(colors, np.float32) / np.float32(255.0)
    idx = np.ascontiguousarray(tris, np.uint32).ravel()
    blobs = [pos.tobytes(), col.astype(np.float32).tobytes(), idx.tobytes()]  # each a multiple of 4
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    gltf = {
        "asset": {"version": "2.0", "generator": "lossart terrain mesh export"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "materials": [
            {
                "name": "height colours",
                "pbrMetallicRoughness": {
                    "baseColorFactor": [1, 1, 1, 1],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.6,
                },
                "doubleSided": True,
            }
        ],
        "meshes": [
            {
                "name": name,
                "primitives": [
                    {
                        "attributes": {"POSITION": 0, "COLOR_0": 1},
                        "indices": 2,
                        "mode": 4,
                        "material": 0,
                    }
                ],
            }
        ],
        "buffers": [{"byteLength": int(offsets[-1])}],
        "bufferViews": [
            {
                "buffer": 0,
                "byteOffset": int(offsets[0]),
                "byteLength": len(blobs[0]),
                "target": 34962,
            },
            {
                "buffer": 0,
                "byteOffset": int(offsets[1]),
                "byteLength": len(blobs[1]),
                "target": 34962,
            },
            {
                "buffer": 0,
                "byteOffset": int(offsets[2]),
                "byteLength": len(blobs[2]),
                "target": 34963,
            },
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(pos),
                "type": "VEC3",
                "min": pos.min(axis=0).tolist(),
                "max": pos.max(axis=0).tolist(),
            },
            {"bufferView": 1, "componentType": 5126, "count": len(col), "type": "VEC3"},
            {"bufferView": 2, "componentType": 5125, "count": int(idx.size), "type": "SCALAR"},
        ],
    }
    js = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 4)
    binary = b"".join(blobs)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(js), b"JSON")
        + js
        + struct.pack("<I4s", len(binary), b"BIN\0")
        + binary
    )


def check_mesh_options(index: int | None, fmt: str | None, ascii: bool) -> str:
    """The mesh format to write (default ply), or one line naming the flag at fault; called
    before any work, so a bad combination never waits for a bundle to be rebuilt."""
    if index is None:
        if fmt is not None or ascii:
            given = f"--mesh-format {fmt}" if fmt is not None else "--ascii"
            raise LossartError(f"{given}: goes with --export-mesh FRAME (no mesh was asked for)")
        return "ply"
    fmt = "ply" if fmt is None else fmt
    if fmt not in FORMATS:
        raise LossartError(f"--mesh-format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if ascii and fmt != "ply":
        raise LossartError(f"--ascii: only PLY has an ascii form (--mesh-format {fmt})")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise LossartError(f"--export-mesh {index!r}: expected a frame index >= 0")
    return fmt


def export_frame_mesh(
    root: str | os.PathLike,
    index: int,
    fmt: str = "ply",
    ascii: bool = False,
    out: str | os.PathLike | None = None,
    z_scale: float = 1.0,
) -> Path:
    """Frame `index` of the bundle at `root` as ROOT/mesh/frame_XXXXX.ply|glb|obj|stl (or `out`)."""
    check_mesh_options(index, fmt, ascii)
    bundle = load_bundle(root)
    positions = {f.index: pos for pos, f in enumerate(bundle.frames)}
    if index not in positions:
        raise LossartError(f"--export-mesh: bundle {bundle.root} has no frame {index}")
    z = bundle.heights(positions[index])
    verts, tris = grid_mesh(z, bundle.x_range, bundle.y_range, z_scale)
    colors = height_colors(z, bundle.z_min, bundle.z_max)
    name = f"frame_{index:05d}"
    transform = bundle.transform
    if fmt == "ply":
        comment = (
            f"lossart terrain {name}: x, y plane coordinates, "
            f"z = {bundle.height_label()} x {z_scale:g}"
        )
        data = ply_bytes(verts, tris, colors, ascii=ascii, comment=comment)
    elif fmt == "gltf":
        data = glb_bytes(verts, tris, colors, name=name)
    else:
        what = f"lossart terrain {name}: z = {transform} loss x {z_scale:g}"
        if fmt == "obj":
            path = np.asarray(bundle.frames[positions[index]].path, np.float64)
            path = path.reshape(-1, 3) * np.array([1.0, 1.0, z_scale])
            data = mesh_obj_stl.obj_bytes(verts, tris, colors, path, comment=what + ", y up")
        else:
            base = (bundle.z_min - 0.1 * ((bundle.z_max - bundle.z_min) or 1.0)) * z_scale
            slab = mesh_obj_stl.solid_slab(verts, tris, z.shape, base)
            data = mesh_obj_stl.stl_bytes(*slab, header=what)
    target = Path(out) if out else bundle.root / "mesh" / f"{name}{SUFFIX[fmt]}"
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target
