"""`lossart plane --around --directions hessian|hessian-min` and `lossart hessian`'s files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lossart.cli import main
from lossart.curvature import HessianConfig, HessianOperator, axis_scale
from lossart.curvature.files import find_result, read_result, result_paths
from lossart.data import load_dataset
from lossart.data.batches import eval_subset
from lossart.evaluation import evaluate_exact_bn
from lossart.geometry.directions import random_direction
from lossart.geometry.trajectory import filter_mask
from lossart.geometry.weights import ParamLayout
from lossart.grid import load_frame_grid
from lossart.grid.around import around_run
from lossart.grid.planes import grid_source
from lossart.grid.run_grid import GridConfig
from lossart.runs import Run
from lossart.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(resolution=(5, 5), subset=32)
QUICK = HessianConfig(subset=32, steps=30, tol=1e-2, trace_samples=4)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from lossart.data import DataSpec
    from lossart.models import ModelSpec, create_model
    from lossart.training.checkpoint import Checkpoint, save_checkpoint

    spec = ModelSpec("smallcnn", 6, (3, 16, 16), {"width": 4})
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("ckpt") / "a.pt"
    save_checkpoint(Checkpoint(spec, DataSpec("shapes"), create_model(spec).state_dict()), path)
    return path


@pytest.fixture(scope="module")
def hessian_run(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "hess"
    around_run(checkpoint, out, GridConfig(**SMALL), span=0.5, directions="hessian", hessian=QUICK)
    return out


def test_hessian_plane_axes_are_orthogonal_eigenvectors_centred_at_the_checkpoint(
    checkpoint, hessian_run
):
    run = Run(hessian_run)
    source = grid_source(run)
    plane = source.plane(0)
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build_model()
    layout = ParamLayout.of(model)
    w = layout.flatten(ckpt.state_dict).float()
    assert torch.equal(plane.origin, w)  # centred at the checkpoint
    u, v = plane.u.double(), plane.v.double()
    assert abs(plane.cosine) < 1e-5  # orthogonal axes
    scale = axis_scale(w, filter_mask(layout, "biasbn"))
    assert float(u.norm()) == pytest.approx(scale, rel=1e-5)
    assert float(v.norm()) == pytest.approx(scale, rel=1e-5)
    # a filter-normalized random direction has exactly that length too: spans compare
    assert float(random_direction(model, w, 0).double().norm()) == pytest.approx(scale, rel=1e-5)
    # the axes are the top eigenvectors: their curvature is λ1 and λ2, largest first
    ds = load_dataset(ckpt.data)
    x, y = eval_subset(ds, "train", 32, seed=0)
    op = HessianOperator(model, w, x, y, mask=filter_mask(layout, "biasbn"))
    lam = [float(a @ op.hvp(a)) / float(a @ a) for a in (u, v)]
    axes = source.directions["axes"]
    assert lam == pytest.approx([axes[0]["eigenvalue"], axes[1]["eigenvalue"]], rel=2e-2)
    assert lam[0] >= lam[1]
    # the grid's centre is the checkpoint's exact-BN loss
    grid = load_frame_grid(run, 0)
    assert grid.xs[2] == 0.0 and grid.ys[2] == 0.0
    centre = evaluate_exact_bn(model, layout, w, x, y).loss
    assert float(grid.loss[2, 2]) == pytest.approx(centre, rel=1e-4)


def test_grid_bundle_and_preview_name_the_directions(hessian_run, capsys):
    run = Run(hessian_run)
    around = run.read()["around"]
    assert around["directions"] == "hessian" and len(around["eigenvalues"]["top"]) == 2
    spec = json.loads((run.grids / "grid.json").read_text())
    assert spec["directions"]["kind"] == "hessian"
    assert [a["name"] for a in spec["directions"]["axes"]] == ["eigenvector 1", "eigenvector 2"]
    assert main(["terrain", str(hessian_run), "--preview"]) == 0
    manifest = json.loads((run.terrain / "manifest.json").read_text())
    assert manifest["kind"] == "plane3" and manifest["directions"] == spec["directions"]
    assert main(["validate", str(run.terrain)]) == 0
    assert (run.terrain / "preview" / "frame_00000.png").is_file()
    from lossart.format.bundle import load_bundle
    from lossart.terrain.preview import _title, axis_labels

    bundle = load_bundle(run.terrain)
    x_label, _ = axis_labels(bundle.manifest.directions)
    assert "eigenvector 1 (λ = " in x_label
    title = _title(bundle.frames[0], bundle.kind, bundle.manifest.directions)
    assert title == "Hessian plane around one network"


def test_a_broken_directions_entry_is_reported(hessian_run, tmp_path):
    import shutil

    from lossart.terrain.bundle_validate import validate_bundle

    bundle = tmp_path / "b"
    shutil.copytree(Run(hessian_run).terrain, bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    m["directions"]["axes"][0]["eigenvalue"] = "big"
    (bundle / "manifest.json").write_text(json.dumps(m))
    problems = validate_bundle(bundle).problems
    assert any("directions.axes[0]" in p and "eigenvalue" in p for p in problems)


def test_random_planes_keep_their_record_and_gain_a_description(checkpoint, tmp_path):
    out = tmp_path / "random"
    around_run(checkpoint, out, GridConfig(**SMALL), seed=2)
    around = Run(out).read()["around"]
    assert "directions" not in around  # a random run's record is what it always was
    spec = json.loads((Run(out).grids / "grid.json").read_text())
    assert spec["directions"]["kind"] == "random" and spec["directions"]["seed"] == 2


def test_hessian_min_plane_and_a_stored_result_is_reused(checkpoint, tmp_path, monkeypatch):
    # `lossart hessian` beside the checkpoint first; the plane then reuses it
    ckpt = tmp_path / "b.pt"
    ckpt.write_bytes(checkpoint.read_bytes())
    assert main(["hessian", str(ckpt), "--smallest", "--subset", "32", "--steps", "30",
                 "--tol", "0.01", "--trace-samples", "4"]) == 0  # fmt: skip
    paths = result_paths(ckpt)
    record, result = read_result(paths["json"])
    assert record["source"]["sha256"] and result.smallest is not None
    cfg = HessianConfig(subset=32, steps=30, tol=1e-2, trace_samples=4, smallest=True)
    assert find_result(ckpt, cfg) is not None
    assert find_result(ckpt, HessianConfig(subset=64)) is None  # other settings: not reused

    def fail(*_a, **_k):
        raise AssertionError("the stored result should have been reused")

    monkeypatch.setattr("lossart.grid.around.hessian_at", fail)
    out = tmp_path / "min"
    around_run(ckpt, out, GridConfig(**SMALL), directions="hessian-min",
               hessian=HessianConfig(subset=32, steps=30, tol=1e-2, trace_samples=4))  # fmt: skip
    d = grid_source(Run(out)).directions
    assert d["kind"] == "hessian-min"
    assert d["axes"][1]["name"] == "eigenvector min"
    assert d["axes"][1]["eigenvalue"] == pytest.approx(result.smallest)
    assert d["axes"][1]["eigenvalue"] < d["axes"][0]["eigenvalue"]
    assert np.isfinite(load_frame_grid(Run(out), 0).loss).all()


def test_plane_flags_go_with_around(checkpoint, tmp_path, capsys):
    args = ["plane", str(checkpoint), str(checkpoint), str(checkpoint), "--out",
            str(tmp_path / "x"), "--directions", "hessian"]  # fmt: skip
    assert main(args) == 2
    assert "--directions go with --around CKPT" in capsys.readouterr().err
