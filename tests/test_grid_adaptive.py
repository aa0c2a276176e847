"""`lossart grid --adaptive TOL` end to end on the tiny hand-made curve run.

The fixture's landscape is nearly flat (random weights: log10 loss varies by ~0.01 over the
window), so the tolerances here are small enough to refine two of the three levels of a 33x33
grid. Runs that are compared use one thread count, so evaluated points agree bit for bit.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from grid_fixtures import make_curve_run
from test_grid_run import REPO, cli, env1

from lossart.errors import LossartError
from lossart.grid import load_frame_grid
from lossart.grid.adaptive import AdaptivePlan, log_loss
from lossart.grid.files import (
    FrameGrid,
    read_frame_grid,
    read_units,
    tile_dir,
    unit_path,
    write_frame_grid,
    write_unit,
)
from lossart.grid.run_grid import GridConfig, grid_run
from lossart.runs import Run

TOL = 3e-4  # in log10 loss (the "log10" criterion; the kill test uses the default "picture")
SMALL = dict(
    resolution=(33, 33), subset=16, tile_rows=1, select_frames="0", quiet=True, adaptive_criterion="log10"
)
PICTURE_TOL = 0.01  # a share of the relief


def units_of(run: Run) -> list[str]:
    return sorted(p.name for p in tile_dir(run.grids, 0).glob("level_*_unit_*.npz"))


def assert_same_frame(a: Run, b: Run) -> None:
    ga, gb = load_frame_grid(a, 0), load_frame_grid(b, 0)
    for k in ("loss", "accuracy", "xs", "ys", "evaluated"):
        assert np.array_equal(getattr(ga, k), getattr(gb, k), equal_nan=True), k


def test_unit_files_and_the_mask_round_trip(tmp_path):
    grids = tmp_path / "grids"
    write_unit(unit_path(grids, 3, 1, 0), np.array([0, 7, 11]), [1.0, 2.0, 3.0], [0.5, 0.25, 1.0])
    loss, acc, done = read_units(grids, 3, 4, 3)
    assert np.argwhere(done).tolist() == [[0, 0], [1, 3], [2, 3]]
    assert loss[1, 3] == 2.0 and acc[2, 3] == 1.0 and np.isnan(loss[0, 1])
    write_unit(unit_path(grids, 3, 1, 1), np.array([12]), [1.0], [1.0])  # outside a 4x3 grid
    with pytest.raises(LossartError, match="level_01_unit_00001.npz: adaptive unit does not fit"):
        read_units(grids, 3, 4, 3)
    xs, ys = np.linspace(0, 1, 4), np.linspace(0, 1, 3)
    write_frame_grid(grids, FrameGrid(3, loss, acc, xs, ys, None, done))
    assert np.array_equal(read_frame_grid(grids, 3).evaluated, done)
    write_frame_grid(grids, FrameGrid(4, loss, acc, xs, ys))
    assert read_frame_grid(grids, 4).evaluated is None


def test_adaptive_equals_the_full_grid_where_evaluated(tmp_path):
    full = make_curve_run(tmp_path / "full")
    grid_run(full.root, GridConfig(**SMALL))
    run = make_curve_run(tmp_path / "adaptive")
    s = grid_run(run.root, GridConfig(**SMALL, adaptive=TOL))
    assert s.assembled == [0]
    spec = json.loads((run.grids / "grid.json").read_text())
    assert spec["adaptive"] == TOL and spec["resolution"] == [33, 33]
    g, f = load_frame_grid(run, 0), load_frame_grid(full, 0)
    assert f.evaluated is None  # a full grid has no mask
    m = g.evaluated
    assert m.shape == (33, 33) and m.dtype == bool
    assert s.adaptive == (int(m.sum()), 33 * 33) and s.points_computed == int(m.sum())
    assert 81 < m.sum() < 33 * 33  # more than the coarse lattice, fewer than all
    assert np.array_equal(g.loss[m], f.loss[m]) and np.array_equal(g.accuracy[m], f.accuracy[m])
    assert np.array_equal(g.xs, f.xs) and np.array_equal(g.ys, f.ys)
    np.testing.assert_array_equal(g.meta.control_points, f.meta.control_points)
    # The mask is exactly the plan's choice, and the rest is the plan's fill (in log10 loss).
    loss, acc, evaluated = read_units(run.grids, 0, 33, 33)
    plan = AdaptivePlan(33, 33, TOL)
    assert np.array_equal(evaluated, m)
    assert np.array_equal(plan.chosen(log_loss(loss), evaluated), m)
    want = 10.0 ** plan.fill(log_loss(loss), evaluated)
    np.testing.assert_allclose(g.loss[~m], want[~m], rtol=1e-6)
    assert np.all((g.accuracy >= 0) & (g.accuracy <= 1))
    # Filled cells are predicted to about the tolerance (this landscape is smooth).
    err = np.abs(np.log10(g.loss) - np.log10(f.loss))
    assert err.max() <= 2 * TOL
    # Terrain reads it like any grid.
    from lossart.terrain.build import build_terrain

    manifest = build_terrain(run.root).manifest
    assert len(manifest["frames"]) == 1 and manifest["frames"][0]["nonfinite"] == 0
    # A rerun does nothing; a rerun with another tolerance is refused unless --overwrite.
    again = grid_run(run.root, GridConfig(select_frames="0", quiet=True))
    assert again.points_computed == 0 and again.assembled == [] and again.adaptive == s.adaptive
    with pytest.raises(LossartError, match=r"adaptive 0\.0003 vs 0\.001.*--overwrite"):
        grid_run(run.root, GridConfig(quiet=True, adaptive=1e-3))
    with pytest.raises(LossartError, match="adaptive None vs 0.0003"):
        grid_run(full.root, GridConfig(quiet=True, adaptive=TOL))  # a full grid stays full
    redo = grid_run(run.root, GridConfig(**SMALL, adaptive=1e-3, overwrite=True))
    assert redo.assembled == [0] and redo.adaptive[0] < s.adaptive[0]
    with pytest.raises(LossartError, match=r"adaptive -1\.0: expected a (positive tolerance|number > 0)"):
        grid_run(run.root, GridConfig(quiet=True, adaptive=-1.0))


def test_kill_9_then_resume_gives_identical_results(tmp_path):
    args = ["--resolution", "33", "--subset", "512", "--tile-rows", "1", "--frames", "0",
            "--adaptive", str(PICTURE_TOL)]  # fmt: skip
    whole = make_curve_run(tmp_path / "whole")
    r = cli("grid", str(whole.root), *args)
    assert r.returncode == 0, r.stderr
    total = len(units_of(whole))
    points = int(load_frame_grid(whole, 0).evaluated.sum())
    assert f"adaptive: {points:,} of 1,089 points evaluated" in r.stdout
    killed = make_curve_run(tmp_path / "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossart", "grid", str(killed.root), *args],
        env=env1(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and len(units_of(killed)) < 4:  # into level 1 (3 units at 0)
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = units_of(killed)
    assert 4 <= len(done) < total, f"kill landed with {len(done)} of {total} units written"
    stamps = {n: (tile_dir(killed.grids, 0) / n).stat().st_mtime_ns for n in done}
    r = cli("grid", str(killed.root))  # resume: settings from grid.json
    assert r.returncode == 0, r.stderr
    assert units_of(killed) == units_of(whole)
    # Nothing done before the kill was evaluated again.
    assert all((tile_dir(killed.grids, 0) / n).stat().st_mtime_ns == t for n, t in stamps.items())
    assert_same_frame(whole, killed)
    spec = json.loads((killed.grids / "grid.json").read_text())
    assert spec["adaptive"] == PICTURE_TOL and spec["adaptive_criterion"]["kind"] == "picture"
    assert points < 33 * 33  # the picture criterion still saves points on this landscape


def test_a_grid_from_before_the_criterion_resumes_in_log10(tmp_path):
    """grid.json without `adaptive_criterion` judged log10 loss: rerunning it (no flags, or
    the same --adaptive) keeps that meaning and evaluates nothing again."""
    run = make_curve_run(tmp_path / "old")
    first = grid_run(run.root, GridConfig(**SMALL, adaptive=TOL))
    path = run.grids / "grid.json"
    spec = json.loads(path.read_text())
    assert spec["adaptive_criterion"] == {"kind": "log10"}
    del spec["adaptive_criterion"]
    path.write_text(json.dumps(spec))
    (run.grids / "frame_00000.npz").unlink()  # interrupted before assembly
    for cfg in (GridConfig(select_frames="0", quiet=True), GridConfig(select_frames="0", quiet=True, adaptive=TOL)):
        again = grid_run(run.root, cfg)
        assert again.points_computed == 0 and again.adaptive == first.adaptive
        assert again.spec["adaptive_criterion"] == {"kind": "log10"}
    with pytest.raises(LossartError, match="adaptive_criterion.*--overwrite"):
        grid_run(run.root, GridConfig(select_frames="0", quiet=True, adaptive_criterion="picture"))


def test_two_shards_give_the_frame_of_one_process(tmp_path):
    one = make_curve_run(tmp_path / "one")
    whole = grid_run(one.root, GridConfig(**SMALL, adaptive=TOL))
    two = make_curve_run(tmp_path / "two")
    computed, rounds = 0, 0
    while not (two.grids / "frame_00000.npz").is_file():
        rounds += 1
        assert rounds <= 2 * AdaptivePlan(33, 33, TOL).levels, "shards never finished"
        for shard in ("0/2", "1/2"):
            s = grid_run(two.root, GridConfig(**SMALL, adaptive=TOL, shard=shard))
            computed += s.points_computed
            finished = (two.grids / "frame_00000.npz").is_file()
            assert s.waiting == ([] if finished else [0])
    assert rounds > 1  # each level waited for the other shard
    assert computed == whole.points_computed
    assert_same_frame(one, two)
