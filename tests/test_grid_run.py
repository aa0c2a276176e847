"""`lossart grid` / `lossart plane` end to end on a hand-made tiny curve run.

Subprocess runs pin OMP_NUM_THREADS=1 (torchrun does the same for its ranks), so the runs that are
compared use one summation order and must agree bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from grid_fixtures import make_curve_run

from lossart.errors import LossartError
from lossart.evaluation import evaluate_exact_bn
from lossart.grid import list_frame_grids, load_frame_grid
from lossart.grid.lock import GridLock
from lossart.grid.run_grid import GridConfig, grid_run, parse_resolution
from lossart.runs import Run

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(resolution=(6, 5), subset=64, tile_rows=2)


def env1() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOSSART_QUIET": "1"}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lossart", *args],
        env=env1(),
        capture_output=True,
        text=True,
        cwd=REPO,
        **kw,
    )


def frames_of(run: Run) -> dict[int, dict[str, np.ndarray]]:
    out = {}
    for i in list_frame_grids(run):
        g = load_frame_grid(run, i)
        out[i] = {"loss": g.loss, "accuracy": g.accuracy, "xs": g.xs, "ys": g.ys}
    return out


def assert_same_grids(a: Run, b: Run) -> None:
    fa, fb = frames_of(a), frames_of(b)
    assert sorted(fa) == sorted(fb) and fa
    for i in fa:
        for k in fa[i]:
            assert np.array_equal(fa[i][k], fb[i][k], equal_nan=True), (i, k)


def test_grid_values_coordinates_and_format(tmp_path):
    run = make_curve_run(tmp_path / "run")
    s = grid_run(run.root, GridConfig(**SMALL, margin=0.3))
    assert s.assembled == [0, 1, 2] and s.points_computed == 3 * 30 and s.flops_per_point > 0
    spec = json.loads((run.grids / "grid.json").read_text())
    assert spec["resolution"] == [6, 5] and spec["subset"] == 64 and spec["tile"] == 2
    assert spec["compile"] is False  # a small grid is not worth compiling
    g = load_frame_grid(run, 1)
    assert g.loss.shape == (5, 6) and g.loss.dtype == np.float32
    (x0, x1), (y0, y1) = spec["window"]["x_range"], spec["window"]["y_range"]
    assert g.xs[0] == x0 and g.xs[-1] == x1 and g.ys[0] == y0 and g.ys[-1] == y1
    assert np.all(np.diff(g.ys) > 0)
    # A cell equals a direct exact-BN evaluation at the plane's weights of its coordinates.
    from lossart.data import load_dataset
    from lossart.data.batches import eval_subset
    from lossart.geometry.weights import ParamLayout
    from lossart.grid.planes import frame_plane
    from lossart.training.curve_run import load_curve_run

    cr = load_curve_run(run)
    plane = frame_plane(cr, 1)
    x, y = eval_subset(load_dataset(cr.data_spec), "train", 64)
    model = cr.build_model()
    for i, j in ((0, 0), (3, 4), (4, 1)):
        w = plane.weights(torch.tensor([[g.xs[j], g.ys[i]]]))[0]
        ref = evaluate_exact_bn(model, ParamLayout.of(model), w, x, y)
        assert g.loss[i, j] == pytest.approx(ref.loss, rel=1e-5)
    # The frame file carries the frame's curve in its plane, and grid.json the curve.
    from lossart.geometry.plane import control_points_2d

    cp = control_points_2d(plane, cr.w1, cr.frames[1].bends, cr.w2)
    np.testing.assert_allclose(g.meta.control_points, cp, rtol=1e-9, atol=1e-9)
    assert g.meta.points == {"w1": tuple(g.meta.control_points[0]), "w2": tuple(cp[-1])}
    assert (g.meta.index, g.meta.step, g.meta.epoch, g.meta.train_loss) == (1, 10, 1.0, 1.0)
    assert spec["format_version"] == 2 and spec["curve"] == {"kind": "bezier", "bends": 1}
    # Rerun with no flags: settings from grid.json, nothing left to do.
    again = grid_run(run.root, GridConfig())
    assert again.tiles_computed == 0 and again.assembled == []


def test_kill_9_then_resume_gives_identical_grids(tmp_path):
    args = ["--resolution", "16", "--subset", "512", "--tile-rows", "1"]
    whole = make_curve_run(tmp_path / "whole")
    r = cli("grid", str(whole.root), *args)
    assert r.returncode == 0, r.stderr
    killed = make_curve_run(tmp_path / "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossart", "grid", str(killed.root), *args],
        env=env1(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    tiles = killed.grids / "tiles"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(tiles.glob("*/tile_*.npz"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(tiles.glob("*/tile_*.npz")))
    assert 3 <= done < 48, f"kill landed with {done} of 48 tiles written"
    assert (killed.grids / "locks" / "all.lock").is_file()  # the dead job's lock file, now free
    torn = tiles / "frame_00000" / ".tile_00099.npz.abc123.tmp"  # as a kill mid-write leaves
    torn.write_bytes(b"partial")
    r = cli("grid", str(killed.root))  # resume: settings from grid.json, the lock free again
    assert r.returncode == 0, r.stderr
    assert f"resuming: {done}/48 tiles already done" in r.stderr
    assert not torn.exists()
    assert_same_grids(whole, killed)


def test_torchrun_two_processes_equal_one(tmp_path):
    args = ["--resolution", "7", "--subset", "64", "--tile-rows", "1", "--frames", "0:3:2"]
    one = make_curve_run(tmp_path / "one")
    r = cli("grid", str(one.root), *args)
    assert r.returncode == 0, r.stderr
    two = make_curve_run(tmp_path / "two")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "lossart", "grid", str(two.root), *args]  # fmt: skip
    r = subprocess.run(torchrun, env=env1(), capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert list_frame_grids(two) == [0, 2]
    assert_same_grids(one, two)


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOSSART_QUIET": "1", "PYTHONPATH": str(REPO)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def test_sigterm_to_a_two_rank_torchrun_grid_resumes_to_the_same_grids(tmp_path):
    """torchrun passes the scheduler's SIGTERM to both ranks: each stops after its tile in hand,
    no tile is half-written, and the rerun (one process here: tests/test_grid_run.py shows two
    ranks and one agree bit for bit) finishes the same grids as an uninterrupted run."""
    from lossart.grid import list_frame_grids, load_frame_grid

    args = ["--resolution", "12", "--subset", "256", "--tile-rows", "1"]
    whole = make_curve_run(tmp_path / "whole")  # one thread, as each torchrun rank: one order
    assert cli("grid", str(whole.root), *args).returncode == 0
    stopped = make_curve_run(tmp_path / "stopped")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "lossart", "grid", str(stopped.root), *args]  # fmt: skip
    proc = subprocess.Popen(torchrun, env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    tiles = stopped.grids / "tiles"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(tiles.glob("*/tile_*.npz"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # the scheduler's notice, to torchrun
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode != 0
    assert err.count("lossart: terminated (SIGTERM)") == 2, err[-3000:]  # both ranks stopped so
    done = len(list(tiles.glob("*/tile_*.npz")))
    assert 3 <= done < 36, f"SIGTERM landed with {done} of 36 tiles written"
    assert not list(stopped.grids.rglob("*.tmp")), "a tile was left half-written"
    rerun = cli("grid", str(stopped.root))  # settings from grid.json
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming: {done}/36 tiles already done" in rerun.stderr
    assert list_frame_grids(stopped) == list_frame_grids(whole) == [0, 1, 2]
    for i in (0, 1, 2):
        a, b = load_frame_grid(whole, i), load_frame_grid(stopped, i)
        assert np.array_equal(a.loss, b.loss) and np.array_equal(a.accuracy, b.accuracy)


def test_shard_union_equals_whole(tmp_path):
    whole = make_curve_run(tmp_path / "whole")
    grid_run(whole.root, GridConfig(**SMALL))
    sharded = make_curve_run(tmp_path / "sharded")
    first = grid_run(sharded.root, GridConfig(**SMALL, shard="0/2"))
    assert first.assembled == []  # shard 1's tiles are still missing
    second = grid_run(sharded.root, GridConfig(**SMALL, shard="1/2"))
    assert second.assembled == [0, 1, 2]
    assert first.tiles_computed + second.tiles_computed == 9
    assert_same_grids(whole, sharded)


def test_plane_of_three_optima(tmp_path):
    from lossart.data import DataSpec
    from lossart.grid.plane3 import plane_run
    from lossart.models import ModelSpec, create_model
    from lossart.training.checkpoint import Checkpoint, save_checkpoint

    spec = ModelSpec("smallcnn", 6, (3, 16, 16), {"width": 4})
    paths = []
    for k in range(3):
        torch.manual_seed(10 + k)
        p = tmp_path / f"m{k}.pt"
        save_checkpoint(Checkpoint(spec, DataSpec("shapes"), create_model(spec).state_dict()), p)
        paths.append(p)
    out = tmp_path / "p3"
    s = plane_run(paths, out, GridConfig(resolution=(5, 4), subset=32))
    run = Run(out)
    meta = run.read()
    assert meta["kind"] == "plane3" and s.assembled == [0]
    pts = meta["plane3"]["points"]
    assert (
        pts["w1"] == [0.0, 0.0]
        and pts["w2"][0] > 0
        and abs(pts["w2"][1]) < 1e-6 * pts["w2"][0]
        and pts["w3"][1] > 0
    )
    assert (run.endpoints / "w3.pt").is_file()
    g = load_frame_grid(run, 0)
    assert g.loss.shape == (4, 5) and np.isfinite(g.loss).all()
    assert g.meta.control_points.shape == (0, 2) and g.meta.train_loss is None
    assert list(g.meta.points) == ["w1", "w2", "w3"]
    for name, xy in g.meta.points.items():  # the points run.json records, in the grid's plane
        assert xy == pytest.approx(tuple(pts[name]), rel=1e-9, abs=1e-9)
    for name in ("w1", "w2", "w3"):  # the window holds the three points
        assert g.xs[0] < pts[name][0] < g.xs[-1] and g.ys[0] < pts[name][1] < g.ys[-1]
    # Same inputs, same folder: resumes (nothing to do); `lossart grid` accepts the plane run too.
    assert plane_run(paths, out, GridConfig()).tiles_computed == 0
    assert grid_run(out, GridConfig()).tiles_computed == 0
    with pytest.raises(LossartError, match="already a run made from other inputs"):
        plane_run([paths[1], paths[0], paths[2]], out, GridConfig())


def test_bad_input_is_refused_in_one_line(tmp_path):
    run = make_curve_run(tmp_path / "run")
    with pytest.raises(LossartError, match="^resolution '0'"):
        parse_resolution("0")
    with pytest.raises(LossartError, match="over 20000 points per side"):
        grid_run(run.root, GridConfig(resolution=(50000, 50000), subset=8))
    with pytest.raises(
        LossartError, match="^subset 999999: the train split of 'shapes' has only 5000"
    ):
        grid_run(run.root, GridConfig(resolution=(4, 4), subset=999999))
    with pytest.raises(LossartError, match="^select_frames '7': frame 7 is not recorded"):
        grid_run(run.root, GridConfig(resolution=(4, 4), subset=8, select_frames="7"))
    if not torch.cuda.is_available():
        with pytest.raises(LossartError, match="CUDA is not available"):
            grid_run(run.root, GridConfig(device="cuda"))
    # Settings differing from the grids on disk: refused unless --overwrite.
    grid_run(run.root, GridConfig(resolution=(4, 4), subset=16, select_frames="0"))
    with pytest.raises(LossartError, match=r"other settings \(resolution \[4, 4\] vs \[5, 5\]"):
        grid_run(run.root, GridConfig(resolution=(5, 5), subset=16, select_frames="0"))
    s = grid_run(run.root, GridConfig(resolution=(5, 5), subset=16, select_frames="0", overwrite=True))
    assert s.assembled == [0] and load_frame_grid(run, 0).loss.shape == (5, 5)
    # A live grid job holds the lock (a flock of this process on another descriptor).
    with GridLock(run.grids):
        with pytest.raises(LossartError, match="grids are being computed by another process"):
            grid_run(run.root, GridConfig(select_frames="1"))
    with GridLock(run.grids, (0, 2)):  # a shard excludes a whole job too
        with pytest.raises(LossartError, match=f"pid {os.getpid()} on"):
            grid_run(run.root, GridConfig(select_frames="1"))
    # A run without frames.
    empty = make_curve_run(tmp_path / "empty", frames=0)
    with pytest.raises(LossartError, match="no recorded curve frames"):
        grid_run(empty.root, GridConfig())


def test_cli_prints_one_line_errors(tmp_path):
    run = make_curve_run(tmp_path / "run")
    r = cli("grid", str(run.root), "--resolution", "0")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "lossart: error: --resolution 0: expected at least 2 points per side (N or WxH) "
        "(see lossart grid --help)"
    ]  # refused while parsing, like every typed flag
