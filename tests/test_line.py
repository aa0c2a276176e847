"""`lossart line A B`: the straight line between any two checkpoints, with exact BN."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from lossart.analyses.line import evaluate_line, line_points
from lossart.cli import main
from lossart.errors import LossartError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from lossart.data import DataSpec
    from lossart.models import ModelSpec, create_model
    from lossart.training.checkpoint import Checkpoint, save_checkpoint

    spec = ModelSpec("smallcnn", 6, (3, 16, 16), {"width": 4})
    root = tmp_path_factory.mktemp("line")
    paths = []
    for k in range(2):
        torch.manual_seed(20 + k)
        p = root / f"m{k}.pt"
        save_checkpoint(Checkpoint(spec, DataSpec("shapes"), create_model(spec).state_dict()), p)
        paths.append(p)
    return paths


def _exact_bn(path, subset):
    from lossart.data import eval_subset, load_dataset
    from lossart.evaluation import ExactBN
    from lossart.geometry.weights import ParamLayout
    from lossart.training.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    model = ck.build_model()
    layout = ParamLayout.of(model)
    ds = load_dataset(ck.data)
    train = eval_subset(ds, "train", subset, seed=0)
    test = eval_subset(ds, "test", subset, seed=0)
    flat = layout.flatten(ck.state_dict).float()
    return ExactBN(model, layout).evaluate_with_reference(flat, train, test, ds.task)


def test_line_endpoints_are_the_checkpoints(checkpoints, tmp_path):
    a, b = checkpoints
    res = evaluate_line(a, b, tmp_path / "out", points=5, subset=64)
    pts = res.line.points
    assert [p.t for p in pts] == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    for point, path in ((pts[0], a), (pts[-1], b)):
        on_train, on_test = _exact_bn(path, 64)
        assert point.train_loss == pytest.approx(on_train.loss, rel=1e-5)
        assert point.test_loss == pytest.approx(on_test.loss, rel=1e-5)
        assert point.train_acc == pytest.approx(on_train.accuracy)
    losses = [p.train_loss for p in pts]
    assert res.line.barrier == pytest.approx(max(losses) - (losses[0] + losses[-1]) / 2)
    assert pts[2].train_loss != pytest.approx(pts[0].train_loss, rel=1e-4)
    saved = json.loads((tmp_path / "out" / "line.json").read_text())
    assert saved["barrier"] == pytest.approx(res.line.barrier)
    assert saved["sources"] == [str(a.resolve()), str(b.resolve())]
    with open(tmp_path / "out" / "line.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and float(rows[-1]["train_loss"]) == pts[-1].train_loss
    assert (tmp_path / "out" / "line.png").stat().st_size > 1000


def test_line_cli_prints_the_barrier(checkpoints, tmp_path, capsys):
    a, b = checkpoints
    argv = ["line", str(a), str(b), "--out", str(tmp_path / "o"), "--points", "3", "--subset", "32"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "barrier (train loss):" in out and "line.json" in out
    with pytest.raises(LossartError, match=r"^points 1: expected a whole number in \[2, 100000\]$"):
        line_points(a, b, points=1)
