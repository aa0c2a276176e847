"""Camera framing as plain geometry (numpy only, no bpy): how far away a camera must stand so
that a set of points (the terrain's bounding box, the marked points) fills a chosen share of the
picture, and a smooth ride along the path for the fly-through.

The camera looks from `direction` (a unit vector from the aim point towards the camera) at the
aim point with no roll (Blender's Track To with up = +Z), through a lens of `lens_mm` on a sensor
of `sensor_mm` fitted to the longer side of the picture (Blender's "Auto" sensor fit).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


@dataclass
class ViewTargets:
    """What a camera is fitted to (world units): the terrain's bounding box `bounds` (lo, hi),
    the marked points of every frame (with their markers' size), every frame's `paths`, the
    last frame's `ground` (heights [H, W], xs, ys) and what must not hide behind it (`watch`:
    the last frame's path and points); `sights`: (watch, ground) of frames spread evenly over
    the bundle, first to last (what an orbit must see at each point of its sweep)."""

    bounds: tuple[np.ndarray, np.ndarray]
    points: np.ndarray
    paths: np.ndarray
    ground: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    watch: np.ndarray | None = None
    sights: list | None = None


def _digest(h, value) -> None:
    """Feed a value made of arrays, numbers, strings, lists, tuples and dicts into a hash."""
    if isinstance(value, np.ndarray):
        h.update(f"a{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(f"({len(value)}".encode())
        for v in value:
            _digest(h, v)
    elif isinstance(value, dict):
        _digest(h, list(value.items()))
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def remembered(fn):
    """Keep the last few results of a pure function of arrays and numbers. A camera search
    takes seconds, and the scene asks again with the same inputs: after an import and the
    render settings applied at the same size, on every palette or glow change in the panel."""
    cache: OrderedDict = OrderedDict()

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        h = hashlib.sha1()
        _digest(h, [args, sorted(kwargs.items())])
        key = h.digest()
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        value = cache[key] = fn(*args, **kwargs)
        while len(cache) > 128:  # a crane's search asks its inner view search ~50 times
            cache.popitem(last=False)
        return value

    return wrapper


def view_direction(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """Unit vector from the aim point towards a camera at this elevation and azimuth."""
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def half_fov_tangents(
    lens_mm: float, sensor_mm: float, width: int, height: int
) -> tuple[float, float]:
    """tan of the half field of view, horizontally and vertically (sensor fit "Auto")."""
    t = 0.5 * sensor_mm / lens_mm
    if width >= height:
        return t, t * height / width
    return t * width / height, t


def camera_basis(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Right and up vectors of a camera looking along -direction with world +Z up."""
    fwd = -np.asarray(direction, dtype=np.float64)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    norm = np.linalg.norm(right)
    right = np.array([1.0, 0.0, 0.0]) if norm < 1e-9 else right / norm
    return right, np.cross(right, fwd)


def fit_distance(
    points: np.ndarray,
    aim: np.ndarray,
    direction: np.ndarray,
    tan_x: float,
    tan_y: float,
    fill: float = 0.86,
) -> float:
    """Smallest distance from `aim` along `direction` at which every point projects inside
    `fill` of the half-width and half-height of the picture (closed form per point)."""
    d = np.asarray(direction, dtype=np.float64)
    right, up = camera_basis(d)
    rel = np.asarray(points, dtype=np.float64).reshape(-1, 3) - np.asarray(aim, dtype=np.float64)
    along = rel @ d  # how far towards the camera each point sits
    need_x = along + np.abs(rel @ right) / (tan_x * fill)
    need_y = along + np.abs(rel @ up) / (tan_y * fill)
    return float(max(need_x.max(), need_y.max(), 1e-3))


def box_corners(lo, hi) -> np.ndarray:
    """The 8 corners of an axis-aligned box."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def projected_width(
    points: np.ndarray, aim: np.ndarray, direction: np.ndarray, distance: float, tan_x: float
) -> float:
    """Share of the picture's width the points span, seen from `distance` (for checks)."""
    d = np.asarray(direction, dtype=np.float64)
    right, _ = camera_basis(d)
    rel = np.asarray(points, dtype=np.float64).reshape(-1, 3) - np.asarray(aim, dtype=np.float64)
    u = (rel @ right) / (distance - rel @ d) / tan_x
    return float(0.5 * (u.max() - u.min()))


def resample_by_length(points: np.ndarray, n: int) -> np.ndarray:
    """`n` points evenly spaced along the polyline's length (plane xy and height alike)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    seg = np.linalg.norm(np.diff(pts[:, :2], axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return np.repeat(pts[:1], n, axis=0)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, pts[:, k]) for k in range(3)], axis=1)


def fly_pose(
    path_world: np.ndarray,
    progress: float,
    ceiling: float,
    back: float,
    height: float,
    lead: float = 0.22,
    span: tuple[float, float] = (0.0, 0.8),
) -> tuple[np.ndarray, np.ndarray]:
    """Camera position and look-at point for the fly-through at `progress` (0..1).

    The camera rides `back` units behind a point that moves evenly (by length) along the path
    over `span` of it, `height` above the path and never under `ceiling`; it looks at the point
    `lead` of the path's length ahead. Direction and height come from the path resampled by
    length and averaged over a window, so the camera glides instead of jerking at kinks.
    """
    pts = resample_by_length(path_world, 256)
    p = span[0] + min(max(progress, 0.0), 1.0) * (span[1] - span[0])
    idx = np.arange(len(pts)) / (len(pts) - 1)

    def at(u: float) -> np.ndarray:
        u = min(max(u, 0.0), 1.0)
        return np.array([np.interp(u, idx, pts[:, k]) for k in range(3)])

    here, there = at(p), at(p + lead)
    tangent = there[:2] - here[:2]
    norm = float(np.hypot(*tangent))
    if norm < 1e-9:
        tangent = pts[-1, :2] - pts[0, :2]
        norm = float(np.hypot(*tangent)) or 1.0
    tangent = tangent / norm
    eye = np.array(
        [
            here[0] - tangent[0] * back,
            here[1] - tangent[1] * back,
            max(here[2] + height, ceiling),
        ]
    )
    return eye, there


def bilinear(heights: np.ndarray, xs: np.ndarray, ys: np.ndarray, x, y) -> np.ndarray:
    """Heights [H, W] (row = y, column = x on increasing grids) sampled at points (x, y)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    fx = np.interp(x, xs, np.arange(len(xs)))
    fy = np.interp(y, ys, np.arange(len(ys)))
    i0 = np.clip(np.floor(fx).astype(int), 0, len(xs) - 2)
    j0 = np.clip(np.floor(fy).astype(int), 0, len(ys) - 2)
    ax, ay = fx - i0, fy - j0
    h = np.asarray(heights, dtype=np.float64)
    top = h[j0, i0] * (1 - ax) + h[j0, i0 + 1] * ax
    bottom = h[j0 + 1, i0] * (1 - ax) + h[j0 + 1, i0 + 1] * ax
    return top * (1 - ay) + bottom * ay


def clearance(
    points: np.ndarray,
    eye: np.ndarray,
    heights: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    steps: int = 64,
) -> np.ndarray:
    """How far each line of sight from `eye` to one of `points` (world) passes above the
    heightfield at its lowest (negative: the ground rises above it, the point is hidden)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not len(pts):
        return np.zeros(0)
    t = np.linspace(0.03, 1.0, steps)[None, :, None]
    ray = pts[:, None, :] + t * (np.asarray(eye, dtype=np.float64)[None, None, :] - pts[:, None, :])
    x, y, z = ray[..., 0], ray[..., 1], ray[..., 2]
    inside = (x >= xs[0]) & (x <= xs[-1]) & (y >= ys[0]) & (y <= ys[-1])
    gap = np.where(inside, z - bilinear(heights, xs, ys, x, y), np.inf)
    return gap.min(axis=1)


def hidden_share(
    points: np.ndarray,
    eye: np.ndarray,
    heights: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    steps: int = 64,
) -> float:
    """Share of `points` (world) that the terrain hides from a camera at `eye`: the line of
    sight is marched over the heightfield and a point is hidden where the ground rises above it."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not len(pts):
        return 0.0
    return float((clearance(pts, eye, heights, xs, ys, steps) < 0).mean())


def fit_centred(
    points: np.ndarray,
    aim: np.ndarray,
    direction: np.ndarray,
    tan_x: float,
    tan_y: float,
    fill: float = 0.9,
) -> tuple[float, float, float]:
    """Like `fit_distance`, but the picture is re-centred on the points (a lens shift), so the
    points span `fill` of the tighter side instead of leaving perspective's slack on one side.

    Returns (distance, centre_u, centre_v): the shift, in units of the half-width and
    half-height, that puts the projected points' centre in the middle of the picture."""
    return fit_centred_many(points, aim, [direction], tan_x, tan_y, fill)[0]


def fit_centred_many(
    points: np.ndarray,
    aim: np.ndarray,
    directions,
    tan_x: float,
    tan_y: float,
    fill: float = 0.9,
) -> list[tuple[float, float, float]]:
    """`fit_centred` for several directions at once (an orbit's sweep): the same bisection,
    run on all of them together, so a judged view costs one pass instead of one per angle."""
    dirs = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    rel = np.asarray(points, dtype=np.float64).reshape(-1, 3) - np.asarray(aim, dtype=np.float64)
    bases = [camera_basis(d) for d in dirs]
    x = np.stack([rel @ right for right, _ in bases])  # [directions, points]
    y = np.stack([rel @ up for _, up in bases])
    along = np.stack([rel @ d for d in dirs])

    def spans(distance: np.ndarray):
        depth = distance[:, None] - along
        u, v = x / depth / tan_x, y / depth / tan_y
        umax, umin, vmax, vmin = u.max(axis=1), u.min(axis=1), v.max(axis=1), v.min(axis=1)
        return 0.5 * (umax + umin), 0.5 * (vmax + vmin), 0.5 * (umax - umin), 0.5 * (vmax - vmin)

    hi = np.array([fit_distance(points, aim, d, tan_x, tan_y, fill) for d in dirs])
    lo = along.max(axis=1) + 1e-3 * hi  # every point stays in front of the camera
    for _ in range(24):  # the spans shrink as the camera backs away: bisect (to 1e-7)
        mid = 0.5 * (lo + hi)
        _, _, su, sv = spans(mid)
        wide = np.maximum(su, sv) > fill
        lo, hi = np.where(wide, mid, lo), np.where(wide, hi, mid)
    cu, cv, _, _ = spans(hi)
    return [(float(h), float(a), float(b)) for h, a, b in zip(hi, cu, cv, strict=True)]


def surroundings(
    focus: np.ndarray,
    heights: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    margin: float,
    samples: int = 24,
) -> np.ndarray:
    """Ground points (world) within `margin` of the focus points' xy bounding box, on a
    `samples`-per-side lattice: the valley's walls on both sides of the path, which a view of
    the path must show so that the path reads as lying in a valley."""
    pts = np.asarray(focus, dtype=np.float64).reshape(-1, 3)
    lo = np.maximum(pts[:, :2].min(axis=0) - margin, [xs[0], ys[0]])
    hi = np.minimum(pts[:, :2].max(axis=0) + margin, [xs[-1], ys[-1]])
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], samples), np.linspace(lo[1], hi[1], samples))
    gz = bilinear(heights, xs, ys, gx, gy)
    return np.column_stack([gx.ravel(), gy.ravel(), gz.ravel()])


