"""Every bad input gives one line: exit status 2, one stderr line naming the flag or file, no
traceback, and every file that existed before is byte-identical after (nothing new either).

Table-driven over the classes of the reliability issue: F4 (values silently accepted: ranges and
finiteness of flags, NaN weights, out-of-range labels), F5 (tracebacks: output locations of the
wrong type, malformed metadata) and F6 (misleading or late errors). The fixtures are built once
per module: a tiny hand-made curve run (smallcnn of width 4 on the built-in shapes), its 5x5
grids and its terrain bundle.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from grid_fixtures import make_curve_run

from lossart.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """ws/run (endpoints, 3 frames, grids 5x5, terrain), a file, a folder, a data npz."""
    ws = tmp_path_factory.mktemp("bad_input")
    run = make_curve_run(ws / "run", frames=3)
    assert main(["grid", str(run.root), "--resolution", "5", "--subset", "32"]) == 0
    assert main(["terrain", str(run.root)]) == 0
    (ws / "file.txt").write_text("a file\n")
    (ws / "adir").mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    np.savez(ws / "good.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    ck = torch.load(run.endpoints / "w1.pt", weights_only=True)
    torch.save(ck["state_dict"], ws / "sd.pt")  # a plain state_dict (smallcnn width 4, shapes)
    (ws / "rand.pt").write_bytes(np.random.default_rng(1).bytes(3000))  # random bytes
    from lossart.training.endpoints import TrainConfig, train_endpoint

    train_endpoint(TrainConfig(data="shapes", model="smallcnn", model_kwargs={"width": 4},
                               epochs=1, batch_size=512, snapshots=3, out=str(ws / "snap.pt"),
                               progress=False))  # fmt: skip
    return ws


@pytest.fixture
def ws(base, tmp_path) -> Path:
    """A private copy of the workspace for one case (cases may break files on purpose)."""
    dest = tmp_path / "ws"
    shutil.copytree(base, dest)
    return dest


def snapshot(root: Path) -> dict[str, str]:
    """Every file's sha256 and every folder: a failed command must leave no half-made run."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


# ---------------------------------------------------------------- setups: break one thing


def _json(path: Path, edit: Callable[[object], object]) -> None:
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _set(key, value):
    def edit(d):
        d[key] = value
        return d

    return edit


def _drop(key):
    def edit(d):
        d.pop(key, None)
        return d

    return edit


def nan_endpoint(ws: Path) -> None:
    ck = torch.load(ws / "run/endpoints/w1.pt", weights_only=True)
    name = next(iter(ck["state_dict"]))
    ck["state_dict"][name] = ck["state_dict"][name].clone().fill_(float("nan"))
    torch.save(ck, ws / "nan.pt")


def inf_endpoint(ws: Path) -> None:
    ck = torch.load(ws / "run/endpoints/w2.pt", weights_only=True)
    name = list(ck["state_dict"])[-1]
    ck["state_dict"][name] = ck["state_dict"][name].clone().fill_(float("inf"))
    torch.save(ck, ws / "inf.pt")


def nan_bends(ws: Path) -> None:
    path = ws / "run/curve/frames/frame_00001.pt"
    d = torch.load(path, weights_only=True)
    d["bends"][0, 3] = float("nan")
    torch.save(d, path)
    shutil.rmtree(ws / "run/grids")


def wide_bends(ws: Path) -> None:
    path = ws / "run/curve/frames/frame_00001.pt"
    d = torch.load(path, weights_only=True)
    torch.save({"bends": torch.cat([d["bends"], d["bends"]], 1)}, path)
    shutil.rmtree(ws / "run/grids")


def string_loss(ws: Path) -> None:
    path = ws / "run/grids/frame_00001.npz"
    with np.load(path) as z:
        arrays = dict(z)
    arrays["loss"] = arrays["loss"].astype(str)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    shutil.rmtree(ws / "run/terrain")


def bad_labels(ws: Path) -> None:
    with np.load(ws / "good.npz") as z:
        arrays = dict(z)
    arrays["y_train"][5] = 100000
    np.savez(ws / "bad.npz", **arrays)


def nan_features(ws: Path) -> None:
    with np.load(ws / "good.npz") as z:
        arrays = dict(z)
    arrays["x_train"][3, 1] = np.nan
    np.savez(ws / "bad.npz", **arrays)


def nan_state_dict(ws: Path) -> None:
    sd = torch.load(ws / "sd.pt", weights_only=True)
    sd[next(iter(sd))].fill_(float("nan"))
    torch.save(sd, ws / "sd_nan.pt")


def list_state_dict(ws: Path) -> None:
    torch.save([1, 2, 3], ws / "list.pt")


def labels(y_train=None, y_test=None, classes=None, name="bad.npz"):
    def setup(ws: Path) -> None:
        with np.load(ws / "good.npz") as z:
            arrays = dict(z)
        if y_train is not None:
            arrays["y_train"] = y_train(arrays["y_train"])
        if y_test is not None:
            arrays["y_test"] = y_test(arrays["y_test"])
        if classes is not None:
            arrays["classes"] = np.array(classes)
        np.savez(ws / name, **arrays)

    return setup


def zero_pixel_npz(ws: Path) -> None:
    x = np.zeros((8, 0, 0, 3), np.uint8)
    y = np.arange(8) % 2
    np.savez(ws / "bad.npz", x_train=x, y_train=y, x_test=x, y_test=y)


def snapshot_file(index: int, edit):
    def setup(ws: Path) -> None:
        path = ws / "snap.pt.snapshots" / f"snapshot_{index:03d}.pt"
        d = torch.load(path, weights_only=True)
        torch.save(edit(d), path)

    return setup


