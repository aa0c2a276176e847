"""Ensembles along the path: the numbers behind the seed's Figure 8."""

from __future__ import annotations

import json

import pytest
import torch
from grid_fixtures import make_curve_run

from lossart.analyses.ensemble import combine, ensemble_along_paths, ensemble_run, single
from lossart.atomic import torch_save
from lossart.cli import main
from lossart.data import eval_subset, load_dataset
from lossart.evaluation import ExactBN
from lossart.training.curve_run import load_curve_run


@pytest.fixture
def curve_run(tmp_path):
    run = make_curve_run(tmp_path / "run", frames=2)
    last = torch.load(run.curve / "frames" / "frame_00001.pt")
    torch_save(last, run.curve / "final.pt")
    return run


def test_ensemble_of_a_network_with_itself_is_the_network():
    torch.manual_seed(0)
    logits, y = torch.randn(50, 6), torch.randint(0, 6, (50,))
    loss, acc = single(logits, y, "classification")
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    reg, target = torch.randn(40, 1), torch.randn(40)
    assert single(reg, target, "regression")[0] == pytest.approx(
        torch.nn.functional.mse_loss(reg.reshape(-1), target).item())


def test_paths_start_at_w1_alone_and_end_at_the_endpoint_ensemble(curve_run):
    result = ensemble_along_paths(load_curve_run(curve_run), points=5, subset=200)
    for path in (result.curve, result.segment):
        start, end = path[0], path[-1]
        assert start.t == 0.0 and end.t == 1.0
        assert start.ensemble_acc == start.single_acc  # {w1, w1} is w1
        assert start.ensemble_loss == pytest.approx(start.single_loss, rel=1e-6)
        assert end.ensemble_acc == result.endpoint_ensemble_acc
        assert end.ensemble_loss == pytest.approx(result.endpoint_ensemble_loss, rel=1e-6)
    # The reference line computed independently: mean probabilities of w1 and w2.
    cr = load_curve_run(curve_run)
    ds = load_dataset(cr.data_spec)
    train_x, _ = eval_subset(ds, "train", 200)
    test_x, test_y = eval_subset(ds, "test", None)
    model = cr.build_model()
    ev = ExactBN(model)
    out1, out2 = (ev.reference_outputs(w, train_x, test_x)[1] for w in (cr.w1, cr.w2))
    loss, acc = combine(out1, out2, test_y, ds.task)
    assert acc == pytest.approx(result.endpoint_ensemble_acc)
    assert loss == pytest.approx(result.endpoint_ensemble_loss, rel=1e-5)
    # Curve and segment differ in between (the bend is off the segment).
    assert any(c.single_loss != s.single_loss for c, s in zip(result.curve[1:-1], result.segment[1:-1]))


def test_ensemble_run_writes_table_and_plot(curve_run, capsys):
    assert main(["ensemble", str(curve_run.root), "--points", "3", "--subset", "100"]) == 0
    out = capsys.readouterr().out
    assert "endpoint ensemble" in out
    data = json.loads((curve_run.analyses / "ensemble.json").read_text())
    assert len(data["curve"]) == 3 and len(data["segment"]) == 3
    assert (curve_run.analyses / "ensemble.png").stat().st_size > 10_000
    assert (curve_run.analyses / "ensemble.csv").read_text().count("\n") == 7


def test_unfinished_run_is_refused_in_one_line(tmp_path, capsys):
    run = make_curve_run(tmp_path / "run", frames=2)
    assert main(["ensemble", str(run.root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "final.pt" in err[0]


def test_ensemble_run_api_returns_files(curve_run):
    result = ensemble_run(curve_run.root, points=2, subset=100)
    assert set(result.files) == {"csv", "json", "png"}


def test_first_t_matching_is_where_the_ensemble_first_reaches_the_reference():
    from lossart.analyses.ensemble import EnsemblePoint, EnsembleResult

    accs = [0.90, 0.91, 0.95, 0.97, 0.94, 0.96]
    pts = [EnsemblePoint(i / 5, 0.0, a, 0.0, a) for i, a in enumerate(accs)]
    result = EnsembleResult(pts, pts, 0.0, 0.96, "classification", 10)
    assert result.first_t_matching("curve") == 0.6
    assert result.first_t_matching("curve", tolerance=0.011) == 0.4
    assert EnsembleResult(pts[:3], pts[:3], 0.0, 0.99, "classification", 10).first_t_matching() is None