def pixel_rays(
    direction: np.ndarray,
    tan_x: float,
    tan_y: float,
    shift: tuple[float, float] = (0.0, 0.0),
    nx: int = 20,
    ny: int = 12,
) -> np.ndarray:
    """Directions [nx*ny, 3] (not normalised) of rays through a lattice of pixel centres of a
    camera looking along -direction; `shift` is the lens shift as `fit_centred` gives it (the
    picture's centre in units of its half-width and half-height)."""
    right, up = camera_basis(direction)
    fwd = -np.asarray(direction, dtype=np.float64)
    u = (np.arange(nx) + 0.5) / nx * 2.0 - 1.0 + shift[0]
    v = (np.arange(ny) + 0.5) / ny * 2.0 - 1.0 + shift[1]
    gu, gv = np.meshgrid(u * tan_x, v * tan_y)
    return fwd + gu.reshape(-1, 1) * right + gv.reshape(-1, 1) * up


def ground_coverage(
    eye: np.ndarray,
    rays: np.ndarray,
    heights: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    inset: float = 0.0,
    steps: int = 96,
) -> float:
    """Share of `rays` from `eye` that meet the heightfield inside its window shrunk by `inset`
    on every side (the border that fades out does not count): how much of the picture the
    terrain fills. Each ray is marched over the part of it above the inset window; one that
    enters it below the surface (under a high border) sees only the sheet's undrawn underside."""
    eye = np.asarray(eye, dtype=np.float64)
    r = np.asarray(rays, dtype=np.float64).reshape(-1, 3)
    lo = np.array([xs[0] + inset, ys[0] + inset])
    hi = np.array([xs[-1] - inset, ys[-1] - inset])
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - eye[:2]) / r[:, :2]
        t2 = (hi - eye[:2]) / r[:, :2]
    inside_axis = (eye[:2] >= lo) & (eye[:2] <= hi)  # a ray parallel to an axis, within it
    t1 = np.where(np.isnan(t1), np.where(inside_axis, -np.inf, np.inf), t1)
    t2 = np.where(np.isnan(t2), np.where(inside_axis, np.inf, -np.inf), t2)
    enter = np.maximum(np.minimum(t1, t2).max(axis=1), 0.0)
    leave = np.maximum(t1, t2).min(axis=1)
    ok = leave > enter
    if not ok.any():
        return 0.0
    s = np.linspace(0.0, 1.0, steps)[None, :]
    t = enter[ok, None] + s * (leave[ok] - enter[ok])[:, None]
    pts = eye[None, None, :] + t[..., None] * r[ok][:, None, :]
    ground = bilinear(heights, xs, ys, pts[..., 0], pts[..., 1])
    # a ray that enters the window under the surface (below a high border: the sheet has no
    # sides) sees only its underside, which is never drawn: it meets no ground
    hit = (pts[:, 0, 2] > ground[:, 0]) & (pts[..., 2] <= ground).any(axis=1)
    return float(hit.sum() / len(r))


