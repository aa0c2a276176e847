"""The grid files (lossart.grid.files): grid.json as GridMeta, frame files with their plane
coordinates, and grids made before frame files carried them (refused by terrain, upgraded by a
rerun of `lossart grid` without evaluating any loss again)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from grid_fixtures import make_curve_run

from lossart.cli import main
from lossart.errors import LossartError
from lossart.grid.files import (
    GridMeta,
    frame_grid_path,
    grid_json_path,
    read_frame_grid,
    read_grid_meta,
    write_grid_meta,
)
from lossart.grid.run_grid import GridConfig, grid_run

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(resolution=(6, 5), subset=64, tile_rows=2)


def meta(**change) -> GridMeta:
    base = GridMeta("curve", (6, 5), (-1.0, 2.0), (-0.5, 1.5), 64, "train", "float32", 2, [0, 1],
                    curve={"kind": "bezier", "bends": 1})  # fmt: skip
    return replace(base, **change)


def test_grid_meta_round_trip_and_differences(tmp_path):
    assert read_grid_meta(tmp_path) is None
    m = meta(compile=False, created="then")
    write_grid_meta(tmp_path, m)
    back = read_grid_meta(tmp_path)
    assert back == m and back.has_coordinates
    assert json.loads(grid_json_path(tmp_path).read_text())["window"] == {
        "x_range": [-1.0, 2.0], "y_range": [-0.5, 1.5]
    }  # fmt: skip
    assert m.differences(meta(resolution=(7, 5), created="now")) == ["resolution [6, 5] vs [7, 5]"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(format="other"), "not a lossart grid spec"),
        (lambda d: d.update(format_version=9), "format_version 9 is newer"),
        (lambda d: d.pop("tile"), "missing key 'tile'"),
        (lambda d: d.update(curve=None), "a curve grid without 'curve'"),
        (lambda d: d.update(kind="sphere"), "kind 'sphere'"),
        (lambda d: d.update(frames=["a"]), "malformed grid spec"),
        (lambda d: d["window"].update(x_range=[2.0, 1.0]), "is empty"),
    ],
)
def test_grid_meta_refusals_name_the_file(tmp_path, change, message):
    d = meta().to_dict()
    change(d)
    grid_json_path(tmp_path).write_text(json.dumps(d))
    with pytest.raises(LossartError, match=message) as err:
        read_grid_meta(tmp_path)
    assert str(err.value).startswith(str(grid_json_path(tmp_path)))


def _as_old_lossart_wrote_it(grids) -> None:
    """grid.json without format_version/curve, frame files with loss, accuracy, xs, ys only."""
    spec = json.loads(grid_json_path(grids).read_text())
    for k in ("format_version", "curve"):
        spec.pop(k)
    grid_json_path(grids).write_text(json.dumps(spec))
    for i in spec["frames"]:
        g = read_frame_grid(grids, i)
        np.savez(frame_grid_path(grids, i), loss=g.loss, accuracy=g.accuracy, xs=g.xs, ys=g.ys)


def test_old_grids_are_refused_by_terrain_and_upgraded_by_a_rerun(tmp_path, capsys):
    run = make_curve_run(tmp_path / "run")
    grid_run(run.root, GridConfig(**SMALL))
    fresh = {i: read_frame_grid(run.grids, i) for i in (0, 1, 2)}
    _as_old_lossart_wrote_it(run.grids)
    assert read_frame_grid(run.grids, 1).meta is None

    assert main(["terrain", str(run.root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grid.json: grids made before" in err[0]
    assert f"rerun `lossart grid {run.root}`" in err[0]
    spec = json.loads(grid_json_path(run.grids).read_text())  # grid.json upgraded, frames not
    spec.update(format_version=2, curve={"kind": "bezier", "bends": 1})
    grid_json_path(run.grids).write_text(json.dumps(spec))
    assert main(["terrain", str(run.root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frame_00000.npz: assembled before grid files carried" in err[0]
    assert f"rerun `lossart grid {run.root}`" in err[0]

    s = grid_run(run.root, GridConfig())
    assert s.tiles_computed == 0 and s.points_computed == 0 and s.upgraded == [0, 1, 2]
    for i, want in fresh.items():
        got = read_frame_grid(run.grids, i)
        np.testing.assert_array_equal(got.loss, want.loss)
        np.testing.assert_array_equal(got.meta.control_points, want.meta.control_points)
        assert got.meta.points == want.meta.points
        m = got.meta  # step, epoch, train_loss: frames.json of grid_fixtures
        assert (m.index, m.step, m.epoch, m.train_loss) == (i, 10 * i, float(i), 1.0)
    assert grid_run(run.root, GridConfig()).upgraded == []
    assert main(["terrain", str(run.root)]) == 0
