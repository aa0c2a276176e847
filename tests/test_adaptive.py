"""Adaptive refinement (lossart.grid.adaptive) on analytic fields in log10 loss.

Fields: a smooth bowl; the bowl with a sharp ridge band and with a slope crease; a narrow curved
valley. Each is sampled on a 129x129 lattice over [-1, 1]^2 and evaluated by lookup, which is
what evaluating a grid point is (evaluation is deterministic).
"""

from __future__ import annotations

import numpy as np
import pytest

from lossart.errors import LossartError
from lossart.grid.adaptive import (
    AdaptivePlan,
    LevelWork,
    axis_nodes,
    default_coarse_step,
    log_loss,
    refine,
)
from lossart.terrain.heightfield import upsample

N = 129
TOL = 0.01


def lattice(n: int = N, m: int | None = None):
    m = m or n
    x = np.linspace(-1, 1, n)[None, :]
    y = np.linspace(-1, 1, m)[:, None]
    return x, y


def bowl(n: int = N, m: int | None = None) -> np.ndarray:
    x, y = lattice(n, m)
    return 0.5 * (x**2 + 0.7 * y**2) + 0.2 * np.sin(2 * x) * np.cos(1.5 * y) - 1.0


def ridge() -> np.ndarray:
    x, y = lattice()
    return bowl() + np.exp(-(((y - 0.3 * np.sin(2 * x)) / 0.08) ** 2))


def crease() -> np.ndarray:
    x, y = lattice()
    return bowl() + 0.8 * np.abs(x + 0.5 * y - 0.1)


def valley() -> np.ndarray:
    x, y = lattice()
    return 0.3 * (x**2 + y**2) - 1.5 * np.exp(-(((y + 0.2 - 0.4 * x**2) / 0.06) ** 2))


def run(log10: np.ndarray, tol: float = TOL, prior=None, **kw):
    loss = 10.0**log10
    calls = []

    def evaluate(cols, rows):
        calls.append((np.asarray(cols).copy(), np.asarray(rows).copy()))
        return loss[rows, cols]

    plan = AdaptivePlan(log10.shape[1], log10.shape[0], tol, **kw)
    field, evaluated, stats = refine(evaluate, plan, prior=prior)
    return plan, field, evaluated, stats, calls


def max_error(field: np.ndarray, log10: np.ndarray) -> float:
    return float(np.abs(log_loss(field) - log10).max())