@dataclass
class FillView:
    """A camera whose picture the terrain fills: where it looks from (elevation, azimuth), its
    lens, its distance from the aim point, its lens shift, and the coverage and hidden share
    measured for it (worst over an orbit's sweep)."""

    elevation: float
    azimuth: float
    aim: np.ndarray
    lens: float
    distance: float
    shift: tuple[float, float]
    coverage: float
    hidden: float


@remembered
def choose_fill_view(
    framed: np.ndarray,
    aims: list[np.ndarray],
    sights: list,
    tangents: dict[float, tuple[float, float]],
    elevations,
    azimuths,
    sweep=(0.0,),
    fills=(0.6, 0.75, 0.9),
    inset: float = 0.0,
    need: float = 0.98,
) -> FillView:
    """The first view (elevations and azimuths in order of preference) whose picture the
    terrain fills (`need` of it, by `ground_coverage`)
    while the `framed` points span a `fill` of the picture and the `sights` (watch, ground)
    pairs stay in sight (at most 2% hidden), the camera looking at one of `aims`. Of the views
    at the first elevation that has any, the one with the smallest fill (the more of the
    ground around the framed points the picture shows, the better it reads as a landscape),
    then the first azimuth, then the first lens.

    `tangents` maps each lens tried to its half-field tangents; `sweep` the orbit's angles
    (degrees added to the azimuth; a still has one, (0,)); the picture is re-centred with a lens
    shift (an orbit's is the mean of its angles').
    With several sweep angles, sight k is judged from the camera where it is at angle k of the
    sweep (spread evenly over it), and coverage from every angle. Where no view fills the
    picture, the one that fills most of those that see everything; failing that, the one that
    hides least."""
    sweep = np.atleast_1d(np.asarray(sweep, dtype=np.float64))
    idx = np.round(np.linspace(0, len(sweep) - 1, len(sights))).astype(int)
    grounds = [sights[min(len(sights) - 1, i)][1] for i in range(len(sweep))]
    if len(sweep) == 1:
        grounds = [sights[-1][1]]
    best: tuple | None = None
    combos = [
        ((a, k), lens, t, np.asarray(aim, dtype=np.float64), az)
        for a, az in enumerate(azimuths)
        for k, (lens, t) in enumerate(tangents.items())
        for aim in aims
    ]

    def judge(el, aim, az, tx, ty, fill, lens) -> FillView:
        dirs = [view_direction(el, az + a) for a in sweep]
        # re-centred with a lens shift (the camera's, fixed over an orbit: the mean of the
        # sweep's, from the farthest distance any angle needs)
        fits = fit_centred_many(framed, aim, dirs, tx, ty, fill)
        dist = max(f[0] for f in fits)
        cu = float(np.mean([f[1] for f in fits]))
        cv = float(np.mean([f[2] for f in fits]))
        eyes = [aim + d * dist for d in dirs]
        hidden = max(
            hidden_share(watch, eyes[i], *ground, steps=40)
            for i, (watch, ground) in zip(idx, sights, strict=True)
        )
        cov = 0.0
        if hidden <= 0.02:
            cov = min(
                ground_coverage(e, pixel_rays(d, tx, ty, (cu, cv)), *g, inset=inset)
                for e, d, g in zip(eyes, dirs, grounds, strict=True)
            )
        return FillView(el, az, aim, lens, dist, (cu, cv), cov, hidden)

    fills = sorted(fills)
    for el in elevations:
        passing = []
        for k, lens, (tx, ty), aim, az in combos:
            view = judge(el, aim, az, tx, ty, fills[-1], lens)
            key = (view.hidden > 0.02, view.hidden if view.hidden > 0.02 else -view.coverage)
            if best is None or key < best[0]:
                best = (key, view)
            if view.hidden > 0.02 or view.coverage < need:
                continue
            j = len(fills) - 1
            for f in reversed(fills[:-1]):  # back away while the terrain still fills it
                wider = judge(el, aim, az, tx, ty, f, lens)
                if wider.hidden > 0.02 or wider.coverage < need:
                    break
                view, j = wider, j - 1
            passing.append((j, k, view))
        if passing:
            return min(passing, key=lambda p: p[:2])[2]
    return best[1]
