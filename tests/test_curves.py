"""Curve parameterization: exact endpoints, coefficient identities, bends, functional evaluation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from lossart.errors import LossartError
from lossart.geometry.curves import (
    CurveSpec,
    bend_positions,
    coefficients,
    curve_point,
    curve_points,
    init_bends,
)
from lossart.geometry.weights import ParamLayout, flat_params

SPECS = [
    CurveSpec("bezier", 1),
    CurveSpec("bezier", 3),
    CurveSpec("polychain", 1),
    CurveSpec("polychain", 3),
]


def _vectors(p=1000, k=1, seed=0, extremes=False):
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(p, generator=g)
    w2 = torch.randn(p, generator=g) * 3 + 1
    if extremes:  # signed zeros, subnormal-adjacent and huge values must survive
        w1[:5] = torch.tensor([-0.0, 0.0, 1e-38, -1e30, 7.0])
    bends = torch.randn(k, p, generator=g) * 10
    return w1, bends, w2


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_endpoints_reproduced_to_the_bit(spec):
    w1, bends, w2 = _vectors(k=spec.bends, extremes=True)
    for t, w in ((0.0, w1), (1.0, w2), (torch.tensor(0.0), w1), (torch.tensor(1.0), w2)):
        got = curve_point(spec, w1, bends, w2, t)
        assert torch.equal(got.view(torch.int32), w.view(torch.int32))
    many = curve_points(spec, w1, bends, w2, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.equal(many[0].view(torch.int32), w1.view(torch.int32))
    assert torch.equal(many[2].view(torch.int32), w2.view(torch.int32))


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_coefficients_partition_of_unity_and_one_hot_ends(spec):
    ts = torch.linspace(0, 1, 101, dtype=torch.float64)
    c = coefficients(spec, ts)
    assert c.shape == (101, spec.bends + 2)
    assert torch.allclose(c.sum(-1), torch.ones(101, dtype=torch.float64), atol=1e-12)
    assert (c >= 0).all()
    one_hot0 = torch.zeros(spec.bends + 2, dtype=torch.float64)
    one_hot0[0] = 1
    assert torch.equal(c[0], one_hot0)
    assert torch.equal(c[-1], one_hot0.flip(0))


def test_quadratic_bezier_matches_formula():
    spec = CurveSpec("bezier", 1)
    w1, bends, w2 = _vectors(k=1)
    for t in (0.1, 0.37, 0.5, 0.9):
        want = (1 - t) ** 2 * w1 + 2 * t * (1 - t) * bends[0] + t**2 * w2
        assert torch.allclose(curve_point(spec, w1, bends, w2, t), want, rtol=1e-5, atol=1e-3)


def test_cubic_bezier_is_bernstein():
    spec = CurveSpec("bezier", 2)
    t = torch.tensor(0.3, dtype=torch.float64)
    want = torch.stack([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t**2 * (1 - t), t**3])
    assert torch.allclose(coefficients(spec, t), want)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_polychain_passes_through_its_bends(k):
    spec = CurveSpec("polychain", k)
    w1, bends, w2 = _vectors(k=k)
    for i, t in enumerate(bend_positions(spec)):
        assert torch.allclose(curve_point(spec, w1, bends, w2, t), bends[i], rtol=1e-6, atol=1e-4)
    # between knots it is the straight segment between neighbouring control points
    pts = [w1, *bends, w2]
    t = 0.5 / (k + 1)
    assert torch.allclose(curve_point(spec, w1, bends, w2, t), (pts[0] + pts[1]) / 2, atol=1e-4)


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_initial_bends_lie_on_the_straight_segment(spec):
    w1, _, w2 = _vectors(k=spec.bends)
    bends = init_bends(spec, w1, w2)
    for t in (0.13, 0.5, 0.77):
        straight = (1 - t) * w1 + t * w2
        assert torch.allclose(curve_point(spec, w1, bends, w2, t), straight, rtol=1e-5, atol=1e-4)
    noisy = init_bends(spec, w1, w2, noise=0.1, generator=torch.Generator().manual_seed(1))
    rel = (noisy - bends).norm(dim=1) / (w2 - w1).norm()
    assert torch.all((rel > 0.05) & (rel < 0.2))


def test_gradient_flows_to_bends_only():
    spec = CurveSpec("bezier", 2)
    w1, bends, w2 = _vectors(k=2)
    bends.requires_grad_(True)
    curve_point(spec, w1, bends, w2, 0.25).square().sum().backward()
    assert bends.grad is not None and bends.grad.abs().sum() > 0
    assert not w1.requires_grad


def test_functional_evaluation_of_a_bn_model_at_a_curve_point():
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    layout = ParamLayout.of(model)
    w1 = flat_params(model)
    w2 = w1 + torch.randn_like(w1)
    spec = CurveSpec("bezier", 1)
    bends = init_bends(spec, w1, w2, noise=0.5)
    x = torch.randn(16, 3)
    phi = curve_point(spec, w1, bends, w2, 0.3)
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    out = functional_call(model, {**buffers, **layout.unflatten(phi)}, (x,))
    # the same as copying the weights into a fresh model
    ref = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        for p, v in zip(ref.parameters(), layout.unflatten(phi).values(), strict=True):
            p.copy_(v)
    assert torch.allclose(out, ref(x), atol=1e-5)
    assert torch.equal(flat_params(model), w1)  # the model itself untouched


def test_bad_specs_and_shapes_are_one_line_errors():
    # the library names the field; the CLI maps it to --kind / --bends (lossart.options)
    with pytest.raises(LossartError, match="^kind 'spline': expected one of bezier, polychain$"):
        CurveSpec("spline", 1)
    with pytest.raises(LossartError, match=r"^bends 0: expected a whole number in \[1, 64\]$"):
        CurveSpec("bezier", 0)
    with pytest.raises(LossartError, match="^bends 2.0: expected a whole number"):
        CurveSpec("bezier", 2.0)
    w1, bends, w2 = _vectors(k=1)
    with pytest.raises(LossartError, match="bends have shape"):
        curve_point(CurveSpec("bezier", 2), w1, bends, w2, 0.5)
    assert CurveSpec.from_dict(CurveSpec("polychain", 2).to_dict()) == CurveSpec("polychain", 2)


def test_segment_points_are_exact_at_the_ends_and_linear_between():
    from lossart.geometry.curves import segment_points

    w1, w2 = torch.randn(50), torch.randn(50)
    pts = segment_points(w1, w2, torch.linspace(0, 1, 5, dtype=torch.float64))
    assert torch.equal(pts[0], w1) and torch.equal(pts[-1], w2)
    torch.testing.assert_close(pts[2], (w1 + w2) / 2)