def uniform_error(log10: np.ndarray, points: int) -> tuple[int, float]:
    """Every k-th point, k the largest power of two with at least `points` points, upsampled
    bicubically as `terrain --upsample` does: (points used, max error)."""
    k = 1
    while ((N - 1) // (2 * k) + 1) ** 2 >= points:
        k *= 2
    up = upsample(log10[::k, ::k], k) if k > 1 else log10
    return ((N - 1) // k + 1) ** 2, float(np.abs(up - log10).max())


def test_levels_and_coarse_step():
    assert default_coarse_step(129, 129) == 16  # 9 points per side at level 0
    assert default_coarse_step(129, 129, min_coarse=17) == 8
    assert list(axis_nodes(10, 4)) == [0, 4, 8, 9]  # the last sample is always a node
    plan = AdaptivePlan(129, 129, TOL)
    assert plan.levels == 5 and plan.steps == [16, 8, 4, 2, 1]
    assert default_coarse_step(5, 300) == 1 and AdaptivePlan(5, 300, TOL).levels == 1


@pytest.mark.parametrize("make", [bowl, ridge, crease, valley], ids=lambda f: f.__name__)
def test_evaluated_points_keep_their_exact_values(make):
    log10 = make()
    _plan, field, evaluated, stats, calls = run(log10)
    loss = 10.0**log10
    assert np.array_equal(field[evaluated], loss[evaluated])
    assert stats.points == int(evaluated.sum()) == sum(len(c) for c, _ in calls)
    # No point is asked for twice.
    flat = np.concatenate([r * N + c for c, r in calls])
    assert len(np.unique(flat)) == len(flat)


def test_smooth_field_is_done_at_the_coarse_level_within_tol():
    log10 = bowl()
    _plan, field, _ev, stats, _calls = run(log10)
    assert stats.per_level == [81]
    assert stats.saved > 200
    assert max_error(field, log10) < TOL / 10


@pytest.mark.parametrize(
    "make, tol, gain",
    [(ridge, TOL, 2.0), (crease, TOL, 1.2), (valley, 2 * TOL, 2.0)],
    ids=["ridge", "crease", "valley"],
)
def test_sharp_fields_within_tol_and_better_than_uniform_with_as_many_points(make, tol, gain):
    """A crease (a slope jump) is the hard case: its error halves per level only. The narrow
    valley needs more than 65^2 points at TOL, so it is compared with 65^2 at 2*TOL."""
    log10 = make()
    _plan, field, _ev, stats, _calls = run(log10, tol)
    err = max_error(field, log10)
    assert err < 1.5 * tol
    assert np.sqrt(np.mean((log_loss(field) - log10) ** 2)) < tol / 5
    used, uniform = uniform_error(log10, stats.points)
    assert used >= stats.points and stats.points < N * N / 3
    assert err < uniform / gain


def test_without_refinement_the_sharp_band_is_missed():
    """The a priori look at level 0 is what finds the ridge: the check points alone cannot."""
    log10 = ridge()
    _plan, field, _ev, stats, _calls = run(log10, a_priori_levels=0)
    assert stats.per_level == [81]
    assert max_error(field, log10) > 0.5


def test_dilation_catches_what_check_points_just_miss():
    log10 = valley()
    _p, dilated, _e, s1, _c = run(log10)
    _p, bare, _e, s0, _c = run(log10, dilate=0)
    assert s0.points < s1.points
    assert max_error(bare, log10) > max_error(dilated, log10)


def test_level_sets_are_deterministic_and_a_killed_run_resumes_identically():
    log10 = ridge()
    plan, field, evaluated, _stats, calls = run(log10)
    loss = 10.0**log10
    assert [len(c) for c, _ in calls] == [len(c) for c, _ in run(log10)[4]]
    # Killed during level 2, after two of its units (and level 0, 1 done).
    values = np.full((N, N), np.nan)
    done = np.zeros((N, N), dtype=bool)

    def do(work: LevelWork):
        values[work.rows, work.cols] = log_loss(loss[work.rows, work.cols])
        done[work.rows, work.cols] = True

    for _ in range(2):
        do(plan.next_work(values, done))
    level2 = plan.next_work(values, done)
    assert level2.level == 2
    units = level2.units(50)
    for unit in units[:2]:
        do(unit)
    rest = plan.next_work(values, done)
    assert rest.level == 2
    assert np.array_equal(
        np.sort(rest.rows * N + rest.cols),
        np.sort(np.concatenate([u.rows * N + u.cols for u in units[2:]])),
    )
    # Finish with shards of each level in any order: the same points, the same field.
    while (work := plan.next_work(values, done)) is not None:
        for i in (2, 0, 1):
            do(work.shard(i, 3))
    assert np.array_equal(done, evaluated)
    filled = plan.fill(values, done)
    np.testing.assert_allclose(10.0 ** filled[~done], field[~done], rtol=1e-12)
    assert np.array_equal(plan.chosen(values, done), evaluated)


def test_extra_evaluated_points_do_not_change_the_plan():
    log10 = crease()
    plan, _field, evaluated, _stats, _calls = run(log10)
    values = log10.copy()  # everything evaluated: the plan still picks the same points
    assert np.array_equal(plan.chosen(values, np.ones((N, N), dtype=bool)), evaluated)


def test_level_points_needs_the_earlier_levels():
    plan = AdaptivePlan(N, N, TOL)
    values = bowl()
    none = np.zeros((N, N), dtype=bool)
    assert plan.level_points(0, values, none).count == 81
    with pytest.raises(LossartError, match="level 0 still misses 81 points"):
        plan.level_points(2, values, none)


def test_non_finite_values_are_surrounded_by_evaluated_points():
    """Diverged points refine around them down to the finest level. (A diverged patch that no
    sample touches cannot be seen: as any feature narrower than the coarse step.)"""
    log10 = bowl()
    x, y = lattice()
    log10[np.broadcast_to((x - 0.6) ** 2 + (y + 0.5) ** 2 < 0.2**2, log10.shape)] = np.nan
    log10[64, 64] = np.inf  # one diverged coarse node
    _plan, field, evaluated, _stats, _calls = run(log10)
    bad = ~np.isfinite(log10)
    assert evaluated[bad].all()
    near = np.zeros_like(bad)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            near |= np.roll(np.roll(bad, di, 0), dj, 1)
    assert evaluated[near].all()
    good = np.isfinite(log10)
    assert np.isfinite(field[good]).all()
    assert np.abs(log_loss(field[good]) - log10[good]).max() < TOL


def test_prior_mask_adds_the_previous_frames_points():
    prev = ridge()
    _p, _f, prior, _s, _c = run(prev)
    log10 = crease()
    _p, field_alone, alone, s_alone, _c = run(log10)
    _p, field, seeded, s_seeded, _c = run(log10, prior=prior)
    assert (seeded >= alone).all() and (seeded >= prior).all()
    assert s_seeded.points > s_alone.points
    assert max_error(field, log10) <= max_error(field_alone, log10) + 1e-12
    # A full prior asks for every point.
    _p, _f, every, _s, _c = run(log10, prior=np.ones((N, N), dtype=bool))
    assert every.all()


def test_non_square_non_power_of_two_lattice_and_linear_fill():
    log10 = bowl(100, 37)
    for interpolation in ("cubic", "linear"):
        _plan, field, evaluated, stats, _c = run(log10, interpolation=interpolation)
        assert field.shape == (37, 100)
        assert evaluated[[0, 0, -1, -1], [0, -1, 0, -1]].all()  # window corners
        assert max_error(field, log10) < TOL
        assert stats.saved > 2


def test_bad_input_is_a_one_line_error():
    with pytest.raises(LossartError, match="^adaptive 0.0: expected a number > 0"):
        AdaptivePlan(N, N, 0.0)
    with pytest.raises(LossartError, match="coarse step 12: expected a power of two"):
        AdaptivePlan(N, N, TOL, coarse_step=12)
    with pytest.raises(LossartError, match="at least 2x2 points"):
        AdaptivePlan(1, N, TOL)
    with pytest.raises(LossartError, match="interpolation 'quintic'"):
        AdaptivePlan(N, N, TOL, interpolation="quintic")
    plan = AdaptivePlan(N, N, TOL)
    with pytest.raises(LossartError, match=r"must both be \(height, width\)"):
        plan.fill(np.zeros((N, N - 1)), np.ones((N, N - 1), dtype=bool))
    with pytest.raises(LossartError, match="81 points of the coarse lattice are not evaluated"):
        plan.fill(np.zeros((N, N)), np.zeros((N, N), dtype=bool))
    with pytest.raises(LossartError, match="returned 1 values for 81 points"):
        refine(lambda c, r: np.ones(1), plan)
