"""`lossart eval-curve --sharpness`: the top Hessian eigenvalue along both paths, one figure."""

from __future__ import annotations

import json

import pytest
import torch
from grid_fixtures import make_curve_run

from lossart.analyses.sharpness import sharpness_along
from lossart.atomic import torch_save
from lossart.cli import main
from lossart.curvature import HessianConfig, HessianOperator
from lossart.data import eval_subset, load_dataset
from lossart.geometry.trajectory import filter_mask
from lossart.geometry.weights import ParamLayout
from lossart.training.curve_run import load_curve_run

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = HessianConfig(subset=32, steps=40, tol=1e-4)


@pytest.fixture
def curve_run(tmp_path):
    run = make_curve_run(tmp_path / "run", frames=2)
    torch_save(torch.load(run.curve / "frames" / "frame_00001.pt"), run.curve / "final.pt")
    return run


def test_top_eigenvalue_along_both_paths(curve_run):
    res = sharpness_along(curve_run, points=3, config=QUICK, show_progress=False)
    assert [p.t for p in res.curve] == [0.0, 0.5, 1.0] == [p.t for p in res.segment]
    assert res.curve[0] == res.segment[0] and res.curve[-1] == res.segment[-1]
    # λ_max bounds the curvature along any direction at that point (segment midpoint here)
    cr = load_curve_run(curve_run)
    model = cr.build_model()
    ds = load_dataset(cr.data_spec)
    x, y = eval_subset(ds, "train", 32, seed=0)
    mid = (cr.w1 + cr.w2) / 2
    mask = filter_mask(ParamLayout.of(model), "biasbn")
    op = HessianOperator(model, mid, x, y, mask=mask)
    for seed in range(3):
        v = torch.randn(op.n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        v = v * mask
        assert float(v @ op.hvp(v)) / float(v @ v) <= res.segment[1].top * (1 + 1e-4)
    assert res.segment[1].loss == pytest.approx(op.loss, rel=1e-5)
    assert "λ_max" in res.table()


def test_cli_writes_json_and_one_figure(curve_run, capsys):
    args = ["eval-curve", str(curve_run.root), "--points", "3", "--subset", "32", "--sharpness",
            "--sharpness-points", "2", "--sharpness-subset", "32", "--sharpness-steps", "20"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "curve λ_max" in out and "sharpness.png" in out
    data = json.loads((curve_run.analyses / "sharpness.json").read_text())
    assert len(data["paths"]["curve"]) == 2 and data["subset"] == 32
    assert (curve_run.analyses / "sharpness.png").stat().st_size > 1000
