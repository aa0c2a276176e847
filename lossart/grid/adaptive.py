"""Adaptive refinement: a W×H loss grid from a fraction of its points, level by level.

Loss landscapes in a curve's plane are smooth almost everywhere and sharp in a few places (the
basins' rims, the valley along the path, creases where ReLU patterns switch). So instead of
evaluating every lattice point, a plan evaluates a coarse lattice, then only those points of each
finer lattice that the coarser one cannot predict, and fills the rest by interpolation. Pure
numpy: no torch, no I/O; docs/grid.md has the measured numbers.

Levels. Level 0 is every `coarse_step`-th point of each axis (plus the last one, so the window's
edges are always sampled; `coarse_step` a power of two, by default the largest leaving at least
`min_coarse` points on the shorter side). Each level halves the step, down to 1 (the target
lattice). A level-l *cell* is the rectangle between neighbouring level-l nodes; refining it means
evaluating its new level-(l+1) nodes (edge midpoints and centre), plus any of its corners that
were interpolated so far (so no finer point is ever interpolated from an interpolated corner).

Which cells are refined, and why. A cell is refined when an estimate of the interpolation error
inside it exceeds `tol` (in the units of the values: log10 loss for the grid), or, with a
`PictureTolerance` (the grid's default "picture" criterion), the log10-loss error that keeps the
terrain's heights within `share` of the relief and its normals within `normal_deg` there:

- *a posteriori*, the check points: every node evaluated at level l has a surplus, its value
  minus what level l-1's field said there, i.e. the true error of interpolating at twice this
  level's step. If the cell stays unrefined, its inside is interpolated at this level's step,
  whose error is the surplus over 2^p, p the local order of convergence: 4 on smooth ground
  (cubic), 1 at a kink. A cell is refined where a corner's surplus / `surplus_ratio` > tol;
  the default 2 is the kink-safe ratio: on the real grids measured the worst error was
  0.35-0.65 × tol (at 4 up to 1.5 × tol). A kink passing between check points is the weak
  case: on an analytic crease (a straight slope jump) the worst error reaches 1.4-1.9 × tol;
  `surplus_ratio=1` keeps it at 0.04-0.5 × tol for 2.1-2.3× the points.
- *a priori*, for level 0 where nothing has been checked yet (`a_priori_levels`, default 1):
  along each cell edge, KINK times the larger one-sided correction (the interpolant through
  one more node on one side minus the one used). On smooth data the correction is the
  interpolation error itself; times KINK it bounds the error across a kink, the worst case a
  coarse look cannot rule out. On smooth ground it refines nothing (an analytic bowl is done
  with level 0); on the real grids measured it refines all of level 1 (1/60 of the points).
  Applied at every level it cost 60-100% more points for a worst error that was below tol
  without it already (the check points cover what it sees).

The refined set is then dilated by `dilate` cells: a feature whose check point lies on one
cell's corner is also resolved in the neighbours it reaches into. Without dilation the worst
error on the real grids was 1.1-1.7× tol (a valley passing between check points), with it
below tol, for 25-40% more points. Non-finite values (diverged points) refine every cell touching them at every level, so the
final field never interpolates across them.

Fill. The field is built coarse to fine: each level's lattice is interpolated from the previous
level's (separably, x then y; cubic Lagrange on 4 nodes, one-sided at the edges, or linear), and
evaluated values overwrite the interpolated ones. Evaluated points keep their exact values; a
stencil holding a non-finite value falls back to linear between the two bracketing nodes.
Cubic needs 20-55% fewer points than linear at a lower worst error. A not-a-knot spline along
each line (`interpolation="spline"`; lines holding a non-finite value keep the local stencils)
needed up to 20% fewer points on the smoothest frames but rings around sharp bands (1.3 × tol
on the ridge field), so cubic is the default; the smoothest of the shifted cubic stencils
(ENO) was measured too and did not pay.

Determinism, resuming and sharding. Level l's point set is a function of the values at the
points chosen for levels < l only (extra evaluated points, such as a partly finished level or
another tolerance's points, never change the plan; `fill` does use them). So a killed run that
kept its evaluated values resumes with exactly the same sets (`next_work`), and a level's points,
in a fixed row-major order, can be split into units of work (`LevelWork.units`) or shards
(`LevelWork.shard`) freely. `prior` (the previous video frame's evaluated mask) additionally
refines, at each level, the cells where the previous frame had evaluated new points: that
lowers the worst error, but cost 20-120% more points per frame on the frames measured (more
when chained, since the seeded set only grows), so it is off unless asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lossart.errors import LossartError
from lossart.format.bundle import DEFAULT_RELIEF
from lossart.grid.config import ADAPTIVE_CRITERIA, GridConfig
from lossart.options import check_value

#: Losses are floored here before the log10 (the terrain's default floor: below it the terrain
#: is flat, so no difference there can matter).
LOSS_FLOOR = 1e-4
INTERPOLATIONS = ("cubic", "spline", "linear")
ORDER = {"spline": 4, "cubic": 4, "linear": 2}  # nodes per local stencil (spline: its fallback)
#: A priori estimates are this many times the one-sided higher-order correction. On smooth data
#: the correction is the interpolation error itself (cubic midpoint: 3/128·Δ⁴); across a kink
#: (a jump in slope, what ReLU networks make) the error is 16× (cubic; linear 4×) the
#: correction at its worst (kink mid-interval: cubic error 3/16·h·jump, correction 3/256·h·jump),
#: so the estimate bounds kinks and overstates smooth curvature, which costs points, not accuracy.
KINK = {"spline": 16.0, "cubic": 16.0, "linear": 4.0}


#: The terrain's default `excess_offset` (`lossart.terrain.heightfield.TerrainConfig`; a test
#: keeps the two equal): the picture criterion bounds the default transform's steepness with it.
DEFAULT_EXCESS_OFFSET = 0.02
#: Criteria a grid can be refined by (grid.json's `adaptive_criterion`; absent: "log10").
CRITERIA = ADAPTIVE_CRITERIA


@dataclass(frozen=True)
class PictureTolerance:
    """Judge the error in what the picture shows, not in log10 loss (`criterion` "picture").

    The terrain draws h = log10(L - m + offset) (the default log10-excess transform, m the
    run's lowest loss, offset = `excess_offset` x (cap - m)), its whole range rising `relief`
    of the window's width, and shades it by its normals. A log10-loss error e at loss L moves
    the height by e x dh/dlog10(L) = e x L / (L - m + offset): about 1 on the plateau, up to
    m / offset near the floor (6x on the real subject). The relief spans log10(1 + 1/excess_
    offset) decades whatever m and cap are, so a height error is a share of the relief by one
    constant. The grid does not know the run's m or cap while it refines, so the steepness is
    bounded from the safe side with the frame's own evaluated points: for any m at or below
    the frame's lowest loss so far (the run's m is), the steepness at L is at most
    L / (max(L - m_frame, 0) + offset_low), with offset_low = excess_offset x `cap_share` x
    (the frame's 99th-percentile loss so far - m_frame): it assumes the run's cap is at least
    `cap_share` of the way from this frame's lowest loss to its own 99th percentile.

    A cell left interpolated at lattice step s holds an error bump about s cells wide, whose
    slope is at most pi x amplitude / width; at the default relief (window `aspect` = its
    width / height in plane units, None: square cells) that bounds the normal's error. The
    allowed share is the smaller of `share` and what keeps that slope within `normal_deg`, after
    the terrain's Gaussian smoothing (`sigma` cells, its default) has scaled the bump's slope by
    exp(-(pi sigma / s)^2 / 2), as it does a sinusoid of that half-wavelength. The height share
    ignores the smoothing (which only lowers it). Above `uniform_share` of a level's cells to refine, every cell is refined: the
    surface is rough all over, where a uniform lattice with cubic fill beats an adaptive one
    at equal points (benchmarks/RESULTS.md).
    """

    share: float
    normal_deg: float = 1.0
    aspect: float | None = None
    relief: float = DEFAULT_RELIEF
    excess_offset: float = DEFAULT_EXCESS_OFFSET
    cap_share: float = 0.5
    uniform_share: float = 0.5
    sigma: float = 1.0

    def __post_init__(self) -> None:
        checks = (
            ("--adaptive", self.share, 0 < self.share < 1, "a share of the relief in (0, 1)"),
            ("normal tolerance", self.normal_deg, 0 < self.normal_deg < 90, "degrees in (0, 90)"),
            ("relief", self.relief, 0 < self.relief <= 4, "a share of the width in (0, 4]"),
            ("excess offset", self.excess_offset, 0 < self.excess_offset <= 1, "in (0, 1]"),
            ("cap share", self.cap_share, 0 < self.cap_share <= 1, "in (0, 1]"),
            ("uniform share", self.uniform_share, 0 < self.uniform_share <= 1, "in (0, 1]"),
            ("smoothing", self.sigma, 0 <= self.sigma, "a sigma >= 0 in grid cells"),
        )
        for name, value, ok, expected in checks:
            if not (math.isfinite(value) and ok):
                raise LossartError(f"adaptive {name} {value}: expected {expected}")
        if self.aspect is not None and not (math.isfinite(self.aspect) and self.aspect > 0):
            raise LossartError(f"adaptive window aspect {self.aspect}: expected a ratio > 0")

    @property
    def span(self) -> float:
        """Decades of height the relief spans: log10(1 + 1 / excess_offset)."""
        return math.log10(1.0 + 1.0 / self.excess_offset)

    def to_dict(self) -> dict:
        """What grid.json records (`adaptive_criterion`), beside `adaptive` (the share)."""
        return {
            "kind": "picture",
            "normal_deg": self.normal_deg,
            "relief": self.relief,
            "excess_offset": self.excess_offset,
            "cap_share": self.cap_share,
            "uniform_share": self.uniform_share,
            "sigma": self.sigma,
        }

    def allowed_share(self, width: int, height: int, step: int) -> float:
        """The height error (share of the relief) a cell at lattice `step` may keep."""
        aspect = self.aspect if self.aspect is not None else (width - 1) / max(height - 1, 1)
        cells_per_width = max(width - 1, aspect * (height - 1))  # lattice steps per window width
        slope = math.tan(math.radians(self.normal_deg))
        # The terrain's Gaussian smoothing scales a bump's slope down by this much.
        kept = math.exp(-0.5 * (math.pi * self.sigma / step) ** 2)
        return min(self.share, slope * step / (math.pi * self.relief * cells_per_width * kept))

    def steepness(self, low: np.ndarray, high: np.ndarray, loss_min: float, offset: float):
        """Largest dh/dlog10(L) for L in [low, high] (losses), elementwise."""

        def g(loss):
            return loss / (np.maximum(loss - loss_min, 0.0) + offset)

        inside = np.clip(loss_min, low, high)
        return np.maximum.reduce([g(low), g(high), g(inside)])

    def bounds(self, values: np.ndarray, chosen: np.ndarray) -> tuple[float, float]:
        """(lowest loss, offset's lower bound) from the log10 losses at the chosen points."""
        with np.errstate(invalid="ignore"):
            v = values[chosen & np.isfinite(values)]
        if v.size == 0:
            return LOSS_FLOOR, self.excess_offset * LOSS_FLOOR
        loss = 10.0**v
        low = float(loss.min())
        spread = float(np.quantile(loss, 0.99)) - low
        offset = self.excess_offset * self.cap_share * spread
        return low, max(offset, self.excess_offset * max(low, LOSS_FLOOR) * 1e-3)


def axis_nodes(n: int, step: int) -> np.ndarray:
    """Indices 0, step, 2*step, ... below n, plus n-1 (the last sample is always a node)."""
    nodes = np.arange(0, n, step, dtype=np.int64)
    if nodes[-1] != n - 1:
        nodes = np.append(nodes, n - 1)
    return nodes


def default_coarse_step(width: int, height: int, min_coarse: int = 9) -> int:
    """The largest power of two leaving at least `min_coarse` nodes on the shorter side."""
    short = min(width, height)
    step = 1
    while len(axis_nodes(short, step * 2)) >= min_coarse:
        step *= 2
    return step


def lagrange_weights(nodes: np.ndarray, x: float) -> np.ndarray:
    """Weights of the Lagrange polynomial through `nodes`, evaluated at x."""
    w = np.ones(len(nodes))
    for k, xk in enumerate(nodes):
        for m, xm in enumerate(nodes):
            if m != k:
                w[k] *= (x - xm) / (xk - xm)
    return w


@dataclass(frozen=True)
class AxisStep:
    """One axis from level l to l+1: where each fine node comes from.

    `fine` are the level-(l+1) node indices; `same[q]` is the coarse position of fine node q where
    it is a coarse node (else -1); for the others (`new`), `idx`/`w` are the local interpolation
    stencil over coarse positions, `bracket`/`bracket_w` the linear one between the two coarse
    nodes around it, and `spline` (interpolation "spline" only) the spline's weights over all
    coarse nodes. `mid[t]` is the fine position of the new node inside coarse interval t (-1:
    none); `err_idx`/`err_w` [side, interval, k] give the a priori estimate's one-sided
    higher-order-minus-used weights.
    """

    fine: np.ndarray
    same: np.ndarray
    new: np.ndarray
    idx: np.ndarray
    w: np.ndarray
    bracket: np.ndarray
    bracket_w: np.ndarray
    mid: np.ndarray
    err_idx: np.ndarray
    err_w: np.ndarray
    spline: np.ndarray | None = None  # [new, coarse]: not-a-knot cubic spline weights


def spline_weights(nodes: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """[len(x), len(nodes)] weights of the not-a-knot cubic spline through `nodes` at points x
    (strictly inside intervals); None below 4 nodes."""
    nodes = np.asarray(nodes, dtype=np.float64)
    n = len(nodes)
    if n < 4:
        return None
    h = np.diff(nodes)
    # Second derivatives m solve A m = R f: continuity of the slope at interior nodes, and
    # continuity of the third derivative at the second and second-to-last (not-a-knot).
    a = np.zeros((n, n))
    r = np.zeros((n, n))
    for i in range(1, n - 1):
        a[i, i - 1 : i + 2] = h[i - 1], 2 * (h[i - 1] + h[i]), h[i]
        r[i, i - 1 : i + 2] = 6 / h[i - 1], -6 / h[i - 1] - 6 / h[i], 6 / h[i]
    a[0, :3] = h[1], -(h[0] + h[1]), h[0]
    a[-1, -3:] = h[-1], -(h[-2] + h[-1]), h[-2]
    moments = np.linalg.solve(a, r)  # [n, n]: m = moments @ f
    t = np.clip(np.searchsorted(nodes, x) - 1, 0, n - 2)
    hi, left, right = h[t], x - nodes[t], nodes[t + 1] - x
    w = np.zeros((len(x), n))
    rows = np.arange(len(x))
    w[rows, t] += right / hi
    w[rows, t + 1] += left / hi
    w += ((right**3 / hi - right * hi) / 6)[:, None] * moments[t]
    w += ((left**3 / hi - left * hi) / 6)[:, None] * moments[t + 1]
    return w


def stencil(t: int, k: int, n: int) -> np.ndarray:
    """The k consecutive coarse positions centred on interval t (shifted inside 0..n-1)."""
    k = min(k, n)
    start = min(max(t - k // 2 + 1, 0), n - k)
    return np.arange(start, start + k)


def axis_step(coarse: np.ndarray, fine: np.ndarray, order: int, spline: bool = False) -> AxisStep:
    """Interpolation and error-estimate stencils from coarse to fine nodes of one axis."""
    n = len(coarse)
    pos = {int(c): p for p, c in enumerate(coarse)}
    same = np.array([pos.get(int(f), -1) for f in fine], dtype=np.int64)
    new = np.nonzero(same < 0)[0]
    k = min(order, n)
    idx = np.zeros((len(new), k), dtype=np.int64)
    w = np.zeros(idx.shape)
    bracket = np.zeros((len(new), 2), dtype=np.int64)
    bracket_w = np.zeros((len(new), 2))
    mid = np.full(n - 1, -1, dtype=np.int64)
    err_idx = np.zeros((2, n - 1, k + 1), dtype=np.int64)
    err_w = np.zeros((2, n - 1, k + 1))
    for r, q in enumerate(new):
        x = float(fine[q])
        t = int(np.searchsorted(coarse, x)) - 1  # coarse[t] < x < coarse[t+1]
        mid[t] = q
        s = stencil(t, order, n)
        idx[r], w[r] = s, lagrange_weights(coarse[s].astype(float), x)
        bracket[r] = (t, t + 1)
        a, b = float(coarse[t]), float(coarse[t + 1])
        bracket_w[r] = ((b - x) / (b - a), (x - a) / (b - a))
        # A priori, per side: the interpolant through one more node on that side minus the
        # one used (zero where the axis has no node left there).
        for side, extra in enumerate((s[0] - 1, s[-1] + 1)):
            err_idx[side, t] = s[0]
            if 0 <= extra < n:
                s_hi = np.sort(np.append(s, extra))
                err_idx[side, t] = s_hi
                w_hi = lagrange_weights(coarse[s_hi].astype(float), x)
                w_hi[np.searchsorted(s_hi, s)] -= w[r]
                err_w[side, t] = w_hi
    sw = spline_weights(coarse, fine[new].astype(np.float64)) if spline and len(new) else None
    return AxisStep(fine, same, new, idx, w, bracket, bracket_w, mid, err_idx, err_w, sw)


def interpolate_axis(f: np.ndarray, step: AxisStep, axis: int) -> np.ndarray:
    """The field on the fine nodes of `axis` from its values on the coarse nodes.

    Coarse nodes are copied; new nodes get the stencil's weighted sum, or the linear value
    between the bracketing nodes where the stencil holds a non-finite value.
    """
    f = np.moveaxis(np.asarray(f, dtype=np.float64), axis, -1)
    out = np.empty(f.shape[:-1] + (len(step.fine),))
    keep = step.same >= 0
    out[..., keep] = f[..., step.same[keep]]
    if len(step.new):
        with np.errstate(invalid="ignore", over="ignore"):
            vals = f[..., step.idx]  # [..., new, k]
            est = np.einsum("...nk,nk->...n", vals, step.w)
            bad = ~np.isfinite(vals).all(axis=-1)
            if step.spline is not None:
                # A line holding a non-finite value keeps the local stencils (a spline would
                # spread it along the whole line).
                whole = np.isfinite(f).all(axis=-1, keepdims=True)
                est = np.where(whole, np.where(whole, f, 0.0) @ step.spline.T, est)
            if bad.any():
                lin = (f[..., step.bracket] * step.bracket_w).sum(axis=-1)
                est = np.where(bad, lin, est)
        out[..., step.new] = est
    return np.moveaxis(out, -1, axis)


def edge_errors(f: np.ndarray, step: AxisStep, axis: int, kink: float) -> np.ndarray:
    """A priori error estimate on every coarse interval along `axis` (inf: non-finite data).

    `kink` times the larger one-sided correction (see KINK). Intervals without a new node
    inside get 0: nothing there will be predicted.
    """
    f = np.moveaxis(np.asarray(f, dtype=np.float64), axis, -1)
    with np.errstate(invalid="ignore", over="ignore"):
        vals = f[..., step.err_idx]  # [..., 2 sides, intervals, k]
        est = np.abs(np.einsum("...stk,stk->...st", vals, step.err_w)).max(axis=-2)
        bad = ~np.isfinite(vals).all(axis=-1).all(axis=-2)
    est = np.where(bad, np.inf, kink * est)
    est[..., step.mid < 0] = 0.0
    return np.moveaxis(est, -1, axis)


def dilate(mask: np.ndarray, cells: int) -> np.ndarray:
    """`mask` grown by `cells` in every direction (8-neighbourhood), without scipy."""
    out = mask.copy()
    for _ in range(cells):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        rows = grown.copy()
        grown[:, 1:] |= rows[:, :-1]
        grown[:, :-1] |= rows[:, 1:]
        out = grown
    return out


@dataclass(frozen=True)
class LevelWork:
    """The points one level asks for: rows (y indices) and cols (x indices), row-major order."""

    level: int
    rows: np.ndarray
    cols: np.ndarray

    @property
    def count(self) -> int:
        return len(self.rows)

    def units(self, size: int) -> list[LevelWork]:
        """Consecutive pieces of at most `size` points: the resumable units of this level."""
        if size < 1:
            raise LossartError(f"adaptive units: expected a size of at least 1, got {size}")
        return [
            LevelWork(self.level, self.rows[k : k + size], self.cols[k : k + size])
            for k in range(0, self.count, size)
        ]

    def shard(self, index: int, count: int) -> LevelWork:
        """Every count-th point starting at `index` (shard i of n, i from 0)."""
        if not 0 <= index < count:
            raise LossartError(f"adaptive shard {index}/{count}: expected 0 <= i < n")
        return LevelWork(self.level, self.rows[index::count], self.cols[index::count])


@dataclass
class AdaptiveStats:
    """What a refinement evaluated: points per level against the full lattice."""

    width: int
    height: int
    per_level: list[int] = field(default_factory=list)

    @property
    def points(self) -> int:
        return int(sum(self.per_level))

    @property
    def total(self) -> int:
        return self.width * self.height

    @property
    def saved(self) -> float:
        """How many times fewer points than the full lattice."""
        return self.total / max(self.points, 1)


class AdaptivePlan:
    """The levels, and the rule that picks each level's points from the earlier levels' values.

    All arrays are on the target lattice, shape (height, width): `values[i, j]` at row i (y) and
    column j (x); `evaluated` says which entries hold evaluated values (others are ignored).
    `tol` is in the values' units (log10 loss), or with `picture` (a `PictureTolerance`, whose
    `share` it equals) the largest height error as a share of the relief; `dilate`, `surplus_ratio`, `a_priori_levels`
    (None: every level) and `interpolation` are described in the module docstring.
    """

    def __init__(
        self,
        width: int,
        height: int,
        tol: float,
        coarse_step: int | None = None,
        *,
        dilate: int = 1,
        interpolation: str = "cubic",
        surplus_ratio: float = 2.0,
        a_priori_levels: int | None = 1,
        min_coarse: int = 9,
        picture: PictureTolerance | None = None,
    ) -> None:
        if int(width) != width or int(height) != height or min(width, height) < 2:
            raise LossartError(f"adaptive grid: expected at least 2x2 points, got {width}x{height}")
        check_value(GridConfig, "adaptive", tol)
        if picture is not None and picture.share != tol:
            raise LossartError(f"adaptive plan: tol {tol} and picture share {picture.share} differ")
        if interpolation not in INTERPOLATIONS:
            raise LossartError(
                f"adaptive interpolation {interpolation!r}: expected one of {INTERPOLATIONS}"
            )
        if coarse_step is None:
            coarse_step = default_coarse_step(width, height, min_coarse)
        if coarse_step < 1 or coarse_step & (coarse_step - 1):
            raise LossartError(f"adaptive coarse step {coarse_step}: expected a power of two")
        if not (math.isfinite(surplus_ratio) and surplus_ratio >= 1):
            raise LossartError(f"adaptive surplus ratio {surplus_ratio}: expected a number >= 1")
        if int(dilate) != dilate or dilate < 0:
            raise LossartError(f"adaptive dilation {dilate}: expected an integer >= 0")
        self.width, self.height, self.tol = int(width), int(height), float(tol)
        self.coarse_step = int(coarse_step)
        self.dilate = int(dilate)
        self.interpolation = interpolation
        self.surplus_ratio = float(surplus_ratio)
        self.a_priori_levels = a_priori_levels
        self.picture = picture
        self.steps = [self.coarse_step >> k for k in range(self.coarse_step.bit_length())]
        self.nodes_x = [axis_nodes(self.width, s) for s in self.steps]
        self.nodes_y = [axis_nodes(self.height, s) for s in self.steps]
        order, spline = ORDER[interpolation], interpolation == "spline"
        self._sx = [axis_step(a, b, order, spline) for a, b in zip(self.nodes_x, self.nodes_x[1:])]
        self._sy = [axis_step(a, b, order, spline) for a, b in zip(self.nodes_y, self.nodes_y[1:])]

    @property
    def levels(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return (
            f"AdaptivePlan({self.width}x{self.height}, tol={self.tol}, "
            f"coarse_step={self.coarse_step}, levels={self.levels}, dilate={self.dilate}, "
            f"{self.interpolation}, criterion={'picture' if self.picture else 'log10'})"
        )

    # ---------------------------------------------------------------- the public steps

    def level_points(
        self,
        level: int,
        values: np.ndarray,
        evaluated: np.ndarray,
        prior: np.ndarray | None = None,
    ) -> LevelWork:
        """All points of `level` (evaluated or not); earlier levels must be complete."""
        if not 0 <= level < self.levels:
            raise LossartError(f"adaptive level {level}: the plan has levels 0..{self.levels - 1}")
        for lvl, pts, missing in self._walk(values, evaluated, prior):
            if lvl == level:
                return self._work(lvl, pts)
            if missing.any():
                raise LossartError(
                    f"adaptive level {level}: level {lvl} still misses {int(missing.sum())} points"
                )
        raise AssertionError("unreachable")

    def next_work(
        self, values: np.ndarray, evaluated: np.ndarray, prior: np.ndarray | None = None
    ) -> LevelWork | None:
        """The points still missing from the first incomplete level; None when all are done."""
        for lvl, _pts, missing in self._walk(values, evaluated, prior):
            if missing.any():
                return self._work(lvl, missing)
        return None

    def chosen(
        self, values: np.ndarray, evaluated: np.ndarray, prior: np.ndarray | None = None
    ) -> np.ndarray:
        """Mask of every point the plan asks for, once it is complete (else LossartError)."""
        out = np.zeros((self.height, self.width), dtype=bool)
        for lvl, pts, missing in self._walk(values, evaluated, prior):
            if missing.any():
                raise LossartError(f"adaptive plan: level {lvl} is not complete")
            out |= pts
        return out

    def fill(self, values: np.ndarray, evaluated: np.ndarray) -> np.ndarray:
        """The full field: evaluated values kept, the rest interpolated level by level.

        Needs the coarse lattice evaluated; uses every evaluated point, chosen by the plan or not.
        """
        values, evaluated = self._check(values, evaluated)
        f = self._coarse(values, evaluated)
        for lvl in range(1, self.levels):
            f, _ = self._advance(lvl, f, values, evaluated)
        return f

    # ---------------------------------------------------------------- the level walk

    def _check(self, values, evaluated) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(values, dtype=np.float64)
        evaluated = np.asarray(evaluated, dtype=bool)
        shape = (self.height, self.width)
        if values.shape != shape or evaluated.shape != shape:
            raise LossartError(
                f"adaptive grid: values {values.shape} and mask {evaluated.shape} "
                f"must both be (height, width) = {shape}"
            )
        return values, evaluated

    def _lattice(self, level: int) -> np.ndarray:
        mask = np.zeros((self.height, self.width), dtype=bool)
        mask[np.ix_(self.nodes_y[level], self.nodes_x[level])] = True
        return mask

    def _coarse(self, values: np.ndarray, evaluated: np.ndarray) -> np.ndarray:
        ix = np.ix_(self.nodes_y[0], self.nodes_x[0])
        if not evaluated[ix].all():
            raise LossartError(
                f"adaptive fill: {int((~evaluated[ix]).sum())} points of the coarse lattice "
                "are not evaluated"
            )
        return values[ix].copy()

    def _walk(self, values, evaluated, prior):
        """Yield (level, that level's points, which of them are missing) while levels complete.

        Decisions use only the values at points chosen for earlier levels.
        """
        values, evaluated = self._check(values, evaluated)
        if prior is not None:
            prior = np.asarray(prior, dtype=bool)
            if prior.shape != values.shape:
                raise LossartError(
                    f"adaptive prior: mask {prior.shape} must be (height, width) = {values.shape}"
                )
        chosen = np.zeros_like(evaluated)
        pts = self._lattice(0)
        f = surplus = None
        for lvl in range(self.levels):
            if lvl > 0:
                pts = self._refined_points(lvl - 1, f, surplus, prior, chosen, values)
            missing = pts & ~evaluated
            yield lvl, pts, missing
            if missing.any():
                return
            chosen |= pts
            if lvl == 0:
                f = self._coarse(values, chosen)
                surplus = np.zeros_like(f)
            else:
                f, surplus = self._advance(lvl, f, values, chosen, pts)

    def _advance(
        self,
        level: int,
        f: np.ndarray,
        values: np.ndarray,
        known: np.ndarray,
        newly: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Level `level`'s field from the previous one, known values overwriting; and surpluses.

        Known values first replace the previous level's interpolated ones (a corner evaluated
        late), then each axis is interpolated and known values overwrite again. The surplus at
        each `newly` known node is |value - what the previous level's field said there| (inf
        where either is not finite); 0 elsewhere.
        """
        sx, sy = self._sx[level - 1], self._sy[level - 1]
        ny, nx = self.nodes_y[level], self.nodes_x[level]
        ny0, nx0 = self.nodes_y[level - 1], self.nodes_x[level - 1]
        ix0 = np.ix_(ny0, nx0)
        fresh = np.where(known[ix0], values[ix0], f)
        g = interpolate_axis(fresh, sx, axis=1)  # previous rows, this level's columns
        ix_g = np.ix_(ny0, nx)
        g = np.where(known[ix_g], values[ix_g], g)
        out = interpolate_axis(g, sy, axis=0)
        ix = np.ix_(ny, nx)
        k, v = known[ix], values[ix]
        out = np.where(k, v, out)
        if newly is None:
            return out, None
        pure = interpolate_axis(interpolate_axis(f, sx, axis=1), sy, axis=0)
        with np.errstate(invalid="ignore"):
            s = np.abs(v - pure)
        s = np.where(np.isfinite(s), s, np.inf)
        return out, np.where(newly[ix], s, 0.0)

    def _refined_points(
        self,
        level: int,
        f: np.ndarray,
        surplus: np.ndarray,
        prior: np.ndarray | None,
        chosen: np.ndarray,
        values: np.ndarray | None = None,
    ) -> np.ndarray:
        """Mask of level-(level+1) points: new nodes of the level-`level` cells to refine, and
        those cells' corners not evaluated yet (so no refined cell keeps an interpolated corner
        that finer points would be interpolated from)."""
        sx, sy = self._sx[level], self._sy[level]
        corner = np.maximum.reduce(
            [surplus[:-1, :-1], surplus[1:, :-1], surplus[:-1, 1:], surplus[1:, 1:]]
        )
        bad = ~np.isfinite(f)
        nonfinite = bad[:-1, :-1] | bad[1:, :-1] | bad[:-1, 1:] | bad[1:, 1:]
        score = corner / self.surplus_ratio
        if self.a_priori_levels is None or level < self.a_priori_levels:
            kink = KINK[self.interpolation]
            ex = edge_errors(f, sx, axis=1, kink=kink)  # [rows, intervals in x]
            ey = edge_errors(f, sy, axis=0, kink=kink)  # [intervals in y, cols]
            score = np.maximum.reduce([score, ex[:-1, :], ex[1:, :], ey[:, :-1], ey[:, 1:]])
        if self.picture is None:
            cells = (score > self.tol) | nonfinite
        else:
            cells = (score > self._picture_tolerance(level, f, score, values, chosen)) | nonfinite
            if cells.mean() > self.picture.uniform_share:
                cells[:] = True  # rough all over: a uniform level beats an adaptive one
        cells = dilate(cells, self.dilate)
        # Cell (a, b): rows r0[a]..r0[a+1], cols c0[b]..c0[b+1]; its new nodes at level+1.
        r0, c0 = self.nodes_y[level], self.nodes_x[level]
        rm = np.where(sy.mid >= 0, sy.fine[np.maximum(sy.mid, 0)], -1)
        cm = np.where(sx.mid >= 0, sx.fine[np.maximum(sx.mid, 0)], -1)
        if prior is not None:
            cells |= self._prior_cells(prior, r0, c0, rm, cm)
        a, b = np.nonzero(cells)
        mask = np.zeros((self.height, self.width), dtype=bool)
        for rows, cols in (
            (r0[a], cm[b]),
            (r0[a + 1], cm[b]),
            (rm[a], c0[b]),
            (rm[a], c0[b + 1]),
            (rm[a], cm[b]),
        ):
            ok = (rows >= 0) & (cols >= 0)
            mask[rows[ok], cols[ok]] = True
        corners = np.zeros_like(mask)
        for rows, cols in (
            (r0[a], c0[b]),
            (r0[a + 1], c0[b]),
            (r0[a], c0[b + 1]),
            (r0[a + 1], c0[b + 1]),
        ):
            corners[rows, cols] = True
        return mask | (corners & ~chosen)

    def _picture_tolerance(self, level, f, score, values, chosen) -> np.ndarray:
        """Per cell, the log10-loss error that keeps the picture within `self.picture`."""
        pic = self.picture
        loss_min, offset = pic.bounds(values, chosen)
        with np.errstate(invalid="ignore", over="ignore"):
            lo = np.minimum.reduce([f[:-1, :-1], f[1:, :-1], f[:-1, 1:], f[1:, 1:]])
            hi = np.maximum.reduce([f[:-1, :-1], f[1:, :-1], f[:-1, 1:], f[1:, 1:]])
            err = np.where(np.isfinite(score), score, 0.0)
            low = 10.0 ** np.maximum(lo - err, math.log10(LOSS_FLOOR))
            g = pic.steepness(low, 10.0**hi, loss_min, offset)
        share = pic.allowed_share(self.width, self.height, self.steps[level])
        return np.where(np.isfinite(g), share * pic.span / np.maximum(g, 1e-12), 0.0)

    @staticmethod
    def _prior_cells(prior, r0, c0, rm, cm) -> np.ndarray:
        """Cells one of whose new nodes the prior mask holds."""
        cells = np.zeros((len(r0) - 1, len(c0) - 1), dtype=bool)
        for rows, cols in (
            (r0[:-1, None], cm[None, :]),
            (r0[1:, None], cm[None, :]),
            (rm[:, None], c0[None, :-1]),
            (rm[:, None], c0[None, 1:]),
            (rm[:, None], cm[None, :]),
        ):
            rows, cols = np.broadcast_arrays(rows, cols)
            ok = (rows >= 0) & (cols >= 0)
            cells |= ok & prior[np.maximum(rows, 0), np.maximum(cols, 0)]
        return cells

    def _work(self, level: int, mask: np.ndarray) -> LevelWork:
        rows, cols = np.nonzero(mask)  # row-major order: a fixed, shardable sequence
        return LevelWork(level, rows.astype(np.int64), cols.astype(np.int64))


def criterion_record(kind: str, share_or_tol: float, aspect: float | None) -> dict:
    """grid.json's `adaptive_criterion` for a new adaptive grid of `kind` (see CRITERIA)."""
    check_value(GridConfig, "adaptive_criterion", kind)
    if kind == "log10":
        return {"kind": "log10"}
    return PictureTolerance(share_or_tol, aspect=aspect).to_dict()


def plan_from_record(
    width: int, height: int, tol: float, record: dict | None, aspect: float | None
) -> AdaptivePlan:
    """The plan grid.json describes: `adaptive` TOL under its `adaptive_criterion` (None or
    {"kind": "log10"}: TOL in log10 loss, as every grid made before the criterion existed)."""
    if record is None or record.get("kind") == "log10":
        return AdaptivePlan(width, height, tol)
    if record.get("kind") != "picture":
        raise LossartError(f"grid.json adaptive_criterion {record!r}: expected one of {CRITERIA}")
    keys = ("normal_deg", "relief", "excess_offset", "cap_share", "uniform_share", "sigma")
    try:
        extra = {k: float(record[k]) for k in keys if k in record}
    except (TypeError, ValueError):
        raise LossartError(f"grid.json adaptive_criterion {record!r}: expected numbers") from None
    picture = PictureTolerance(tol, aspect=aspect, **extra)
    return AdaptivePlan(width, height, tol, picture=picture)


def adaptive_plan(
    width: int, height: int, tol: float | None, criterion: str | dict, aspect: float | None
) -> tuple[AdaptivePlan | None, dict | None]:
    """The plan and grid.json's `adaptive_criterion` of a grid: none without `tol`; else the
    criterion as asked (a name: a new record) or as recorded (grid.json's dict, kept)."""
    if tol is None:
        return None, None
    record = criterion if isinstance(criterion, dict) else criterion_record(criterion, tol, aspect)
    return plan_from_record(width, height, tol, record, aspect), record


def log_loss(loss: np.ndarray, floor: float = LOSS_FLOOR) -> np.ndarray:
    """log10 of the loss floored at `floor` (the plan's decision units); non-finite stays so."""
    loss = np.asarray(loss, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(loss), np.log10(np.maximum(loss, floor)), loss)


def refine(
    evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray],
    plan: AdaptivePlan,
    prior: np.ndarray | None = None,
    floor: float = LOSS_FLOOR,
) -> tuple[np.ndarray, np.ndarray, AdaptiveStats]:
    """Drive a plan in-process: (loss field, evaluated mask, stats).

    `evaluate(cols, rows)` returns the losses at target-lattice points (x index, y index).
    Decisions and interpolation are in log10 loss (floored at `floor`); evaluated points keep
    their exact losses, the others are 10**(interpolated log10 loss). Other quantities of the
    same points (accuracy) fill with `plan.fill(values, evaluated)`.
    """
    shape = (plan.height, plan.width)
    loss = np.full(shape, np.nan)
    logv = np.full(shape, np.nan)
    evaluated = np.zeros(shape, dtype=bool)
    stats = AdaptiveStats(plan.width, plan.height)
    while (work := plan.next_work(logv, evaluated, prior)) is not None:
        got = np.asarray(evaluate(work.cols, work.rows), dtype=np.float64).reshape(-1)
        if got.shape != (work.count,):
            raise LossartError(
                f"adaptive evaluate: returned {got.size} values for {work.count} points"
            )
        loss[work.rows, work.cols] = got
        logv[work.rows, work.cols] = log_loss(got, floor)
        evaluated[work.rows, work.cols] = True
        while len(stats.per_level) <= work.level:
            stats.per_level.append(0)
        stats.per_level[work.level] += work.count
    with np.errstate(over="ignore"):
        field_ = np.where(evaluated, loss, 10.0 ** plan.fill(logv, evaluated))
    return field_, evaluated, stats
