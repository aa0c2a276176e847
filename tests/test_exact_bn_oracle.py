"""The one exact-BN evaluator against a plain PyTorch oracle, at weights that are no endpoint.

Oracle (the original mode-connectivity code's way, written out by hand): a fresh module with the
weights loaded, running statistics reset, momentum None (cumulative average), one train-mode pass
over the subset (its outputs: the subset's own statistics), then an eval-mode pass over the other
set (test-with-train-statistics). Checked: `ExactBN` in one pass and chunked, its vmap form, the
grid engine's per-point and vmap strategies, and the analyses' test-set path. float32 throughout;
relative 1e-5 on the loss (channels-last and chunked sums round differently).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lossart.data import eval_subset, load_dataset
from lossart.evaluation import ExactBN, task_loss
from lossart.geometry.plane import plane_through
from lossart.geometry.weights import ParamLayout, flat_params, load_flat_
from lossart.grid.engine import EngineConfig, GridEngine
from lossart.models import ModelSpec, create_model

RTOL = 1e-5
SPEC = ModelSpec("resnet20-noskip", 6, (3, 16, 16), {"width": 4})  # 19 BN layers, no skips

pytestmark = pytest.mark.usefixtures("one_thread")


def oracle(build, flat, x, other=None):
    """Outputs on `x` with x's own BN statistics, and on `other` in eval mode with them."""
    m = build()
    load_flat_(m, flat)
    for bn in m.modules():
        if isinstance(bn, _BatchNorm):
            bn.reset_running_stats()
            bn.momentum = None
    with torch.no_grad():
        m.train()
        out = m(x)
        m.eval()
        return out, (m(other) if other is not None else None)


def loss_of(out, y, task="classification"):
    return task_loss(out, y, task).item()


def accuracy_of(out, y):
    return (out.argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def setup(one_thread):
    """The model at three independent inits and a weight vector off all of them, on shapes."""
    ds = load_dataset("shapes")
    train = eval_subset(ds, "train", 96, seed=0)
    test = eval_subset(ds, "test", 40, seed=0)
    flats = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        flats.append(flat_params(create_model(SPEC)))
    w1, w2, w3 = flats
    g = torch.Generator().manual_seed(3)
    # off the endpoints and the segment, BN scales and shifts not at their 1/0 initial values
    w = 0.6 * w1 + 0.4 * w2 + 0.3 * torch.randn(w1.shape, generator=g)
    torch.manual_seed(0)
    return create_model(SPEC), (w1, w2, w3, w), train, test


def close(a, b, rtol=RTOL):
    assert a == pytest.approx(b, rel=rtol), (a, b)


@pytest.mark.parametrize("chunk", [None, 25])
def test_evaluator_equals_the_oracle(setup, chunk):
    model, (_w1, _w2, _w3, w), (xtr, ytr), (xte, yte) = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ref_train, ref_test = oracle(lambda: create_model(SPEC), w, xtr, xte)
    ev = ExactBN(model, chunk=chunk)
    res = ev.evaluate(w, xtr, ytr)
    close(res.loss, loss_of(ref_train, ytr))
    assert res.accuracy == pytest.approx(accuracy_of(ref_train, ytr), abs=1.5 / len(ytr))
    on_train, on_test = ev.evaluate_with_reference(w, (xtr, ytr), (xte, yte))
    close(on_train.loss, loss_of(ref_train, ytr))
    close(on_test.loss, loss_of(ref_test, yte))
    assert on_test.accuracy == pytest.approx(accuracy_of(ref_test, yte), abs=1.5 / len(yte))
    torch.testing.assert_close(ev.outputs(w, xtr), ref_train, rtol=1e-4, atol=1e-5)
    # The caller's model is untouched: parameters and stored statistics.
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_the_oracle_tells_the_alternatives_apart(setup):
    """What the test guards against: test-batch statistics, per-chunk statistics, stored ones."""
    model, (_w1, _w2, _w3, w), (xtr, ytr), (xte, yte) = setup
    _, ref_test = oracle(lambda: create_model(SPEC), w, xtr, xte)
    own = loss_of(ExactBN(model).outputs(w, xte), yte)  # the test set's own statistics
    assert abs(own - loss_of(ref_test, yte)) > 100 * RTOL * own
    ref_train, _ = oracle(lambda: create_model(SPEC), w, xtr)
    per_chunk = torch.cat([ExactBN(model).outputs(w, xs) for xs in xtr.split(25)])
    assert abs(loss_of(per_chunk, ytr) - loss_of(ref_train, ytr)) > 100 * RTOL
    stored = create_model(SPEC).eval()
    load_flat_(stored, w)
    with torch.no_grad():
        assert abs(loss_of(stored(xtr), ytr) - loss_of(ref_train, ytr)) > 100 * RTOL


def test_vmap_block_equals_the_oracle_point_by_point(setup):
    model, (w1, w2, _w3, w), (xtr, ytr), _ = setup
    block = torch.stack([w, 0.5 * (w1 + w2), w2])
    outs = ExactBN(model).outputs_many(block, xtr)
    for k in range(len(block)):
        ref, _ = oracle(lambda: create_model(SPEC), block[k], xtr)
        close(loss_of(outs[k], ytr), loss_of(ref, ytr))


@pytest.mark.parametrize("strategy, chunk", [("point", None), ("point", 40), ("vmap", None)])
def test_grid_engine_strategies_equal_the_oracle(setup, strategy, chunk):
    model, (w1, w2, w3, _w), (xtr, ytr), _ = setup
    plane = plane_through(w1, w2, w3)
    cfg = EngineConfig(strategy=strategy, batch_points=2, chunk=chunk)
    engine = GridEngine(model, ParamLayout.of(model), xtr, ytr, "classification", cfg)
    engine.set_plane(plane.origin, plane.u_hat, plane.v_hat)
    xs, ys = [0.3 * float((w2 - w1).norm()), -5.0, 12.0], [4.0, 7.5, -3.0]
    res = engine.evaluate(xs, ys)
    for k in range(len(xs)):
        ref, _ = oracle(lambda: create_model(SPEC), engine.weights_at(xs[k], ys[k]), xtr)
        close(float(res.loss[k]), loss_of(ref, ytr))
        assert float(res.accuracy[k]) == pytest.approx(accuracy_of(ref, ytr), abs=1.5 / len(ytr))


def test_regression_reference_path_equals_the_oracle():
    """BN1d on vectors, regression (the `functions` analysis): other inputs at train statistics."""

    def build():
        torch.manual_seed(4)
        return nn.Sequential(nn.Linear(1, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 1))

    model = build()
    g = torch.Generator().manual_seed(5)
    w = flat_params(model) + 0.5 * torch.randn(ParamLayout.of(model).numel, generator=g)
    x, y = torch.randn(50, 1, generator=g), torch.randn(50, generator=g)
    sweep = torch.linspace(-3, 3, 33).reshape(-1, 1)
    ref_train, ref_sweep = oracle(build, w, x, sweep)
    for chunk in (None, 7):
        out_train, out_sweep = ExactBN(model, chunk=chunk).reference_outputs(w, x, sweep, chunk=8)
        close(loss_of(out_train, y, "regression"), loss_of(ref_train, y, "regression"))
        torch.testing.assert_close(out_sweep, ref_sweep, rtol=1e-5, atol=1e-6)
