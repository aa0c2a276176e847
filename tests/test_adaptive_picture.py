"""The adaptive sampler judged in what the picture shows (`PictureTolerance`).

Synthetic surfaces only (pure numpy): a steep narrow valley near the minimum, where log10 loss
hardly moves but the terrain's log10-excess heights plunge, and a surface rough all over.
"""

from __future__ import annotations

import numpy as np
import pytest

from lossart.errors import LossartError
from lossart.grid.adaptive import (
    DEFAULT_EXCESS_OFFSET,
    AdaptivePlan,
    PictureTolerance,
    criterion_record,
    plan_from_record,
    refine,
)
from lossart.terrain.fidelity import picture_errors
from lossart.terrain.heightfield import HeightMapping, TerrainConfig, resolve_loss_cap

W, H = 129, 73
XS, YS = np.linspace(-1.6, 1.6, W), np.linspace(-0.9, 0.9, H)
ASPECT = 3.2 / 1.8


def valley() -> tuple[np.ndarray, np.ndarray]:
    """A bowl whose floor holds a valley 0.08 deep and 0.03 wide: (loss, the valley's band)."""
    x, y = np.meshgrid(XS, YS)
    across = y - 0.2 * x
    loss = 0.8 + 1.8 * (x**2 + y**2) ** 1.5 + 0.08 * (1 - np.exp(-(across**2) / (2 * 0.03**2)))
    return loss, np.abs(across) < 0.06


def run(loss: np.ndarray, plan: AdaptivePlan):
    field, evaluated, stats = refine(lambda c, r: loss[r, c], plan)
    cap = resolve_loss_cap([loss], TerrainConfig())
    xs, ys = np.linspace(0, 1, loss.shape[1]), np.linspace(0, 1, loss.shape[0])
    if loss.shape == (H, W):
        xs, ys = XS, YS
    share, p99 = picture_errors(field, loss, cap, xs, ys)
    return evaluated, stats, share, p99


def test_picture_criterion_refines_the_steep_valley_the_log10_one_misses():
    loss, band = valley()
    old_mask, old_stats, old_share, old_p99 = run(loss, AdaptivePlan(W, H, 0.01))
    picture = PictureTolerance(0.01, aspect=ASPECT)
    mask, stats, share, p99 = run(loss, AdaptivePlan(W, H, 0.01, picture=picture))
    # log10 loss at 0.01 leaves the valley coarse: the picture is off by more than it allows.
    assert old_share > 0.01 and old_p99 > 1.0
    # The picture criterion evaluates the valley and keeps heights and normals in tolerance.
    assert mask[band].mean() > 0.8 > 0.5 > old_mask[band].mean()
    assert share <= 0.01 and p99 <= 1.0
    assert stats.points < W * H  # still adaptive: most of the bowl's plateau is interpolated
    assert mask[~band].mean() < 0.5


def test_steepness_bound_holds_for_any_run_minimum_and_cap():
    """The bound from the frame's own points is never below the true transform's slope."""
    rng = np.random.default_rng(0)
    loss, _ = valley()
    pic = PictureTolerance(0.01)
    chosen = np.zeros(loss.shape, dtype=bool)
    chosen[::8, ::8] = True
    m_frame, offset_low = pic.bounds(np.log10(loss), chosen)
    q99 = float(np.quantile(loss[chosen], 0.99))
    for _ in range(200):
        m = m_frame - rng.uniform(0, 0.7)  # the run's minimum: at or below the frame's
        cap = m + rng.uniform(pic.cap_share, 3.0) * (q99 - m_frame)  # cap_share's assumption
        mapping = HeightMapping.resolve(TerrainConfig(), cap, m)
        assert mapping.offset >= offset_low
        lo = 10 ** rng.uniform(np.log10(max(m, 1e-3)), np.log10(cap), size=50)
        hi = lo * 10 ** rng.uniform(0, 0.05, size=50)
        bound = pic.steepness(lo, hi, m_frame, offset_low)
        for a, b, g in zip(lo, hi, bound, strict=True):
            grid = np.linspace(a, b, 64)
            true = grid / (grid - m + mapping.offset)  # dh/dlog10(L) of log10(L - m + offset)
            assert true.max() <= g * (1 + 1e-9)


def test_the_default_transform_is_the_terrains():
    config = TerrainConfig()
    assert DEFAULT_EXCESS_OFFSET == config.excess_offset
    pic = PictureTolerance(0.01)
    assert pic.relief == config.relief
    mapping = HeightMapping.resolve(config, 5.0, 0.8)
    z, _ = mapping.heights(np.array([0.8, 5.0]))
    assert float(z[1] - z[0]) == pytest.approx(pic.span, rel=1e-5)


def test_uniform_fallback_refines_every_cell_of_a_rough_level():
    x, y = np.meshgrid(np.linspace(0, 1, 65), np.linspace(0, 1, 65))
    loss = 1.5 + 0.5 * np.sin(12 * x + 1) * np.cos(12 * y) + 0.3 * np.sin(30 * x * y)
    never = PictureTolerance(0.01, uniform_share=1.0)
    fallback = PictureTolerance(0.01)
    mask_a, stats_a, share_a, p99_a = run(loss, AdaptivePlan(65, 65, 0.01, picture=never))
    mask_b, stats_b, share_b, p99_b = run(loss, AdaptivePlan(65, 65, 0.01, picture=fallback))
    # Without the fallback most, not all, of the finest level is asked for (uneven error left
    # where the coarse cells stay); with it all of it: the uniform lattice, exact here.
    assert 0.5 < stats_a.per_level[-1] / (65 * 65 - 33 * 33) < 1
    assert mask_b.all() and not mask_a.all()
    assert share_b < share_a and p99_b < p99_a and share_b == 0


def test_criterion_records_round_trip_and_old_grids_keep_log10():
    rec = criterion_record("picture", 0.01, 16 / 9)
    plan = plan_from_record(33, 19, 0.01, rec, 16 / 9)
    assert plan.picture is not None and plan.picture.normal_deg == rec["normal_deg"]
    assert plan_from_record(33, 19, 0.01, None, None).picture is None  # before the record
    assert plan_from_record(33, 19, 0.01, {"kind": "log10"}, None).picture is None
    with pytest.raises(LossartError, match="expected one of"):
        plan_from_record(33, 19, 0.01, {"kind": "fancy"}, None)
    with pytest.raises(LossartError, match="expected one of"):
        criterion_record("fancy", 0.01, None)
    with pytest.raises(LossartError, match="share of the relief"):
        PictureTolerance(2.0)