def _nan_params(d):
    d["params"] = d["params"].clone().fill_(float("nan"))
    return d


def folder_layout(kind: str):
    def setup(ws: Path) -> None:
        root = ws / "imgs"
        if kind == "flat":
            root.mkdir()
            (root / "a.png").write_bytes(b"x")
        elif kind == "garbage-image":
            for split in ("train", "val"):
                (root / split / "cat").mkdir(parents=True)
                (root / split / "cat" / "a.png").write_bytes(b"not a png")

    return setup


def grids_a_file(ws: Path) -> None:
    shutil.rmtree(ws / "run/grids")
    (ws / "run/grids").write_text("not a folder")


def zip_a_folder(ws: Path) -> None:
    from lossart.render.addon_build import addon_manifest
    from lossart.render.job import addon_dir

    m = addon_manifest(addon_dir())
    (ws / "dist" / f"{m['id']}-{m['version']}.zip").mkdir(parents=True)


def report_list(ws: Path) -> None:
    (ws / "adir" / "demo.json").write_text("[1, 2]")


def smallcnn_endpoints(ws: Path) -> None:  # finding 1: endpoints of another model and data
    shutil.copy(ws / "run/endpoints/w1.pt", ws / "a.pt")
    shutil.copy(ws / "run/endpoints/w2.pt", ws / "b.pt")


