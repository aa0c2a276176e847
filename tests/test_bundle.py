"""The terrain bundle: writer, reader, 16-bit PNG round trip, validator, meshes, and
`lossart terrain` end to end on a hand-built tiny run folder that follows the contracts."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lossart.cli import main
from lossart.errors import LossartError
from lossart.format.bundle import (
    BundleError,
    dequantize16,
    load_bundle,
    quantize16,
    sample_bilinear,
)
from lossart.format.png16 import read_png16
from lossart.terrain.bundle_validate import validate_bundle
from lossart.terrain.bundle_write import write_png16
from lossart.terrain.curve2d import curve_polyline
from lossart.terrain.heightfield import TerrainConfig
from lossart.terrain.mesh import export_frame_mesh
from lossart.terrain.synthetic import synthetic_bundle, synthetic_loss


@pytest.fixture
def bundle(tmp_path) -> Path:
    return synthetic_bundle(tmp_path / "terrain", frames=3, size=33)


def edit_manifest(root: Path, change) -> None:
    path = root / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


# ---------------------------------------------------------------- writer and reader


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(kind="plane3"),
        dict(curve_kind="polychain", frames=4),
        dict(frames=1),
        dict(config=TerrainConfig(upsample=2, frame_sigma=1.0, path_samples=30)),
    ],
)
def test_synthetic_bundles_are_valid(tmp_path, kwargs):
    root = synthetic_bundle(tmp_path / "b", **kwargs)
    report = validate_bundle(root)
    assert report.ok, report.problems
    b = load_bundle(root)
    assert b.manifest.schema_version == 1
    assert len(b.frames) == (1 if kwargs.get("kind") == "plane3" else kwargs.get("frames", 3))


def test_heights_share_one_range_and_nonfinite_is_counted(bundle):
    b = load_bundle(bundle)
    zs = [b.heights(i) for i in range(len(b.frames))]
    assert min(z.min() for z in zs) == pytest.approx(b.z_min)
    assert max(z.max() for z in zs) == pytest.approx(b.z_max)
    assert all(z.dtype == np.float32 and np.isfinite(z).all() for z in zs)
    assert b.frames[0].nonfinite == 4 and b.frames[1].nonfinite == 0


def test_png_round_trip_is_lossless_to_half_a_step(bundle, tmp_path):
    b = load_bundle(bundle)
    step = (b.z_max - b.z_min) / 65535
    for i in range(len(b.frames)):
        z = b.heights(i)
        p = read_png16(b.frames[i].heights_png)
        assert p.dtype == np.uint16 and p.shape == z.shape
        np.testing.assert_array_equal(p, quantize16(z, b.z_min, b.z_max))  # exact codes
        assert np.abs(b.png_heights(i) - z).max() <= step / 2 * (1 + 1e-3) + 1e-7
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    write_png16(tmp_path / "all.png", values)
    np.testing.assert_array_equal(read_png16(tmp_path / "all.png"), values)
    assert np.abs(dequantize16(values, -1.0, 2.0)[0, :2] - [-1.0, -1.0 + 3 / 65535]).max() < 1e-6


def test_png16_reads_pillow_files_and_pillow_reads_ours(tmp_path):
    """Bundles written before the codec moved into the add-on (Pillow: Sub/Up/Paeth rows) open."""
    from PIL import Image

    from lossart.format.png16 import decode_png16, encode_png16

    y, x = np.mgrid[0:40, 0:57]
    smooth = (32000 + 20000 * np.sin(x / 7.0) * np.cos(y / 5.0)).astype(np.uint16)
    noisy = np.random.default_rng(5).integers(0, 65536, (23, 31)).astype(np.uint16)
    for values in (smooth, noisy, np.zeros((1, 1), np.uint16)):
        Image.fromarray(values).save(tmp_path / "pil.png", format="PNG", compress_level=1)
        np.testing.assert_array_equal(read_png16(tmp_path / "pil.png"), values)
        (tmp_path / "ours.png").write_bytes(encode_png16(values))
        with Image.open(tmp_path / "ours.png") as image:
            np.testing.assert_array_equal(np.asarray(image), values)
        np.testing.assert_array_equal(decode_png16(encode_png16(values)), values)
    # Pillow never writes the Average filter (3); other encoders may: rows built by hand
    raw = noisy[:5, :6].astype(">u2").view(np.uint8).reshape(5, 12).astype(int)
    rows = b""
    for r in range(5):
        prev = raw[r - 1] if r else np.zeros(12, int)
        left = np.concatenate([[0, 0], raw[r, :-2]])
        rows += bytes([3]) + bytes(((raw[r] - (left + prev) // 2) % 256).tolist())
    chunk = lambda tag, body: (  # noqa: E731
        struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    )
    average = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 5, 16, 0, 0, 0, 0))
    average += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    np.testing.assert_array_equal(decode_png16(average), noisy[:5, :6])
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(BundleError, match="rgb.png: expected a 16-bit grayscale PNG"):
        read_png16(tmp_path / "rgb.png")
    data = bytearray(encode_png16(smooth))
    data[-20] ^= 0xFF  # inside the IDAT chunk
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="bad.png: truncated or corrupt PNG"):
        read_png16(tmp_path / "bad.png")


def test_path_follows_the_curve_on_the_surface(bundle):
    b = load_bundle(bundle)
    for i, frame in enumerate(b.frames):
        path, cp = frame.path, frame.control_points
        assert len(path) == b.manifest.path_samples
        np.testing.assert_allclose(path[:, :2], curve_polyline(cp, "bezier", len(path)), atol=1e-5)
        surface = sample_bilinear(b.heights(i), b.x_range, b.y_range, path[:, :2])
        np.testing.assert_allclose(path[:, 2], surface, atol=1e-5)
        np.testing.assert_array_equal(frame.bends, cp[1:-1])
        names = {p.name: p for p in frame.points}
        assert names["w1"].xy == tuple(cp[0])
        assert names["w1"].loss == pytest.approx(0.01, abs=1e-6)  # the synthetic minimum


def test_rewrite_removes_stale_frames(tmp_path):
    root = synthetic_bundle(tmp_path / "b", frames=4)
    synthetic_bundle(root, frames=2)
    assert sorted(p.name for p in (root / "heights").iterdir()) == [
        "frame_00000.npy",
        "frame_00000.png",
        "frame_00001.npy",
        "frame_00001.png",
    ]
    assert validate_bundle(root).ok


def test_manifest_records_the_height_mapping_and_relief(tmp_path):
    cfg = TerrainConfig(sigma=0.0, path_samples=20)  # unsmoothed: wells keep their bottoms
    bundle = synthetic_bundle(tmp_path / "b", frames=2, size=33, config=cfg)
    m = load_bundle(bundle).manifest
    h = m.height
    assert h.transform == "log10-excess"
    lowest = h.mapping.loss_min
    assert h.mapping.offset == pytest.approx(0.02 * (h.loss_cap - lowest))
    assert lowest == pytest.approx(0.01, rel=1e-3)  # the synthetic minima, on grid nodes
    # the lowest loss is the lowest height: the optima, on grid nodes, at the very bottom
    b = load_bundle(bundle)
    assert h.z_min == pytest.approx(np.log10(h.mapping.offset), abs=1e-6)
    for frame in b.frames:
        assert [p.z for p in frame.points] == pytest.approx([h.z_min] * 2, abs=1e-6)
    width = m.grid.x_range[1] - m.grid.x_range[0]
    assert h.relief.share == 0.2
    assert h.relief.exaggeration == pytest.approx(0.2 * width / (h.z_max - h.z_min))


def test_bundles_without_mapping_or_relief_still_open(bundle):
    """Bundles written before height.mapping and height.relief: log10, the default relief."""
    from lossart.format.bundle import DEFAULT_RELIEF

    def old(m):
        m["height"].update(transform="log10")
        m["height"].pop("mapping")
        m["height"].pop("relief")
        m["grid"].pop("dtype")  # bundles before the grids' precision was recorded

    edit_manifest(bundle, old)
    assert validate_bundle(bundle).ok
    b = load_bundle(bundle)
    assert b.relief == DEFAULT_RELIEF and b.loss_of(np.array([0.0]))[0] == pytest.approx(1.0)
    # an excess bundle must say what its heights are measured from
    edit_manifest(bundle, lambda m: m["height"].update(transform="log10-excess"))
    with pytest.raises(BundleError, match="needs height.mapping"):
        load_bundle(bundle)


def test_reader_refuses_newer_schema_and_other_files(bundle, tmp_path):
    edit_manifest(bundle, lambda m: m.update(schema_version=2))
    with pytest.raises(BundleError, match="schema_version 2 is newer"):
        load_bundle(bundle)
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(tmp_path)


# ---------------------------------------------------------------- the validator


def _drop_npy(root):
    (root / "heights" / "frame_00001.npy").unlink()


def _wrong_shape(root):
    np.save(root / "heights" / "frame_00002.npy", np.zeros((10, 12), np.float32))


def _nan(root):
    z = np.load(root / "heights" / "frame_00000.npy")
    z[3, 4] = np.nan
    np.save(root / "heights" / "frame_00000.npy", z)


def _grid_size(root):
    edit_manifest(root, lambda m: m["grid"].update(width=40))


def _order(root):
    edit_manifest(root, lambda m: m["frames"][2].update(index=0))


def _outside(root):
    edit_manifest(root, lambda m: m["frames"][1]["path"][5].__setitem__(0, 99.0))


def _png(root):
    z = np.load(root / "heights" / "frame_00001.npy")
    write_png16(root / "heights" / "frame_00001.png", np.zeros(z.shape, np.uint16))


def _z_off_surface(root):
    edit_manifest(root, lambda m: m["frames"][0]["points"][0].update(z=5.0))


def _missing_key(root):
    edit_manifest(root, lambda m: m["height"].pop("z_max"))


def _no_offset(root):
    edit_manifest(root, lambda m: m["height"]["mapping"].update(offset=0.0))


def _low_min(root):
    edit_manifest(root, lambda m: m["height"]["mapping"].update(loss_min=1e-9))


def _relief(root):
    edit_manifest(root, lambda m: m["height"]["relief"].update(exaggeration=1.0))


@pytest.mark.parametrize(
    "breaker, message",
    [
        (_drop_npy, "frame 1: heights_npy file heights/frame_00001.npy is missing"),
        (_wrong_shape, "frame 2: heights/frame_00002.npy has shape (10, 12)"),
        (_nan, "frame 0: heights/frame_00000.npy has 1 NaN/inf heights"),
        (_grid_size, "grid: width 40 must be"),
        (_order, "frames out of order: index 0 after 1"),
        (_outside, "frame 1: path: 1 point(s) outside the window"),
        (_png, "frame 1: heights/frame_00001.png differs"),
        (_z_off_surface, "point w1"),
        (_missing_key, "height.z_max: missing (expected a number)"),
        (_no_offset, "height.mapping.offset: 0.0: expected a number > 0 for log10-excess"),
        (_low_min, "height.mapping: loss_min 1e-09 must lie in [loss_floor, loss_cap]"),
        (_relief, "height.relief: exaggeration 1 must be share * window width"),
    ],
)
def test_validator_names_what_is_wrong(bundle, breaker, message, capsys):
    breaker(bundle)
    report = validate_bundle(bundle)
    assert not report.ok
    assert any(message in p for p in report.problems), report.problems
    assert main(["validate", str(bundle)]) == 1
    assert message in capsys.readouterr().out


def test_validate_cli_exit_codes(bundle, capsys):
    assert main(["validate", str(bundle)]) == 0
    assert "valid terrain bundle, 3 frame(s) of 33x33" in capsys.readouterr().out
    edit_manifest(bundle, lambda m: m.update(schema_version=7))
    assert main(["validate", str(bundle / "manifest.json")]) == 2
    assert "newer than this lossart knows" in capsys.readouterr().err


# ---------------------------------------------------------------- meshes


def read_ply(path: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode().splitlines()
    counts = {ln.split()[1]: int(ln.split()[2]) for ln in header if ln.startswith("element")}
    vdt = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")]
    )
    if "format ascii 1.0" in header:
        rows = data[end:].decode().split("\n")
        v = np.array([r.split() for r in rows[: counts["vertex"]]], dtype=np.float64)
        f = np.array(
            [r.split() for r in rows[counts["vertex"] : counts["vertex"] + counts["face"]]],
            dtype=np.int64,
        )
        return counts, v[:, :3], f[:, 1:]
    v = np.frombuffer(data, dtype=vdt, count=counts["vertex"], offset=end)
    fdt = np.dtype([("n", "u1"), ("v", "<i4", (3,))])
    f = np.frombuffer(data, dtype=fdt, count=counts["face"], offset=end + v.nbytes)
    assert (f["n"] == 3).all() and end + v.nbytes + f.nbytes == len(data)
    return counts, np.column_stack([v["x"], v["y"], v["z"]]), f["v"]


@pytest.mark.parametrize("ascii", [False, True])
def test_ply_export_holds_the_heights(bundle, ascii):
    path = export_frame_mesh(bundle, 1, fmt="ply", ascii=ascii)
    counts, verts, faces = read_ply(path)
    z = load_bundle(bundle).heights(1)
    assert counts == {"vertex": z.size, "face": 2 * 32 * 32}
    np.testing.assert_allclose(verts[:, 2], z.ravel(), atol=1e-6)
    assert faces.max() == z.size - 1
    # triangles face up (+z): counter-clockwise seen from above
    a, b, c = (verts[faces[:, k], :2] for k in range(3))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    assert (cross > 0).all()


def test_glb_export_is_a_well_formed_gltf(bundle):
    path = export_frame_mesh(bundle, 2, fmt="gltf")
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    jlen, jtype = struct.unpack_from("<I4s", data, 12)
    gltf = json.loads(data[20 : 20 + jlen])
    blen, btype = struct.unpack_from("<I4s", data, 20 + jlen)
    assert jtype == b"JSON" and btype == b"BIN\0" and blen == gltf["buffers"][0]["byteLength"]
    pos_acc, col_acc, idx_acc = gltf["accessors"]
    assert pos_acc["count"] == col_acc["count"] == 33 * 33 and idx_acc["count"] == 3 * 2 * 32 * 32
    binary = data[28 + jlen :]
    view = gltf["bufferViews"][0]
    pos = np.frombuffer(
        binary, np.float32, count=3 * pos_acc["count"], offset=view["byteOffset"]
    ).reshape(-1, 3)
    np.testing.assert_allclose(pos.min(0), pos_acc["min"])
    np.testing.assert_allclose(pos[:, 1], load_bundle(bundle).heights(2).ravel(), atol=1e-6)  # y-up


def test_mesh_export_rejects_unknown_frame_and_format(bundle):
    with pytest.raises(LossartError, match="no frame 9"):
        export_frame_mesh(bundle, 9)
    with pytest.raises(LossartError, match="--mesh-format"):
        export_frame_mesh(bundle, 0, fmt="fbx")


# ---------------------------------------------------------------- lossart terrain on a run folder

SIZE = 21


def make_curve_run(root: Path, frames: int = 3, size: int = SIZE) -> Path:
    """A tiny curve run per docs/architecture.md: run.json, endpoints, frames, grids (synthetic
    losses, written through lossart.grid.files as `lossart grid` writes them)."""
    import torch

    from lossart.data import DataSpec
    from lossart.geometry.plane import control_points_2d
    from lossart.grid.files import FrameGrid, FrameMeta, GridMeta, write_frame_grid, write_grid_meta
    from lossart.grid.planes import curve_window, frame_plane
    from lossart.models import ModelSpec, create_model
    from lossart.runs import Run
    from lossart.training.checkpoint import Checkpoint, save_checkpoint
    from lossart.training.curve_run import load_curve_run

    run = Run(root)
    spec = ModelSpec("mlp", num_classes=2, input_shape=(2,), kwargs={"width": 4, "depth": 1})
    data = DataSpec("blobs2d")
    run.write({"kind": "curve", "model": spec.to_dict(), "data": data.to_dict()})
    g = torch.Generator().manual_seed(0)
    states = []
    for name in ("w1", "w2"):
        model = create_model(spec)
        sd = {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}
        states.append(sd)
        save_checkpoint(
            Checkpoint(model=spec, data=data, state_dict=sd), run.endpoints / f"{name}.pt"
        )
    (run.curve / "frames").mkdir(parents=True)
    w1 = torch.cat([v.flatten() for v in states[0].values()])
    w2 = torch.cat([v.flatten() for v in states[1].values()])
    records = []
    for i in range(frames):
        bend = (w1 + w2) / 2 + (0.5 + 0.5 * i) * torch.randn(w1.shape, generator=g)
        torch.save({"bends": bend[None]}, run.curve / "frames" / f"frame_{i:05d}.pt")
        records.append(
            {
                "index": i,
                "step": 10 * i,
                "epoch": 0.5 * i,
                "train_loss": 1.0 / (i + 1),
                "file": f"frames/frame_{i:05d}.pt",
            }
        )
    (run.curve / "frames.json").write_text(
        json.dumps(
            {"curve": {"kind": "bezier", "bends": 1}, "total_steps": 10 * frames, "frames": records}
        )
    )
    curve_run = load_curve_run(run)
    window = curve_window(curve_run)
    xs = np.linspace(*window.x_range, size)
    ys = np.linspace(*window.y_range, size)
    run.grids.mkdir()
    for i in range(frames):
        fr = curve_run.frames[i]
        cp = control_points_2d(frame_plane(curve_run, i), curve_run.w1, fr.bends, curve_run.w2)
        loss = synthetic_loss(cp, size, "bezier", window.x_range, window.y_range)
        if i == 1:
            loss[0, :3] = np.nan
        points = {"w1": tuple(cp[0]), "w2": tuple(cp[-1])}
        meta = FrameMeta(i, fr.step, fr.epoch, fr.train_loss, cp, points)
        write_frame_grid(run.grids, FrameGrid(i, loss, 1 - loss / 3, xs, ys, meta))
    write_grid_meta(
        run.grids,
        GridMeta(
            "curve", (size, size), window.x_range, window.y_range, 64, "train", "float32", size,
            list(range(frames)), curve={"kind": "bezier", "bends": 1},
        ),
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def curve_run_dir(tmp_path_factory) -> Path:
    return make_curve_run(tmp_path_factory.mktemp("run") / "run")


@pytest.fixture
def run_dir(curve_run_dir, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(curve_run_dir, target)
    return target


def test_terrain_height_flags_are_recorded(run_dir, capsys):
    assert main(["terrain", str(run_dir), "--sigma", "0"]) == 0
    out = capsys.readouterr().out
    h = load_bundle(run_dir / "terrain").manifest.height
    assert h.transform == "log10-excess" and "log10-excess above loss" in out
    losses = [np.load(p)["loss"] for p in sorted((run_dir / "grids").glob("frame_*.npz"))]
    assert h.mapping.loss_min == pytest.approx(min(np.nanmin(x) for x in losses), rel=1e-6)
    args = ["terrain", str(run_dir), "--transform", "log10", "--relief", "0.3"]
    assert main(args) == 0
    b = load_bundle(run_dir / "terrain")
    h = b.manifest.height
    assert h.transform == "log10" and h.mapping.offset == 0.0
    assert b.relief == 0.3 and validate_bundle(run_dir / "terrain").ok
    assert main(["terrain", str(run_dir), "--excess-offset", "0"]) == 2  # at parse time
    assert "--excess-offset 0: expected a number in (0, 1]" in capsys.readouterr().err


def test_terrain_command_end_to_end(run_dir, capsys):
    args = [
        "terrain",
        str(run_dir),
        "--sigma",
        "0.8",
        "--path-samples",
        "50",
        "--preview",
        "--export-mesh",
        "2",
        "--mesh-format",
        "gltf",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "3 frame(s) of 21x21" in out and "3 non-finite grid point(s)" in out
    terrain = run_dir / "terrain"
    assert main(["validate", str(terrain)]) == 0
    m = json.loads((terrain / "manifest.json").read_text())  # as written
    assert m["kind"] == "curve" and m["curve"] == {"kind": "bezier", "bends": 1}
    assert m["source_run"] == str(run_dir.resolve())
    grid_json = json.loads((run_dir / "grids" / "grid.json").read_text())
    assert m["grid"]["dtype"] == grid_json["dtype"]  # a picture says how it was computed
    assert [f["step"] for f in m["frames"]] == [0, 10, 20]
    assert m["frames"][1]["nonfinite"] == 3 and m["frames"][2]["train_loss"] == pytest.approx(1 / 3)
    for frame in m["frames"]:
        cp = np.array(frame["control_points"])
        assert cp[0] == pytest.approx([0.0, 0.0], abs=1e-6) and cp[-1][1] == pytest.approx(
            0.0, abs=1e-5
        )
        assert frame["points"][0]["loss"] < 0.2  # w1 sits in the synthetic well
    assert sorted(p.name for p in (terrain / "preview").iterdir()) == [
        f"frame_{i:05d}.png" for i in range(3)
    ]
    assert (terrain / "mesh" / "frame_00002.glb").is_file()
    history = json.loads((run_dir / "run.json").read_text())["commands"]
    assert history[-1]["command"] == "terrain"


def test_single_frame_run(tmp_path):
    run = make_curve_run(tmp_path / "one", frames=1, size=9)
    assert main(["terrain", str(run), "--frame-sigma", "2"]) == 0
    assert validate_bundle(run / "terrain").ok


def _all_nan(run):
    with np.load(run / "grids" / "frame_00001.npz") as d:
        arrays = dict(d)
    arrays["loss"][:] = np.nan
    np.savez(run / "grids" / "frame_00001.npz", **arrays)


def _mismatch(run):
    np.savez(
        run / "grids" / "frame_00002.npz",
        loss=np.ones((5, 6), np.float32),
        accuracy=np.ones((5, 6), np.float32),
        xs=np.linspace(0, 1, 6),
        ys=np.linspace(0, 1, 5),
    )


def _missing(run):
    (run / "grids" / "frame_00001.npz").unlink()


def _no_grids(run):
    shutil.rmtree(run / "grids")


@pytest.mark.parametrize(
    "breaker, message",
    [
        (_all_nan, "frame_00001.npz: every loss of frame 1 is NaN/inf"),
        (_mismatch, "frame_00002.npz: grid is 6x5 but frame 0's is 21x21"),
        (_missing, "frame_00001.npz: grid of frame 1 is missing"),
        (_no_grids, "no grids/ folder"),
    ],
)
def test_terrain_bad_input_is_one_clear_line(run_dir, breaker, message, capsys):
    breaker(run_dir)
    assert main(["terrain", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (run_dir / "terrain" / "manifest.json").exists()


def test_plane3_run(tmp_path):
    """A plane-of-three run (as `lossart plane` writes it): one frame, no path, three points."""
    from lossart.grid.files import FrameGrid, FrameMeta, GridMeta, write_frame_grid, write_grid_meta
    from lossart.runs import Run

    run = Run(tmp_path / "p3")
    pts = {"w1": [0.0, 0.0], "w2": [10.0, 0.0], "w3": [4.0, 5.0]}
    run.write({"kind": "plane3", "plane3": {"points": pts}})
    xs, ys = np.linspace(-3, 13, 17), np.linspace(-6, 6, 13)
    loss = synthetic_loss(
        np.array([pts["w1"], pts["w3"], pts["w2"]]), (13, 17), "polychain", (-3, 13), (-6, 6)
    )
    named = {name: tuple(xy) for name, xy in pts.items()}
    meta = FrameMeta(0, 0, 0.0, None, np.zeros((0, 2)), named)
    write_frame_grid(run.grids, FrameGrid(0, loss, loss, xs, ys, meta))
    spec = GridMeta("plane3", (17, 13), (-3.0, 13.0), (-6.0, 6.0), 64, "train", "float32", 13, [0])
    write_grid_meta(run.grids, spec)
    assert main(["terrain", str(run.root), "--loss-cap", "2.0", "--sigma", "0"]) == 0
    assert validate_bundle(run.terrain).ok
    m = json.loads((run.terrain / "manifest.json").read_text())  # as written
    assert m["kind"] == "plane3" and m["curve"] is None and m["path_samples"] == 0
    assert m["height"]["loss_cap"] == 2.0 and m["height"]["cap_quantile"] is None
    frame = m["frames"][0]
    assert frame["path"] == [] and frame["control_points"] == [] and frame["train_loss"] is None
    assert {p["name"]: p["xy"] for p in frame["points"]} == pts
    losses = {p["name"]: p["loss"] for p in frame["points"]}
    assert losses["w1"] == pytest.approx(0.01, abs=1e-6) == losses["w2"]  # minima on grid nodes
    assert losses["w3"] < 0.35  # on the valley, on a grid node


def test_frames_option_leaves_a_bad_frame_out(run_dir):
    _all_nan(run_dir)
    assert main(["terrain", str(run_dir), "--select-frames", "0,2"]) == 0
    m = load_bundle(run_dir / "terrain").manifest
    assert [f.index for f in m.frames] == [0, 2]
    assert validate_bundle(run_dir / "terrain").ok


def steep_far_bundle(root: Path) -> Path:
    """A steep ramp far from the origin: 7-digit coordinates move the surface height visibly."""
    from lossart.terrain.bundle_write import BundleFrame, BundleSpec, NamedPoint, write_bundle

    x_range, y_range = (1000.0, 1001.0), (-0.5, 0.5)
    z = np.tile(np.arange(201, dtype=np.float32), (11, 1))  # z = 200 * (x - 1000)
    cp = np.array([[1000.0123456789, 0.0], [1000.5123456789, 0.4], [1000.9876543219, 0.0]])
    cfg = TerrainConfig(transform="log10", sigma=0.0, path_samples=57)  # z as given
    spec = BundleSpec(
        "curve", {"kind": "bezier", "bends": 1}, x_range, y_range, (11, 201), cfg, 5.0
    )
    points = [NamedPoint("w1", tuple(cp[0]), 0.1), NamedPoint("w2", tuple(cp[-1]), 0.1)]
    write_bundle(root, spec, [BundleFrame(0, 0, 0.0, 1.0, z, 0, cp, points)])
    return root


def test_heights_are_sampled_at_the_stored_coordinates(tmp_path):
    root = steep_far_bundle(tmp_path / "b")
    report = validate_bundle(root)
    assert report.ok, report.problems
    b = load_bundle(root)
    path = b.frames[0].path
    np.testing.assert_allclose(path[:, 2], 200 * (path[:, 0] - 1000), rtol=1e-6, atol=1e-6)
    w1 = b.frames[0].points[0]
    assert w1.z == pytest.approx(200 * (w1.xy[0] - 1000), rel=1e-6)


STANDALONE = """
import importlib.abc, sys
import numpy as np

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('lossart', 'torch', 'bpy', 'scipy', 'PIL'):
            raise ImportError('blocked: ' + name)

