"""Filter-normalized random directions (Li et al. 2018) and the plane they span."""

from __future__ import annotations

import pytest
import torch

from lossart.errors import LossartError
from lossart.geometry.directions import (
    DirectionPlane,
    centred_window,
    filter_normalize,
    random_direction,
    random_plane,
)
from lossart.geometry.weights import ParamLayout, flat_params
from lossart.models import ModelSpec, create_model


@pytest.fixture
def net():
    """smallcnn: conv and linear weights (filters), BN weights and biases, linear bias."""
    model = create_model(ModelSpec("smallcnn", 6, (3, 16, 16), {"width": 4}))
    with torch.no_grad():  # BN weights of 1 would hide a wrong rule for 1-dim parameters
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model, ParamLayout.of(model), flat_params(model)


def pieces(layout: ParamLayout, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    return layout.unflatten(flat)


def test_every_filter_takes_the_norm_of_the_weights_filter(net):
    model, layout, w = net
    d = random_direction(model, w, seed=3)
    assert d.shape == w.shape and d.dtype == torch.float32
    dp, wp = pieces(layout, d), pieces(layout, w)
    filters = 0
    for name, shape in zip(layout.names, layout.shapes):
        if len(shape) >= 2:
            dn = dp[name].reshape(shape[0], -1).double().norm(dim=1)
            wn = wp[name].reshape(shape[0], -1).double().norm(dim=1)
            torch.testing.assert_close(dn, wn, rtol=1e-5, atol=0)
            filters += shape[0]
        else:
            assert torch.count_nonzero(dp[name]) == 0, name  # biases and BN: zero by default
    assert filters > 0 and any(len(s) == 1 for s in layout.shapes)


def test_kept_one_dim_parameters_take_the_weights_magnitude(net):
    model, layout, w = net
    d = random_direction(layout, w, seed=3, ignore=None)
    d0 = random_direction(layout, w, seed=3)
    dp, wp, d0p = pieces(layout, d), pieces(layout, w), pieces(layout, d0)
    for name, shape in zip(layout.names, layout.shapes):
        if len(shape) == 1:
            torch.testing.assert_close(dp[name].abs(), wp[name].abs(), rtol=1e-6, atol=0)
        else:
            assert torch.equal(dp[name], d0p[name])  # the rest is unchanged by the option
    signs = torch.cat([dp[n].sign() for n, s in zip(layout.names, layout.shapes) if len(s) == 1])
    assert (signs > 0).any() and (signs < 0).any()  # random signs, not a copy of w


def test_seeds_are_reproducible_and_distinct(net):
    model, layout, w = net
    assert torch.equal(random_direction(model, w, 5), random_direction(layout, w, 5))
    assert not torch.equal(random_direction(model, w, 5), random_direction(model, w, 6))
    p0, p0b, p1 = random_plane(w, layout, 0), random_plane(w, layout, 0), random_plane(w, layout, 1)
    assert torch.equal(p0.u, p0b.u) and torch.equal(p0.v, p0b.v)
    assert torch.equal(p0.u, random_direction(layout, w, 0))
    vectors = [p0.u, p0.v, p1.u, p1.v]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(vectors[i], vectors[j]), (i, j)
    assert abs(p0.cosine) < 0.5


def test_direction_plane_is_in_units_of_the_directions(net):
    model, layout, w = net
    plane = random_plane(w, layout, 2)
    assert torch.equal(plane.origin, w) and plane.u_hat is plane.u and plane.v_hat is plane.v
    xy = torch.tensor([[0.3, -0.7], [1.0, 0.0]])
    ws = plane.weights(xy)
    torch.testing.assert_close(ws[1], w + plane.u)
    got = plane.coords_many(ws)
    torch.testing.assert_close(torch.from_numpy(got[:, :2]).float(), xy, atol=1e-5, rtol=0)
    assert got[:, 2].max() < 1e-4 * float(w.norm())
    x, y, dist = plane.coords(w + 0.5 * plane.u + 2.0 * torch.randn_like(w))
    assert dist > 0
    assert isinstance(plane.to("cpu"), DirectionPlane)
    assert centred_window(1.0).x_range == (-1.0, 1.0)


def test_grid_engine_evaluates_a_direction_plane(net):
    from lossart.evaluation import evaluate_exact_bn
    from lossart.grid.engine import GridEngine

    model, layout, w = net
    plane = random_plane(w, layout, 4)
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 6, (32,))
    engine = GridEngine(model, layout, x, y)
    engine.set_plane(plane.origin, plane.u_hat, plane.v_hat)
    res = engine.evaluate([0.5], [-0.25])
    ref = evaluate_exact_bn(model, layout, plane.weights([[0.5, -0.25]])[0], x, y)
    assert res.loss[0] == pytest.approx(ref.loss, rel=1e-4)


def test_bad_inputs_are_one_line(net):
    model, layout, w = net
    with pytest.raises(LossartError, match="ignore='bn'"):
        filter_normalize(layout, w, w, ignore="bn")
    with pytest.raises(LossartError, match="the model has"):
        random_direction(model, w[:-1], 0)
    bias_only = ParamLayout(("b",), ((4,),))
    with pytest.raises(LossartError, match="pass ignore=None"):
        random_plane(torch.ones(4), bias_only, 0)
