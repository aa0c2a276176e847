"""OBJ and STL export of a bundle frame, read back with a real mesh reader (trimesh)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lossart.format.bundle import load_bundle
from lossart.terrain.mesh import export_frame_mesh
from lossart.terrain.synthetic import synthetic_bundle

trimesh = pytest.importorskip("trimesh")  # the `test` extra installs it

SIZE = 17


@pytest.fixture
def bundle(tmp_path) -> Path:
    return synthetic_bundle(tmp_path / "terrain", frames=3, size=SIZE)


def test_obj_holds_the_grid_colours_and_path(bundle):
    path = export_frame_mesh(bundle, 1, fmt="obj")
    assert path == bundle / "mesh" / "frame_00001.obj"
    mesh = trimesh.load(path, process=False)
    assert mesh.vertices.shape == (SIZE * SIZE, 3)
    assert mesh.faces.shape == (2 * (SIZE - 1) ** 2, 3)
    assert mesh.visual.kind == "vertex"
    b = load_bundle(bundle)
    heights = b.heights(1).ravel()
    np.testing.assert_allclose(mesh.vertices[:, 1], heights, atol=1e-5)  # y up, as glTF
    assert (mesh.face_normals[:, 1] > 0).all()  # faces point up
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("l ")]
    assert len(lines) == 1
    ids = [int(i) for i in lines[0].split()[1:]]
    samples = len(b.frames[1].path)
    assert ids == list(range(SIZE * SIZE + 1, SIZE * SIZE + samples + 1))


def test_stl_is_a_watertight_slab_with_outward_normals(bundle):
    path = export_frame_mesh(bundle, 2, fmt="stl")
    assert path.suffix == ".stl"
    raw = trimesh.load(path, process=False)
    border = 4 * (SIZE - 1)
    faces = 2 * (SIZE - 1) ** 2 + 2 * border + border  # surface, walls, bottom fan
    assert raw.faces.shape == (faces, 3)
    assert path.stat().st_size == 84 + 50 * faces
    mesh = trimesh.load(path)  # merged vertices
    assert mesh.vertices.shape == (SIZE * SIZE + border + 1, 3)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    stored = np.frombuffer(path.read_bytes()[84:], dtype=[("n", "<f4", (3,)), ("r", "V38")])
    np.testing.assert_allclose(stored["n"], raw.face_normals, atol=1e-5)
    assert not path.read_bytes()[:5].lower().startswith(b"solid")


def test_cli_offers_obj_and_stl():
    from lossart.cli import build_parser

    args = build_parser().parse_args(["terrain", "RUN", "--export-mesh", "0", "--mesh-format", "stl"])
    assert args.mesh_format == "stl"
