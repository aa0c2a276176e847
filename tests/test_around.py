"""`lossart plane --around`: Li et al.'s random filter-normalized plane around one checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lossart.cli import main
from lossart.errors import LossartError
from lossart.grid import load_frame_grid
from lossart.grid.around import around_run
from lossart.grid.run_grid import GridConfig, grid_run
from lossart.runs import Run

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(resolution=(5, 5), subset=32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from lossart.data import DataSpec
    from lossart.models import ModelSpec, create_model
    from lossart.training.checkpoint import Checkpoint, save_checkpoint

    spec = ModelSpec("smallcnn", 6, (3, 16, 16), {"width": 4})
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("ckpt") / "a.pt"
    save_checkpoint(Checkpoint(spec, DataSpec("shapes"), create_model(spec).state_dict()), path)
    return path


def test_around_grid_is_centred_on_the_checkpoint(checkpoint, tmp_path):
    from lossart.data import load_dataset
    from lossart.data.batches import eval_subset
    from lossart.evaluation import evaluate_exact_bn
    from lossart.geometry.weights import ParamLayout
    from lossart.training.checkpoint import load_checkpoint

    out = tmp_path / "around"
    s = around_run(checkpoint, out, GridConfig(**SMALL), seed=1, span=0.5)
    run = Run(out)
    meta = run.read()
    assert meta["kind"] == "around" and s.assembled == [0]
    rec = meta["around"]
    assert rec["source"] == str(checkpoint.resolve()) and len(rec["sha256"]) == 64
    assert (rec["seed"], rec["span"], rec["ignore"]) == (1, 0.5, "biasbn")
    spec = json.loads((run.grids / "grid.json").read_text())
    assert spec["kind"] == "around" and spec["aspect"] is None
    assert spec["window"] == {"x_range": [-0.5, 0.5], "y_range": [-0.5, 0.5]}
    g = load_frame_grid(run, 0)
    assert g.xs[0] == -0.5 and g.xs[-1] == 0.5 and g.ys[0] == -0.5 and g.ys[-1] == 0.5
    assert g.meta.points == {"w": (0.0, 0.0)} and g.meta.control_points.shape == (0, 2)
    # The centre cell is the checkpoint itself, with exact BN on the same subset.
    ck = load_checkpoint(checkpoint)
    model = ck.build_model()
    layout = ParamLayout.of(model)
    x, y = eval_subset(load_dataset(ck.data), "train", 32)
    ref = evaluate_exact_bn(model, layout, layout.flatten(ck.state_dict).float(), x, y)
    assert g.loss[2, 2] == pytest.approx(ref.loss, rel=1e-5)
    assert g.loss[0, 0] != pytest.approx(ref.loss, rel=1e-3)
    # Same inputs resume (nothing to do), `lossart grid` too; other inputs are refused.
    assert around_run(checkpoint, out, GridConfig(), seed=1, span=0.5).tiles_computed == 0
    assert grid_run(out, GridConfig()).tiles_computed == 0
    with pytest.raises(LossartError, match="already a run made from other inputs"):
        around_run(checkpoint, out, GridConfig(), seed=2, span=0.5)
    # A different seed is a different plane, hence a different grid (same centre).
    other = tmp_path / "seed2"
    around_run(checkpoint, other, GridConfig(**SMALL), seed=2, span=0.5)
    g2 = load_frame_grid(Run(other), 0)
    assert g2.loss[2, 2] == pytest.approx(g.loss[2, 2], rel=1e-6)
    assert not np.allclose(g2.loss, g.loss, rtol=1e-4)


def test_around_cli_terrain_marks_the_optimum(checkpoint, tmp_path, capsys):
    from lossart.format.bundle import load_bundle

    out = tmp_path / "run"
    assert main(["plane", "--around", str(checkpoint), "--out", str(out), "--resolution", "4x4",
                 "--subset", "16", "--keep-bn", "--seed", "5"]) == 0  # fmt: skip
    meta = Run(out).read()["around"]
    assert (meta["seed"], meta["span"], meta["ignore"]) == (5, 1.0, None)
    spec = json.loads((out / "grids" / "grid.json").read_text())
    assert spec["window"] == {"x_range": [-1.0, 1.0], "y_range": [-1.0, 1.0]}
    assert main(["terrain", str(out), "--preview"]) == 0
    assert (out / "terrain" / "preview" / "frame_00000.png").is_file()
    bundle = load_bundle(out / "terrain")
    assert bundle.kind == "plane3"
    (frame,) = bundle.frames
    (point,) = frame.points
    assert point.name == "w" and tuple(point.xy) == (0.0, 0.0)
    capsys.readouterr()
    # the checker knows an around run's plane3 bundle (one point w) from the kinds table
    assert main(["validate", str(out / "terrain")]) == 0
    capsys.readouterr()
    both = ["plane", str(checkpoint), "--around", str(checkpoint), "--out", str(tmp_path / "x")]
    assert main(both) == 2
    assert "three checkpoints or --around CKPT, not both" in capsys.readouterr().err
    assert main(["plane", str(checkpoint), "--out", str(tmp_path / "y")]) == 2
    assert "expected three checkpoints (or --around CKPT), got 1" in capsys.readouterr().err
    three = [str(checkpoint)] * 3
    assert main(["plane", *three, "--seed", "3", "--out", str(tmp_path / "z")]) == 2
    assert "--seed, --span, --keep-bn and --directions go with --around CKPT" in capsys.readouterr().err


def test_around_shards_make_the_whole_grid(checkpoint, tmp_path):
    cfg = dict(resolution=(4, 6), subset=16, tile_rows=2)
    whole = tmp_path / "whole"
    around_run(checkpoint, whole, GridConfig(**cfg), seed=4)
    sharded = tmp_path / "sharded"
    first = around_run(checkpoint, sharded, GridConfig(**cfg, shard="0/2"), seed=4)
    second = around_run(checkpoint, sharded, GridConfig(**cfg, shard="1/2"), seed=4)
    assert first.tiles_computed + second.tiles_computed == 3 and second.assembled == [0]
    a, b = load_frame_grid(Run(whole), 0), load_frame_grid(Run(sharded), 0)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert a.meta.points == b.meta.points == {"w": (0.0, 0.0)}
