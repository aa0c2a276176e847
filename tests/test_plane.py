"""Plane geometry: orthonormal basis, coordinates, exact 2-D control points, fixed windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from lossart.errors import LossartError
from lossart.geometry.curves import CurveSpec, coefficients, curve_point, init_bends
from lossart.geometry.plane import Window, control_points_2d, plane_through, window_around
from lossart.grid.planes import curve_window, frame_plane

P = 4000


def _rand(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(P, generator=g) for _ in range(n)]


def test_basis_is_orthonormal_and_places_the_three_points():
    w1, w2, w3 = _rand(3, 0)
    pl = plane_through(w1, w2, w3)
    u, v = pl.u_hat.double(), pl.v_hat.double()
    assert abs(float(u @ u) - 1) < 1e-6 and abs(float(v @ v) - 1) < 1e-6
    assert abs(float(u @ v)) < 1e-6
    assert pl.coords(w1) == pytest.approx((0, 0, 0), abs=1e-4)
    x2, y2, d2 = pl.coords(w2)
    assert x2 == pytest.approx(float((w2 - w1).norm()), rel=1e-6)
    assert abs(y2) < 1e-4 and d2 < 1e-3
    x3, y3, d3 = pl.coords(w3)
    assert y3 > 0 and d3 < 1e-3
    back = pl.weights(torch.tensor([[x3, y3]]))[0]
    assert torch.allclose(back, w3, atol=1e-4)


def test_distance_from_plane_of_an_off_plane_vector():
    w1, w2, w3, n = _rand(4, 1)
    pl = plane_through(w1, w2, w3)
    normal = n - (n @ pl.u_hat) * pl.u_hat - (n @ pl.v_hat) * pl.v_hat
    normal = normal / normal.norm()
    w = pl.weights(torch.tensor([[0.3, -1.2]]))[0] + 2.5 * normal
    x, y, d = pl.coords(w)
    assert (x, y, d) == pytest.approx((0.3, -1.2, 2.5), abs=1e-3)


@pytest.mark.parametrize(
    "spec", [CurveSpec("bezier", 1), CurveSpec("bezier", 3), CurveSpec("polychain", 2)], ids=str
)
def test_control_points_2d_reproduce_the_projected_curve(spec):
    w1, w2, *rest = _rand(2 + spec.bends, 2)
    bends = torch.stack(rest)
    pl = plane_through(w1, w2, bends.mean(0))
    cp = control_points_2d(pl, w1, bends, w2)
    assert cp.shape == (spec.bends + 2, 2)
    assert cp[0] == pytest.approx((0, 0), abs=1e-4)
    ts = np.linspace(0, 1, 17)
    c = coefficients(spec, torch.tensor(ts, dtype=torch.float64)).numpy()
    curve_2d = c @ cp
    for t, want in zip(ts, curve_2d, strict=True):
        x, y, d = pl.coords(curve_point(spec, w1, bends, w2, float(t)))
        assert (x, y) == pytest.approx(tuple(want), abs=1e-3)
        if spec.bends == 1:
            assert d < 1e-3  # a quadratic Bézier lies in its frame's plane


def test_three_points_on_a_line_are_refused():
    w1, w2 = _rand(2, 3)
    with pytest.raises(LossartError, match="one line"):
        plane_through(w1, w2, 0.25 * w1 + 0.75 * w2)
    with pytest.raises(LossartError, match="same weights"):
        plane_through(w1, w1.clone(), w2)
    with pytest.raises(LossartError, match="three flat"):
        plane_through(w1, w2, w2[:10])


@dataclass
class _Frame:
    index: int
    bends: torch.Tensor


@dataclass
class _Run:
    spec: CurveSpec
    w1: torch.Tensor
    w2: torch.Tensor
    frames: list


def _fake_run():
    """Frames of a bend leaving the segment: frame 0 on it, then rising and drifting."""
    w1, w2, d1, d2 = _rand(4, 4)
    spec = CurveSpec("bezier", 1)
    b0 = init_bends(spec, w1, w2)
    frames = [_Frame(0, b0)]
    for i, s in enumerate([0.5, 1.0, 2.0, 3.0], start=1):
        frames.append(_Frame(i, b0 + s * d1 + 0.3 * s * s * d2))
    return _Run(spec, w1, w2, frames)


def test_frame_planes_keep_endpoints_still_and_bends_above_the_axis():
    run = _fake_run()
    length = float((run.w2 - run.w1).norm())
    for i in range(len(run.frames)):
        pl = frame_plane(run, i)
        cp = control_points_2d(pl, run.w1, run.frames[i].bends, run.w2)
        assert cp[0] == pytest.approx((0, 0), abs=1e-4)
        assert cp[2] == pytest.approx((length, 0), abs=1e-3)
        assert cp[1][1] >= -1e-4
    # frame 0 (bend on the segment) borrows the plane of frame 1, where the curve goes next
    assert torch.allclose(frame_plane(run, 0).v_hat, frame_plane(run, 1).v_hat)
    with pytest.raises(LossartError, match="frame 9"):
        frame_plane(run, 9)


def test_curve_window_holds_every_frame_and_is_fixed():
    run = _fake_run()
    win = curve_window(run, margin=0.1)
    ts = torch.linspace(0, 1, 33)
    for i, fr in enumerate(run.frames):
        pl = frame_plane(run, i)
        pts = [pl.coords(p)[:2] for p in [run.w1, *fr.bends, run.w2]]
        pts += [
            pl.coords(curve_point(run.spec, run.w1, fr.bends, run.w2, float(t)))[:2] for t in ts
        ]
        assert win.contains(np.array(pts))
    assert win.x_range[0] < 0 < win.x_range[1] and win.y_range[0] < 0
    assert Window.from_dict(win.to_dict()) == win


def test_window_around_margins_and_flat_boxes():
    w = window_around(np.array([[0, 0], [10, 0], [5, 0]]), margin=0.1)
    assert w.x_range == pytest.approx((-1, 11))
    assert w.y_range[1] - w.y_range[0] == pytest.approx(1 + 2)  # min height 10% of width, + margins
    from lossart.grid.config import GridConfig

    with pytest.raises(LossartError, match="^margin -1"):  # the margin's range is declared once
        GridConfig(margin=-1)