sys.meta_path.insert(0, Refuse())
sys.path.insert(0, ROOT)
from format.bundle import load_bundle

b = load_bundle(BUNDLE)
assert np.abs(b.png_heights(1) - b.heights(1)).max() < (b.z_max - b.z_min) / 65535
assert np.array_equal(b.png_heights(1), np.load(WANT))
print('STANDALONE', len(b.frames), b.frames[0].path.shape)
"""


def test_the_format_reads_bundles_without_lossart(tmp_path):
    """What the zip carries of lossart (lossart/format, copied as the add-on build does) reads a
    bundle lossart wrote with numpy + json alone."""
    import subprocess
    import sys

    import lossart.format as fmt
    from lossart.terrain.bundle_write import BundleFrame, BundleSpec, NamedPoint, write_bundle

    shutil.copytree(Path(fmt.__file__).parent, tmp_path / "format",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cfg = SimpleNamespace(transform="log10", loss_floor=1e-4, loss_cap=2.0, cap_quantile=None,
                          sigma=0.0, frame_sigma=0.0, upsample=1, path_samples=20)
    x, y = np.meshgrid(np.linspace(-1, 11, 25), np.linspace(-4, 4, 17))
    cp = np.array([[0.0, 0.0], [5.0, 2.0], [10.0, 0.0]])
    points = [NamedPoint("w1", (0.0, 0.0), 0.1), NamedPoint("w2", (10.0, 0.0), 0.1)]
    frames = [BundleFrame(i, 10 * i, 0.5 * i, 1.0, (0.01 * x * y + i).astype(np.float32), 0, cp,
                          points) for i in range(2)]
    spec = BundleSpec("curve", {"kind": "bezier", "bends": 1}, (-1.0, 11.0), (-4.0, 4.0),
                      (17, 25), cfg, 2.0)
    out = tmp_path / "b"
    write_bundle(out, spec, frames, total=2)
    assert validate_bundle(out).ok
    np.save(tmp_path / "want.npy", load_bundle(out).png_heights(1))
    code = (f"ROOT, BUNDLE, WANT = {str(tmp_path)!r}, {str(out)!r}, "
            f"{str(tmp_path / 'want.npy')!r}\n" + STANDALONE)
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert "STANDALONE 2 (20, 3)" in res.stdout, (res.stdout + res.stderr)[-3000:]
