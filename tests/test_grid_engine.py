"""Grid engine core: exact-BN values, both strategies, exact chunking, weights, precision, FLOPs.

Tolerances: the engine runs channels-last convolutions, the references contiguous ones, so values
agree to float32 rounding of a different summation order: relative 1e-5 on the loss.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lossart.errors import LossartError
from lossart.evaluation import evaluate_exact_bn
from lossart.geometry.weights import ParamLayout, flat_params, load_flat_
from lossart.grid.engine import (
    EngineConfig,
    GridEngine,
    count_flops,
    free_memory_bytes,
    grid_axis,
    point_weights,
    resolve_device,
)

RTOL = 1e-5


def tiny_convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    )  # fmt: skip


def plane_for(model: nn.Module, seed: int = 1):
    layout = ParamLayout.of(model)
    w1 = flat_params(model)
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(layout.numel, generator=g)
    u /= u.norm()
    v = torch.randn(layout.numel, generator=g)
    v -= (v @ u) * u
    v /= v.norm()
    return layout, w1, u, v


@pytest.fixture
def setup():
    model = tiny_convnet()
    layout, w1, u, v = plane_for(model)
    x = torch.randn(48, 3, 8, 8)
    y = torch.randint(0, 5, (48,))
    return model, layout, w1, u, v, x, y


def engine_for(setup, **cfg) -> GridEngine:
    model, layout, w1, u, v, x, y = setup
    e = GridEngine(model, layout, x, y, "classification", EngineConfig(**cfg))
    e.set_plane(w1, u, v)
    return e


def random_points(n: int, scale: float = 3.0):
    g = torch.Generator().manual_seed(5)
    xy = (torch.rand(n, 2, generator=g) * 2 - 1) * scale
    return xy[:, 0].double().numpy(), xy[:, 1].double().numpy()


def test_point_engine_equals_slow_exact_bn_evaluation(setup):
    model, layout, w1, u, v, x, y = setup
    xs, ys = random_points(6)
    res = engine_for(setup).evaluate(xs, ys)
    for k in range(len(xs)):
        w = w1 + float(xs[k]) * u + float(ys[k]) * v
        ref = evaluate_exact_bn(model, layout, w, x, y)
        assert res.loss[k] == pytest.approx(ref.loss, rel=RTOL)
        assert res.accuracy[k] == pytest.approx(ref.accuracy, abs=1.5 / len(x))
        # Directly, in the plainest form: weights copied in, one training-mode pass.
        direct = tiny_convnet()
        load_flat_(direct, w)
        direct.train()
        with torch.no_grad():
            loss = nn.functional.cross_entropy(direct(x), y).item()
        assert res.loss[k] == pytest.approx(loss, rel=RTOL)


def test_vmap_strategy_equals_point_strategy_with_per_point_bn(setup):
    xs, ys = random_points(7, scale=6.0)
    point = engine_for(setup, strategy="point").evaluate(xs, ys)
    block = engine_for(setup, strategy="vmap", batch_points=3).evaluate(xs, ys)
    torch.testing.assert_close(
        torch.from_numpy(block.loss), torch.from_numpy(point.loss), rtol=RTOL, atol=0
    )
    torch.testing.assert_close(torch.from_numpy(block.accuracy), torch.from_numpy(point.accuracy))
    # The points differ, so shared BN statistics across a block could not give these values.
    assert len(set(point.loss.tolist())) == len(xs)


def test_chunked_exact_bn_equals_one_pass_and_per_chunk_bn_would_not(setup):
    model, layout, w1, u, v, x, y = setup
    xs, ys = random_points(3)
    whole = engine_for(setup).evaluate(xs, ys)
    chunked_engine = engine_for(setup, chunk=10)
    assert chunked_engine.chunk == 10
    chunked = chunked_engine.evaluate(xs, ys)
    torch.testing.assert_close(
        torch.from_numpy(chunked.loss), torch.from_numpy(whole.loss), rtol=RTOL, atol=0
    )
    # Naive per-chunk statistics change the value by far more than the tolerance.
    w = w1 + float(xs[0]) * u + float(ys[0]) * v
    naive = sum(
        evaluate_exact_bn(model, layout, w, x[i : i + 10], y[i : i + 10]).loss * len(x[i : i + 10])
        for i in range(0, len(x), 10)
    ) / len(x)
    assert abs(naive - whole.loss[0]) > 100 * RTOL * whole.loss[0]


def test_chunk_chosen_from_memory_budget(setup):
    e = engine_for(setup, memory_fraction=1e-12)
    assert e.chunk is not None and e.chunk >= 1
    assert engine_for(setup).chunk is None


def test_point_weights_map_back_exactly(setup):
    _model, _layout, w1, u, v, _x, _y = setup
    e = engine_for(setup)
    xs, ys = random_points(4)
    block = point_weights(w1, u, v, torch.from_numpy(xs).float(), torch.from_numpy(ys).float())
    for k in range(len(xs)):
        x32, y32 = float(torch.tensor(xs[k]).float()), float(torch.tensor(ys[k]).float())
        reference = w1 + x32 * u + y32 * v  # what Plane.weights computes
        assert torch.equal(e.weights_at(xs[k], ys[k]), reference)
        assert torch.equal(block[k], reference)


def test_grid_axis_follows_bundle_coordinates():
    x0, x1 = -1.4458072522254755, 6.265164759643727
    xs = grid_axis(x0, x1, 8)
    assert xs[0] == x0 and xs[-1] == x1
    for j in range(7):
        assert xs[j] == x0 + j * (x1 - x0) / 7


def test_bfloat16_changes_loss_by_little_on_cpu(setup):
    xs, ys = random_points(3, scale=1.0)
    fp32 = engine_for(setup).evaluate(xs, ys)
    bf16 = engine_for(setup, dtype="bfloat16").evaluate(xs, ys)
    rel = abs(bf16.loss - fp32.loss) / fp32.loss
    assert rel.max() < 2e-2  # bf16 keeps 8 bits of mantissa; measured ~1e-3 here
    assert not (bf16.loss == fp32.loss).all()  # autocast really ran in bf16


def test_bad_device_and_dtype_are_one_line_errors(setup):
    if not torch.cuda.is_available():
        with pytest.raises(LossartError, match="--device cuda: CUDA is not available"):
            resolve_device("cuda")
        with pytest.raises(LossartError, match="tf32 needs a CUDA device"):
            engine_for(setup, dtype="tf32")
    with pytest.raises(LossartError, match="--device 'tpu7'"):
        resolve_device("tpu7")
    with pytest.raises(LossartError, match="^dtype 'float16'"):
        engine_for(setup, dtype="float16")
    e = engine_for(setup)
    with pytest.raises(LossartError, match="plane origin has shape"):
        e.set_plane(torch.zeros(3), torch.zeros(3), torch.zeros(3))


def test_flop_count_of_a_linear_model_is_analytic():
    model = nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 3))
    layout = ParamLayout.of(model)
    x = torch.randn(40, 10)
    assert count_flops(model, layout, flat_params(model), x) == 2 * 40 * (10 * 7 + 7 * 3)


def test_regression_model_on_vectors():
    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1))
    layout, w1, u, v = plane_for(model)
    x = torch.randn(30, 2)
    y = torch.randn(30)
    e = GridEngine(model, layout, x, y, "regression", EngineConfig())
    e.set_plane(w1, u, v)
    res = e.evaluate([0.5, -1.0], [0.25, 2.0])
    ref = evaluate_exact_bn(model, layout, w1 + 0.5 * u + 0.25 * v, x, y, "regression")
    assert res.loss[0] == pytest.approx(ref.loss, rel=RTOL)
    assert torch.isnan(torch.from_numpy(res.accuracy)).all()


def test_tiny_memory_budget_plans_smallest_work_and_stays_exact(setup):
    # (On CUDA, "auto" then falls back from vmap to exact-BN chunks point by point.)
    probe = engine_for(setup)
    frac = probe._bytes_per_sample * 12 / free_memory_bytes(probe.device)  # room for ~12 samples
    vm = engine_for(setup, strategy="vmap", memory_fraction=frac)
    assert vm.strategy == "vmap" and vm.batch_points == 1  # an explicit strategy is kept
    pt = engine_for(setup, memory_fraction=frac)
    assert pt.strategy == "point" and 4 <= pt.chunk < 48
    xs, ys = random_points(2)
    whole = engine_for(setup).evaluate(xs, ys)
    for e in (vm, pt):
        res = e.evaluate(xs, ys)
        torch.testing.assert_close(
            torch.from_numpy(res.loss), torch.from_numpy(whole.loss), rtol=RTOL, atol=0
        )


def test_vmap_regression_accuracy_is_nan():
    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1))
    layout, w1, u, v = plane_for(model)
    x, y = torch.randn(30, 2), torch.randn(30)
    cfgs = [EngineConfig(strategy="vmap", batch_points=2), EngineConfig(strategy="point")]
    results = []
    for cfg in cfgs:
        e = GridEngine(model, layout, x, y, "regression", cfg)
        e.set_plane(w1, u, v)
        results.append(e.evaluate([0.5, -1.0, 2.0], [0.25, 2.0, 0.0]))
    torch.testing.assert_close(
        torch.from_numpy(results[0].loss), torch.from_numpy(results[1].loss), rtol=RTOL, atol=0
    )
    assert torch.isnan(torch.from_numpy(results[0].accuracy)).all()


@pytest.mark.slow
def test_compiled_pass_equals_eager(setup):
    xs, ys = random_points(3)
    eager = engine_for(setup, compile=False).evaluate(xs, ys)
    e = engine_for(setup, compile=True)
    res = e.evaluate(xs, ys)
    assert e.compiled and "compiled" in e.describe()
    torch.testing.assert_close(
        torch.from_numpy(res.loss), torch.from_numpy(eager.loss), rtol=RTOL, atol=0
    )
    np_acc = torch.from_numpy(res.accuracy) - torch.from_numpy(eager.accuracy)
    assert np_acc.abs().max() <= 1.5 / 48


def test_compile_is_planned_by_job_size(setup):
    e = engine_for(setup)
    assert not e.plan_compile(100) and not e.compiled  # small jobs stay eager
    assert not engine_for(setup, strategy="vmap").plan_compile(10**9)  # only the CPU pass


def test_vmap_halves_its_block_when_out_of_memory(setup, monkeypatch):
    e = engine_for(setup, strategy="vmap", batch_points=4)
    real = e._evaluate_block

    def tight(xs, ys):
        if len(xs) > 2:
            raise torch.OutOfMemoryError("simulated")
        return real(xs, ys)

    monkeypatch.setattr(e, "_evaluate_block", tight)
    xs, ys = random_points(5)
    res = e.evaluate(xs, ys)
    assert e.batch_points == 2
    expect = engine_for(setup).evaluate(xs, ys)
    torch.testing.assert_close(
        torch.from_numpy(res.loss), torch.from_numpy(expect.loss), rtol=RTOL, atol=0
    )