def cifar_like_npz(ws: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (20, 32, 32, 3)).astype(np.uint8)
    y = np.arange(20) % 10
    np.savez(ws / "c10.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    smallcnn_endpoints(ws)


def missing_heights(ws: Path) -> None:
    heights = sorted((ws / "run/terrain/heights").glob("*.npy"))
    heights[-1].unlink()


def garbage_heights(ws: Path) -> None:
    heights = sorted((ws / "run/terrain/heights").glob("*.npy"))
    heights[-1].write_bytes(b"garbage")


def grid_json(edit):
    def setup(ws: Path) -> None:
        _json(ws / "run/grids/grid.json", edit)

    return setup


def run_json(edit):
    def setup(ws: Path) -> None:
        _json(ws / "run/run.json", edit)

    return setup


def frames_json(edit):
    def setup(ws: Path) -> None:
        _json(ws / "run/curve/frames.json", edit)

    return setup


def manifest(edit):
    def setup(ws: Path) -> None:
        _json(ws / "run/terrain/manifest.json", edit)

    return setup


def frame_field(key, value):
    def edit(d):
        d["frames"][1][key] = value
        return d

    return edit


def video_cache(ws: Path) -> None:
    cache = ws / "out_frames"
    cache.mkdir()
    (cache / "frames.json").write_text("{not json")


def garbage(rel: str, text: str = "garbage\x00\x01"):
    def setup(ws: Path) -> None:
        (ws / rel).write_text(text)

    return setup


def read_only_dir(ws: Path) -> None:
    (ws / "adir").chmod(0o555)


@dataclass
class Case:
    id: str
    cls: str  # F4 | F5 | F6
    argv: list[str]  # "{ws}" is the workspace
    names: str  # what the one line must name (a flag or a file)
    setup: Callable[[Path], None] | None = None
    reads: str = ""  # the kind of file broken: checkpoint, state_dict, snapshot, npz, ...
    never: str = ""  # what the line must not say (a misleading diagnosis)


R = "{ws}/run"
A, B = "{ws}/run/endpoints/w1.pt", "{ws}/run/endpoints/w2.pt"
FAKE_BLENDER = ["--blender", "{ws}/file.txt"]  # never reached: every case fails before Blender

CASES = [
    # F4: values accepted silently, giving wrong results
    Case("grid-margin-nan", "F4", ["grid", R, "--margin", "nan"], "--margin"),
    Case("grid-margin-inf", "F4", ["grid", R, "--margin", "inf"], "--margin"),
    Case("grid-margin-negative", "F4", ["grid", R, "--margin", "-0.5"], "--margin"),
    Case("grid-batch-points-0", "F4", ["grid", R, "--batch-points", "0"], "--batch-points"),
    Case("grid-tile-rows-neg", "F4", ["grid", R, "--tile-rows", "-1"], "--tile-rows"),
    Case("grid-subset-0", "F4", ["grid", R, "--subset", "0"], "--subset"),
    Case("grid-adaptive-0", "F4", ["grid", R, "--adaptive", "0"], "--adaptive"),
    Case("grid-adaptive-nan", "F4", ["grid", R, "--adaptive", "nan"], "--adaptive"),
    Case("grid-device-tpu", "F4", ["grid", R, "--device", "TPU"], "--device"),
    Case("train-threads-0", "F4", ["train", "--out", "{ws}/e.pt", "--threads", "0"], "--threads"),
    Case("train-threads-neg", "F4", ["train", "--out", "{ws}/e.pt", "--threads", "-2"], "--threads"),
    Case("train-device-banana", "F4", ["train", "--out", "{ws}/e.pt", "--device", "banana"], "--device"),
    Case("train-lr-nan", "F4", ["train", "--out", "{ws}/e.pt", "--lr", "nan"], "--lr"),
    Case("train-lr-inf", "F4", ["train", "--out", "{ws}/e.pt", "--lr", "inf"], "--lr"),
    Case("train-momentum-5", "F4", ["train", "--out", "{ws}/e.pt", "--momentum", "5"], "--momentum"),
    Case("train-epochs-0", "F4", ["train", "--out", "{ws}/e.pt", "--epochs", "0"], "--epochs"),
    Case("train-wd-nan", "F4", ["train", "--out", "{ws}/e.pt", "--wd", "nan"], "--wd"),
    Case("train-width-0", "F4",
         ["train", "--out", "{ws}/e.pt", "--model-arg", "width=0", "--epochs", "1"], "--model-arg"),
    Case("train-labels-out-of-range", "F4",
         ["train", "--data", "npz:{ws}/bad.npz", "--out", "{ws}/e.pt", "--epochs", "1"],
         "bad.npz", bad_labels),
    Case("train-nan-features", "F4",
         ["train", "--data", "npz:{ws}/bad.npz", "--out", "{ws}/e.pt", "--epochs", "1"],
         "bad.npz", nan_features),
    Case("curve-init-noise-nan", "F4", ["curve", A, B, "--out", "{ws}/c", "--init-noise", "nan"],
         "--init-noise"),
    Case("curve-lr-inf", "F4", ["curve", A, B, "--out", "{ws}/c", "--lr", "inf"], "--lr"),
    Case("curve-frames-1", "F4", ["curve", A, B, "--out", "{ws}/c", "--frames", "1"], "--frames"),
    Case("curve-bends-0", "F4", ["curve", A, B, "--out", "{ws}/c", "--bends", "0"], "--bends"),
    Case("curve-nan-endpoint", "F4", ["curve", "{ws}/nan.pt", B, "--out", "{ws}/c"], "nan.pt",
         nan_endpoint),
    Case("curve-inf-endpoint", "F4", ["curve", A, "{ws}/inf.pt", "--out", "{ws}/c"], "inf.pt",
         inf_endpoint),
    Case("grid-nan-bends", "F4", ["grid", R, "--resolution", "5", "--subset", "32"],
         "frame_00001.pt", nan_bends),
    Case("ensemble-subset-0", "F4", ["ensemble", R, "--subset", "0"], "--subset"),
    Case("ensemble-tolerance-neg", "F4", ["ensemble", R, "--tolerance", "-1"], "--tolerance"),
    Case("ensemble-points-1", "F4", ["ensemble", R, "--points", "1"], "--points"),
    Case("eval-curve-points-0", "F4", ["eval-curve", R, "--points", "0"], "--points"),
    Case("line-subset-neg", "F4", ["line", A, B, "--out", "{ws}/l", "--subset", "-5"], "--subset"),
    Case("hessian-subset-0", "F4", ["hessian", A, "--subset", "0"], "--subset"),
    Case("hessian-tol-2", "F4", ["hessian", A, "--tol", "2"], "--tol"),
    Case("hessian-trace-samples-1", "F4", ["hessian", A, "--trace-samples", "1"], "--trace-samples"),
    Case("hessian-out-file", "F5", ["hessian", A, "--out", "{ws}/file.txt"], "file.txt"),
    Case("hessian-garbage", "F5", ["hessian", "{ws}/file.txt"], "file.txt", reads="checkpoint"),
    Case("plane-hessian-subset-0", "F4", ["plane", "--around", A, "--out", "{ws}/p", "--directions",
                                          "hessian", "--hessian-subset", "0"], "--hessian-subset"),
    Case("eval-curve-sharpness-points-1", "F4", ["eval-curve", R, "--sharpness",
                                                 "--sharpness-points", "1"], "--sharpness-points"),
    Case("terrain-cap-quantile-0", "F4", ["terrain", R, "--cap-quantile", "0"], "--cap-quantile"),
    Case("terrain-cap-quantile-nan", "F4", ["terrain", R, "--cap-quantile", "nan"], "--cap-quantile"),
    Case("terrain-upsample-huge", "F4", ["terrain", R, "--upsample", "100000"], "--upsample"),
    Case("terrain-sigma-nan", "F4", ["terrain", R, "--sigma", "nan"], "--sigma"),
    Case("terrain-floor-0", "F4", ["terrain", R, "--floor", "0"], "--floor"),
    Case("terrain-loss-cap-inf", "F4", ["terrain", R, "--loss-cap", "inf"], "--loss-cap"),
    Case("render-height-scale-nan", "F4",
         ["render", R, "--still", "--height-scale", "nan", *FAKE_BLENDER], "--height-scale"),
    Case("render-speed-nan", "F4", ["render", R, "--video", "--speed", "nan", *FAKE_BLENDER],
         "--speed"),
    Case("render-glow-neg", "F4", ["render", R, "--still", "--glow", "-5", *FAKE_BLENDER], "--glow"),
    Case("render-size-0x0", "F4", ["render", R, "--still", "--size", "0x0", *FAKE_BLENDER], "--size"),
    Case("render-fps-0", "F4", ["render", R, "--video", "--fps", "0", *FAKE_BLENDER], "--fps"),
    Case("render-duration-nan", "F4", ["render", R, "--video", "--duration", "nan", *FAKE_BLENDER],
         "--duration"),
    Case("render-interpolate-0", "F4",
         ["render", R, "--video", "--interpolate", "0", *FAKE_BLENDER], "--interpolate"),
    Case("render-samples-0", "F4", ["render", R, "--still", "--samples", "0", *FAKE_BLENDER],
         "--samples"),
    Case("functions-t-2", "F4", ["functions", R, "--t", "2"], "--t"),
    Case("plane-span-nan", "F4", ["plane", "--around", A, "--out", "{ws}/p", "--span", "nan"],
         "--span"),
    Case("grid-resolution-0x0", "F4", ["grid", R, "--resolution", "0x0"], "--resolution"),
    Case("demo-resolution-0", "F4", ["demo", "--out", "{ws}/d", "--resolution", "0"],
         "--resolution"),
    # F5: tracebacks (wrong-type outputs, malformed metadata, values passed straight to the OS)
    Case("train-out-under-file", "F5", ["train", "--out", "{ws}/file.txt/e.pt"], "file.txt"),
    Case("curve-out-file", "F5", ["curve", A, B, "--out", "{ws}/file.txt"], "file.txt"),
    Case("line-out-file", "F5", ["line", A, B, "--out", "{ws}/file.txt"], "file.txt"),
    Case("plane-out-file", "F5", ["plane", A, B, A, "--out", "{ws}/file.txt"], "file.txt"),
    Case("around-out-file", "F5", ["plane", "--around", A, "--out", "{ws}/file.txt"], "file.txt"),
    Case("terrain-out-file", "F5", ["terrain", R, "--out", "{ws}/file.txt"], "file.txt"),
    Case("render-still-out-dir", "F5", ["render", R, "--still", "--out", "{ws}/adir", *FAKE_BLENDER],
         "adir"),
    Case("render-video-out-dir", "F5", ["render", R, "--video", "--out", "{ws}/adir", *FAKE_BLENDER],
         "adir"),
    Case("render-out-under-file", "F5",
         ["render", R, "--still", "--out", "{ws}/file.txt/s.png", *FAKE_BLENDER], "file.txt"),
    Case("render-blender-not-exe", "F5", ["render", R, "--still", *FAKE_BLENDER], "--blender"),
    Case("render-blender-missing", "F5", ["render", R, "--still", "--blender", "{ws}/nope"],
         "--blender"),
    Case("demo-out-file", "F5", ["demo", "--out", "{ws}/file.txt"], "file.txt"),
    Case("import-out-dir", "F5",
         ["import", A, "--model", "smallcnn", "--data", "shapes", "--out", "{ws}/adir"], "adir"),
    Case("addon-out-file", "F5", ["addon", "build", "--out", "{ws}/file.txt"], "file.txt"),
    Case("grid-json-list", "F5", ["grid", R], "grid.json", grid_json(lambda d: [d])),
    Case("grid-json-string-resolution", "F5", ["grid", R], "grid.json",
         grid_json(_set("resolution", "5x5"))),
    Case("grid-json-garbage", "F5", ["terrain", R], "grid.json", garbage("run/grids/grid.json")),
    Case("run-json-list", "F5", ["grid", R], "run.json", run_json(lambda d: [d])),
    Case("run-json-no-model", "F5", ["grid", R, "--overwrite"], "run.json", run_json(_drop("model"))),
    Case("run-json-model-string", "F5", ["eval-curve", R], "run.json", run_json(_set("model", "x"))),
    Case("frames-json-list", "F5", ["grid", R, "--overwrite"], "frames.json",
         frames_json(lambda d: d["frames"])),
    Case("frames-json-bad-file", "F5", ["grid", R, "--overwrite"], "frames.json",
         frames_json(frame_field("file", 7))),
    Case("bends-other-width", "F5", ["grid", R, "--resolution", "5", "--subset", "32"],
         "frame_00001.pt", wide_bends),
    Case("grid-string-loss", "F5", ["terrain", R], "frame_00001.npz", string_loss),
    Case("manifest-index-abc", "F5", ["render", R, "--still", *FAKE_BLENDER], "manifest.json",
         manifest(frame_field("index", "abc"))),
    Case("manifest-epoch-caption", "F5",
         ["render", R, "--video", "--caption", "--out", "{ws}/out.mp4", *FAKE_BLENDER],
         "manifest.json", manifest(frame_field("epoch", "late"))),
    Case("manifest-list", "F5", ["render", R, "--still", *FAKE_BLENDER], "manifest.json",
         manifest(lambda d: [d])),
    Case("video-cache-garbage", "F5",
         ["render", R, "--video", "--out", "{ws}/out.mp4", "--blender", "{ws}/nope"], "--blender",
         video_cache),
    Case("checkpoint-garbage", "F5", ["curve", "{ws}/file.txt", B, "--out", "{ws}/c"], "file.txt"),
    Case("endpoint-garbage", "F5", ["eval-curve", R], "w1.pt", garbage("run/endpoints/w1.pt")),
    # F6: misleading or late errors
    Case("train-out-dir", "F6", ["train", "--out", "{ws}/adir"], "adir"),
    Case("curve-nan-endpoint-no-run", "F6", ["curve", "{ws}/nan.pt", B, "--out", "{ws}/adir/c"],
         "nan.pt", nan_endpoint),
    Case("demo-palette", "F6", ["demo", "--out", "{ws}/d", "--palette", "rainbow"], "--palette"),
    Case("demo-size", "F6", ["demo", "--out", "{ws}/d", "--size", "0x0"], "--size"),
    Case("demo-device", "F6", ["demo", "--out", "{ws}/d", "--device", "banana"], "--device"),
    Case("demo-samples", "F6", ["demo", "--out", "{ws}/d", "--samples", "-1"], "--samples"),
    Case("grid-no-run", "F6", ["grid", "{ws}/adir"], "adir"),
    Case("terrain-file-as-run", "F6", ["terrain", "{ws}/file.txt"], "file.txt"),
] + [
    # round two (issue 23): the commands added since, and every kind of file they read.
    # finding 1: a subject seeded with endpoints of another model and data
    Case("f1-subject-endpoints-other-model", "F4",
         ["demo", "--subject", "resnet20-noskip", "--data", "npz:{ws}/c10.npz", "--endpoints",
          "{ws}/a.pt", "{ws}/b.pt", "--out", "{ws}/s", "--no-render"], "--endpoints",
         cifar_like_npz, "checkpoint"),
    Case("f1-subject-endpoints-garbage", "F5",
         ["demo", "--subject", "resnet20-noskip", "--data", "npz:{ws}/c10.npz", "--endpoints",
          "{ws}/rand.pt", "{ws}/b.pt", "--out", "{ws}/s", "--no-render"], "rand.pt",
         cifar_like_npz, "checkpoint", never="pickled"),
    Case("f1-subject-curve-not-run", "F6",
         ["demo", "--subject", "resnet20-noskip", "--data", "npz:{ws}/c10.npz", "--curve",
          "{ws}/adir", "--out", "{ws}/s", "--no-render"], "--curve", cifar_like_npz, "folder"),
    Case("demo-subject-unknown", "F6", ["demo", "--subject", "nope", "--out", "{ws}/s"],
         "--subject"),
    Case("demo-subject-threads-0", "F4",
         ["demo", "--subject", "resnet20-noskip", "--threads", "0", "--out", "{ws}/s"], "--threads"),
    # finding 2: non-finite weights, however they enter
    Case("f2-import-nan-state-dict", "F4",
         ["import", "{ws}/sd_nan.pt", "--model", "smallcnn", "--model-arg", "width=4", "--data",
          "shapes", "--out", "{ws}/i.pt"], "sd_nan.pt", nan_state_dict, "state_dict"),
    Case("f2-curve-nan-state-dict", "F4",
         ["curve", "{ws}/sd.pt", "{ws}/sd_nan.pt", "--model", "smallcnn", "--model-arg",
          "width=4", "--data", "shapes", "--out", "{ws}/c"], "sd_nan.pt", nan_state_dict,
         "state_dict", never="lossart.pt"),
    Case("f2-line-nan-state-dict", "F4",
         ["line", "{ws}/sd_nan.pt", "{ws}/sd.pt", "--model", "smallcnn", "--model-arg", "width=4",
          "--data", "shapes", "--out", "{ws}/l"], "sd_nan.pt", nan_state_dict, "state_dict"),
    Case("f2-plane-around-nan-state-dict", "F4",
         ["plane", "--around", "{ws}/sd_nan.pt", "--model", "smallcnn", "--model-arg", "width=4",
          "--data", "shapes", "--out", "{ws}/p"], "sd_nan.pt", nan_state_dict, "state_dict"),
    Case("f2-trajectory-nan-snapshot", "F4", ["trajectory", "{ws}/snap.pt", "--out", "{ws}/t"],
         "snapshot_001.pt", snapshot_file(1, _nan_params), "snapshot"),
    Case("f2-trajectory-snapshot-no-step", "F5", ["trajectory", "{ws}/snap.pt", "--out", "{ws}/t"],
         "snapshot_002.pt", snapshot_file(2, lambda d: {k: v for k, v in d.items() if k != "step"}),
         "snapshot"),
    Case("f2-trajectory-snapshot-garbage", "F5", ["trajectory", "{ws}/snap.pt", "--out", "{ws}/t"],
         "snapshot_000.pt", garbage("snap.pt.snapshots/snapshot_000.pt"), "snapshot"),
    Case("trajectory-no-snapshots", "F6", ["trajectory", A, "--out", "{ws}/t"], "w1.pt",
         reads="checkpoint"),
    Case("trajectory-out-file", "F5", ["trajectory", "{ws}/snap.pt", "--out", "{ws}/file.txt"],
         "file.txt"),
    Case("trajectory-resolution-1", "F4",
         ["trajectory", "{ws}/snap.pt", "--out", "{ws}/t", "--resolution", "1"], "--resolution"),
    Case("trajectory-components-0", "F4",
         ["trajectory", "{ws}/snap.pt", "--out", "{ws}/t", "--components", "0"], "--components"),
    # finding 3: a user's model checked against the data before any work
    Case("f3-model-3-outputs-6-classes", "F4",
         ["train", "--model", "user_models:three_outputs", "--out", "{ws}/e.pt"], "--model",
         reads="factory"),
    Case("f3-model-factory-key-error", "F5",
         ["train", "--model", "user_models:raises_key_error", "--out", "{ws}/e.pt"], "--model",
         reads="factory"),
    Case("f3-model-no-parameters", "F5",
         ["train", "--model", "user_models:no_parameters", "--out", "{ws}/e.pt"], "--model",
         reads="factory"),
    Case("f3-model-wrong-channels", "F5",
         ["train", "--model", "user_models:wrong_channels", "--out", "{ws}/e.pt"], "--model",
         reads="factory"),
    Case("f3-import-model-3-outputs", "F4",
         ["import", "{ws}/sd.pt", "--model", "user_models:three_outputs", "--data", "shapes",
          "--out", "{ws}/i.pt"], "--model", reads="factory"),
    Case("f3-zero-pixel-images-factory", "F5",
         ["train", "--data", "user_models:zero_pixel_images", "--out", "{ws}/e.pt"], "x_train",
         reads="factory"),
    Case("f3-zero-pixel-images-npz", "F5",
         ["train", "--data", "npz:{ws}/bad.npz", "--out", "{ws}/e.pt"], "bad.npz",
         zero_pixel_npz, "npz"),
    Case("data-factory-nan-targets", "F4",
         ["train", "--data", "user_models:nan_targets", "--out", "{ws}/e.pt"], "y_train",
         reads="factory"),
    Case("data-factory-not-data", "F5",
         ["train", "--data", "user_models:not_data", "--out", "{ws}/e.pt"], "user_models:not_data",
         reads="factory"),
    Case("data-factory-broken", "F5",
         ["train", "--data", "user_models:broken", "--out", "{ws}/e.pt"], "user_models:broken",
         reads="factory"),
    # finding 4: labels checked when a dataset loads
    Case("f4-test-labels-unseen-npz", "F4",
         ["train", "--data", "npz:{ws}/bad.npz", "--out", "{ws}/e.pt", "--epochs", "1"], "y_test",
         labels(y_train=lambda y: y % 3, y_test=lambda y: 3 + y % 3, classes=list("abcdef")),
         "npz"),
    Case("f4-stray-label-15-npz", "F4",
         ["train", "--data", "npz:{ws}/bad.npz", "--out", "{ws}/e.pt", "--epochs", "1"], "bad.npz",
         labels(y_train=lambda y: np.where(np.arange(len(y)) == 7, 15, y)), "npz"),
    Case("f4-label-beyond-classes-npz", "F4",
         ["train", "--data", "npz:{ws}/bad.npz", "--out", "{ws}/e.pt", "--epochs", "1"], "bad.npz",
         labels(classes=["a", "b"]), "npz"),
    Case("f4-test-labels-unseen-factory", "F4",
         ["train", "--data", "user_models:unseen_test_labels", "--out", "{ws}/e.pt"], "y_test",
         reads="factory"),
    Case("f4-import-unseen-labels", "F4",
         ["import", "{ws}/sd.pt", "--model", "smallcnn", "--model-arg", "width=4", "--data",
          "npz:{ws}/bad.npz", "--out", "{ws}/i.pt"], "y_test",
         labels(y_train=lambda y: y % 3, y_test=lambda y: 3 + y % 3, classes=list("abcdef")),
         "npz"),
    Case("npz-garbage", "F5", ["train", "--data", "npz:{ws}/file.txt", "--out", "{ws}/e.pt"],
         "file.txt", reads="npz"),
    Case("curve-data-other-classes", "F6", ["curve", A, B, "--data", "npz:{ws}/good.npz", "--out",
                                            "{ws}/c"], "--data", reads="npz"),
    # folders (folder:PATH datasets)
    Case("folder-missing", "F5", ["train", "--data", "folder:{ws}/nope", "--out", "{ws}/e.pt"],
         "nope", reads="folder"),
    Case("folder-empty", "F5", ["train", "--data", "folder:{ws}/adir", "--out", "{ws}/e.pt"],
         "adir", reads="folder"),
    Case("folder-flat", "F5", ["train", "--data", "folder:{ws}/imgs", "--out", "{ws}/e.pt"],
         "imgs", folder_layout("flat"), "folder"),
    Case("folder-garbage-image", "F5",
         ["train", "--data", "folder:{ws}/imgs", "--out", "{ws}/e.pt"], "a.png",
         folder_layout("garbage-image"), "folder"),
    # finding 5: output locations before a lock or a builder
    Case("f5-grid-grids-is-a-file", "F5", ["grid", R, "--resolution", "5", "--subset", "32"],
         "grids", grids_a_file, "folder"),
    Case("f5-addon-zip-is-a-folder", "F5", ["addon", "build", "--out", "{ws}/dist"], ".zip",
         zip_a_folder),
    Case("f5-demo-report-json-list", "F5", ["demo", "--report", "{ws}/adir"], "--report",
         report_list),
    Case("addon-blender-missing", "F5", ["addon", "build", "--out", "{ws}/dist", "--blender",
                                         "{ws}/nope"], "--blender"),
    Case("demo-report-missing", "F5", ["demo", "--report", "{ws}/nope"], "--report"),
    # finding 6: messages that name what the user typed
    Case("f6-curve-random-bytes", "F6", ["curve", "{ws}/rand.pt", B, "--out", "{ws}/c"],
         "rand.pt", reads="state_dict", never="pickled"),
    Case("f6-plane-random-bytes", "F6", ["plane", "{ws}/rand.pt", A, B, "--out", "{ws}/p"],
         "rand.pt", reads="checkpoint", never="pickled"),
    Case("f6-import-random-bytes", "F6",
         ["import", "{ws}/rand.pt", "--model", "smallcnn", "--data", "shapes", "--out",
          "{ws}/i.pt"], "rand.pt", reads="state_dict", never="pickled"),
    Case("f6-grid-select-frames", "F6", ["grid", R, "--select-frames", "9"], "--select-frames"),
    Case("f6-terrain-select-frames", "F6", ["terrain", R, "--select-frames", "a:b"],
         "--select-frames"),
    Case("f6-terrain-stl-ascii", "F6",
         ["terrain", R, "--export-mesh", "0", "--mesh-format", "stl", "--ascii"], "--ascii"),
    Case("f6-terrain-mesh-format-alone", "F6", ["terrain", R, "--mesh-format", "obj"],
         "--mesh-format"),
    Case("f6-terrain-ascii-alone", "F6", ["terrain", R, "--ascii"], "--ascii"),
    Case("f6-plane-span-1e30", "F6", ["plane", "--around", A, "--out", "{ws}/p", "--span", "1e30"],
         "--span"),
    Case("terrain-export-mesh-missing-frame", "F6", ["terrain", R, "--export-mesh", "9"],
         "--export-mesh"),
    # state_dicts and checkpoints, each command that reads them
    Case("import-list-file", "F5",
         ["import", "{ws}/list.pt", "--model", "smallcnn", "--data", "shapes", "--out",
          "{ws}/i.pt"], "list.pt", list_state_dict, "state_dict"),
    Case("import-shape-mismatch", "F5",
         ["import", "{ws}/sd.pt", "--model", "smallcnn", "--data", "shapes", "--out", "{ws}/i.pt"],
         "sd.pt", reads="state_dict"),
    Case("import-input-shape-0", "F4",
         ["import", "{ws}/sd.pt", "--model", "smallcnn", "--data", "shapes", "--input-shape",
          "3x0x0", "--out", "{ws}/i.pt"], "--input-shape"),
    Case("import-checkpoint-already", "F6",
         ["import", A, "--model", "smallcnn", "--data", "shapes", "--out", "{ws}/i.pt"], "w1.pt",
         reads="checkpoint"),
    Case("curve-state-dict-no-model", "F6", ["curve", "{ws}/sd.pt", B, "--out", "{ws}/c"],
         "--model", reads="state_dict"),
    Case("line-state-dict-no-data", "F6",
         ["line", "{ws}/sd.pt", B, "--model", "smallcnn", "--out", "{ws}/l"], "--data",
         reads="state_dict"),
    Case("line-garbage", "F5", ["line", "{ws}/file.txt", B, "--out", "{ws}/l"], "file.txt",
         reads="checkpoint"),
    Case("line-nan-checkpoint", "F4", ["line", "{ws}/nan.pt", B, "--out", "{ws}/l"], "nan.pt",
         nan_endpoint, "checkpoint"),
    Case("line-points-1", "F4", ["line", A, B, "--out", "{ws}/l", "--points", "1"], "--points"),
    Case("align-garbage", "F5", ["align", "{ws}/file.txt", B, "--out", "{ws}/al.pt"], "file.txt",
         reads="checkpoint"),
    Case("align-nan-checkpoint", "F4", ["align", A, "{ws}/nan.pt", "--out", "{ws}/al.pt"],
         "nan.pt", nan_endpoint, "checkpoint"),
    Case("align-max-rounds-0", "F4", ["align", A, B, "--out", "{ws}/al.pt", "--max-rounds", "0"],
         "--max-rounds"),
    Case("align-several-out-file", "F6", ["align", A, A, B, "--out", "{ws}/file.txt"], "file.txt"),
    Case("plane-two-checkpoints", "F6", ["plane", A, B, "--out", "{ws}/p"], "three"),
    Case("plane-around-garbage", "F5", ["plane", "--around", "{ws}/file.txt", "--out", "{ws}/p"],
         "file.txt", reads="checkpoint"),
    Case("plane-nan-checkpoint", "F4", ["plane", "{ws}/nan.pt", A, B, "--out", "{ws}/p"],
         "nan.pt", nan_endpoint, "checkpoint"),
    Case("eval-curve-no-run", "F6", ["eval-curve", "{ws}/adir"], "adir", reads="folder"),
    Case("eval-curve-subset-0", "F4", ["eval-curve", R, "--subset", "0"], "--subset"),
    Case("ensemble-no-run", "F6", ["ensemble", "{ws}/file.txt"], "file.txt"),
    Case("functions-no-run", "F6", ["functions", "{ws}/adir"], "adir"),
    Case("functions-resolution-1", "F4", ["functions", R, "--resolution", "1"], "--resolution"),
    Case("models-extra", "F6", ["models", "extra"], "extra"),
    Case("models-flag", "F6", ["models", "--bogus"], "--bogus"),
    Case("models-device", "F6", ["models", "--device", "cpu"], "--device"),
    Case("grid-shard-3-of-2", "F4", ["grid", R, "--shard", "3/2"], "--shard"),
    Case("grid-aspect-0", "F4", ["grid", R, "--aspect", "0:1"], "--aspect"),
    # bundles: every reader of one
    Case("validate-missing", "F6", ["validate", "{ws}/nope"], "nope", reads="bundle"),
    Case("validate-a-file", "F6", ["validate", "{ws}/file.txt"], "file.txt", reads="bundle"),
    Case("validate-manifest-garbage", "F5", ["validate", "{ws}/run/terrain"], "manifest.json",
         garbage("run/terrain/manifest.json"), "bundle"),
    Case("render-heights-missing", "F5", ["render", R, "--still", *FAKE_BLENDER], "heights",
         missing_heights, "bundle"),
    Case("render-no-bundle", "F6", ["render", "{ws}/adir", "--still", *FAKE_BLENDER], "adir",
         reads="bundle"),
    Case("render-frame-99", "F6", ["render", R, "--still", "--frame", "99", *FAKE_BLENDER],
         "--frame", reads="bundle"),
    Case("terrain-export-mesh-garbage-heights", "F5", ["render", R, "--video", *FAKE_BLENDER],
         "heights", garbage_heights, "bundle"),    Case("view-budget-0", "F4", ["view", R, "--budget-mb", "0"], "--budget-mb"),
    Case("view-max-side-1", "F4", ["view", R, "--max-side", "1"], "--max-side"),
    Case("view-missing-run", "F5", ["view", "{ws}/nowhere"], "nowhere"),
    Case("view-garbage-heights", "F5", ["view", R, "--out", "{ws}/v.html"], "heights",
         garbage_heights, "bundle"),
    Case("view-out-folder", "F6", ["view", R, "--out", "{ws}/adir"], "adir"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(case: Case, ws: Path, capsys) -> None:
    if case.setup:
        case.setup(ws)
    before = snapshot(ws)
    argv = [a.replace("{ws}", str(ws)) for a in case.argv]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: bad flags
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert case.names.replace("{ws}", str(ws)) in lines[0], lines[0]
    assert not case.never or case.never not in lines[0], lines[0]
    assert snapshot(ws) == before, "files changed or appeared"


def test_the_table_covers_every_class() -> None:
    counts = {k: sum(c.cls == k for c in CASES) for k in ("F4", "F5", "F6")}
    assert sum(counts.values()) >= 60 and min(counts.values()) >= 8, counts
    assert len({c.id for c in CASES}) == len(CASES)


def test_every_subcommand_and_every_kind_of_file_has_three_bad_inputs() -> None:
    """Issue 23: at least three bad inputs per subcommand and per kind of file read."""
    import argparse

    from lossart.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = {c.argv[0] + (f" {c.argv[1]}" if c.argv[0] == "addon" else "") for c in CASES}
    per_command = {name: sum(1 for c in CASES if (c.argv[0] if name != "addon build"
                                                   else " ".join(c.argv[:2])) == name)
                   for name in [*(n for n in sub.choices if n != "addon"), "addon build"]}  # fmt: skip
    assert commands <= set(per_command), commands - set(per_command)
    assert min(per_command.values()) >= 3, per_command
    kinds = ("checkpoint", "state_dict", "snapshot", "npz", "folder", "factory", "bundle")
    per_kind = {k: sum(c.reads == k for c in CASES) for k in kinds}
    assert min(per_kind.values()) >= 3, per_kind


# ---------------------------------------------------------------- the library gives the same lines


def _raises(fn: Callable[[], object], names: str) -> None:
    from lossart.errors import LossartError

    with pytest.raises(LossartError) as exc:
        fn()
    message = str(exc.value)
    assert "\n" not in message and names in message, message


@pytest.mark.parametrize(
    "make, names",
    [
        (lambda: __import__("lossart.training.endpoints", fromlist=["x"]).TrainConfig(lr=float("nan")), "lr nan"),
        (lambda: __import__("lossart.training.endpoints", fromlist=["x"]).TrainConfig(momentum=5.0), "momentum 5.0"),
        (lambda: __import__("lossart.training.endpoints", fromlist=["x"]).TrainConfig(threads=0), "threads 0"),
        (lambda: __import__("lossart.grid.run_grid", fromlist=["x"]).GridConfig(margin=float("inf")), "margin inf"),
        (lambda: __import__("lossart.grid.run_grid", fromlist=["x"]).GridConfig(batch_points=0), "batch_points 0"),
        (lambda: __import__("lossart.grid.run_grid", fromlist=["x"]).GridConfig(resolution=(0, 0)), "resolution (0, 0)"),
        (lambda: __import__("lossart.terrain.heightfield", fromlist=["x"]).TerrainConfig(cap_quantile=0.0), "cap_quantile 0.0"),
        (lambda: __import__("lossart.terrain.heightfield", fromlist=["x"]).TerrainConfig(upsample=100000), "upsample 100000"),
        (lambda: __import__("lossart.training.curve", fromlist=["x"]).CurveConfig(
            w1="a", w2="b", out="c", init_noise=float("nan")), "init_noise nan"),
        (lambda: __import__("lossart.demo", fromlist=["x"]).DemoSettings(resolution=0), "resolution 0:"),
    ],
    ids=["train-lr", "train-momentum", "train-threads", "grid-margin", "grid-batch", "grid-res",
         "terrain-cap", "terrain-upsample", "curve-noise", "demo-res"],
)
def test_config_dataclasses_check_like_the_flags(make, names) -> None:
    _raises(make, names)


def test_option_errors_name_the_field_and_the_cli_the_flag() -> None:
    """A declared option's library error names the field a notebook user typed; the CLI prints
    the same line with the flag."""
    from lossart.cli import _for_cli
    from lossart.grid.run_grid import GridConfig
    from lossart.options import OptionError

    with pytest.raises(OptionError) as exc:
        GridConfig(tile_rows=0)
    assert str(exc.value).startswith("tile_rows 0: expected a whole number >= 1")
    assert _for_cli(exc.value).startswith("--tile-rows 0: expected a whole number >= 1")


def test_library_calls_check_outputs_and_weights(ws: Path) -> None:
    from lossart.analyses.ensemble import ensemble_run
    from lossart.render import Look, render_still
    from lossart.training.checkpoint import load_checkpoint

    nan_endpoint(ws)
    _raises(lambda: load_checkpoint(ws / "nan.pt"), "nan.pt")
    _raises(lambda: ensemble_run(ws / "run", subset=0), "subset 0")
    _raises(lambda: render_still(ws / "run", ws / "adir", look=Look()), "adir")
    _raises(lambda: render_still(ws / "run", ws / "s.png", blender=str(ws / "file.txt")), "--blender")


def test_a_garbled_video_cache_stamp_means_stale_frames(ws: Path) -> None:
    """A garbage frames.json cannot vouch for its frames: they are rendered afresh, no traceback."""
    from lossart.render import Look
    from lossart.render.video import prepare_frames

    cache = ws / "v_frames"
    cache.mkdir()
    (cache / "frame_00001.png").write_bytes(b"not a png")
    for garbage_text in ("{not json", "[1, 2]", '{"fingerprint": 7}'):
        (cache / "frames.json").write_text(garbage_text)
        (cache / "frame_00001.png").write_bytes(b"not a png")
        work = prepare_frames(cache, ws / "run/terrain", Look())
        assert work != cache and not any(work.glob("frame_*.png"))  # rendered afresh beside
        assert isinstance(json.loads((work / "frames.json").read_text())["fingerprint"], str)
        assert (cache / "frame_00001.png").exists()  # the old set stays until the new is whole
        shutil.rmtree(work)


def test_divergence_is_reported_only_for_finite_inputs(ws: Path, capsys) -> None:
    """Finite inputs with an absurd learning rate really diverge: that message names --lr."""
    code = main(["curve", f"{ws}/run/endpoints/w1.pt", f"{ws}/run/endpoints/w2.pt",
                 "--out", f"{ws}/c", "--lr", "1e30", "--epochs", "1", "--frames", "2"])
    # the one error line (a CPU without bfloat16 units adds auto's one-line note before it)
    lines = [ln for ln in capsys.readouterr().err.strip().splitlines()
             if not ln.startswith("lossart: --dtype auto:")]
    assert code == 2 and len(lines) == 1 and "diverged" in lines[0] and "--lr" in lines[0]
