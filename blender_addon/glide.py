"""The video's camera move for styles that fill the frame: a crane shot. It starts on a view of
the first frame (the straight path across the barrier, from a little higher) and comes down,
turning as it goes, to the still's low view of the last frame (the trained curve in its
valley), eased in and out. Every frame of the move is judged from where the camera is when that
frame shows: the terrain fills the picture, the path and the optima are inside it and not
hidden. Plain geometry (numpy, no bpy); `scene.fill_camera` keys it into Blender.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .framing import (
    FillView,
    camera_basis,
    choose_fill_view,
    ground_coverage,
    hidden_share,
    pixel_rays,
    remembered,
    view_direction,
)

#: Start elevations tried, as degrees above the end's, in order of preference: a crane comes
#: down onto its subject; level (0) when nothing higher frames the first frame.
RISES = (10.0, 6.0, 14.0, 3.0, 0.0, 20.0)
#: When the descent begins, as a share of the move, in order of preference (`Glide.late`)
LATES = (0.0, 0.4, 0.6)
#: how far inside the picture's edges the framed points must stay (share of the half-size)
INSIDE = 0.97


def smoothstep(t):
    """Blender's smoothstep on 0..1: the move eases in and out."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass
class Glide:
    """A move from view `start` (at the first frame) to `end` (at the last), one lens."""

    start: FillView
    end: FillView
    #: share of the move the camera turns before it comes down: while the path still crosses
    #: the ridge a low camera would lose it behind the ridge; it descends as the curve settles
    late: float = 0.0

    def pose(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
        """(eye, aim, direction from aim to eye, lens shift) at progress t (0..1), eased: the
        turn over the whole move, the descent (elevation, distance, aim, shift) after `late`."""
        a, b = self.start, self.end
        r = float(smoothstep(t))
        e = float(smoothstep((t - self.late) / (1.0 - self.late)))
        turn = (b.azimuth - a.azimuth + 180.0) % 360.0 - 180.0  # the shorter way round
        direction = view_direction(
            a.elevation + e * (b.elevation - a.elevation), a.azimuth + r * turn
        )
        aim = (1.0 - e) * np.asarray(a.aim, dtype=np.float64) + e * np.asarray(b.aim)
        distance = a.distance + e * (b.distance - a.distance)
        shift = tuple((1.0 - e) * s0 + e * s1 for s0, s1 in zip(a.shift, b.shift, strict=True))
        return aim + direction * distance, aim, direction, shift


def inside_picture(points, eye, aim, direction, tangents, shift, inside: float = INSIDE) -> bool:
    """Whether every point projects inside the (lens-shifted) picture, `inside` of its half-size."""
    right, up = camera_basis(direction)
    rel = np.asarray(points, dtype=np.float64).reshape(-1, 3) - np.asarray(eye)
    depth = rel @ -np.asarray(direction)
    if (depth <= 0).any():
        return False
    u = (rel @ right) / depth / tangents[0] - shift[0]
    v = (rel @ up) / depth / tangents[1] - shift[1]
    return bool(np.abs(u).max() <= inside and np.abs(v).max() <= inside)


@dataclass
class GlideCheck:
    """The worst, over the frames judged, of what a frame-filling move must keep."""

    coverage: float
    hidden: float
    inside: bool

    def passes(self, need: float) -> bool:
        return self.coverage >= need and self.hidden <= 0.02 and self.inside


def judge_glide(glide: Glide, sights, marks, tangents, inset: float) -> GlideCheck:
    """Each sight (watch, ground), spread evenly over the move, judged from the camera where it
    is when that frame shows: ground coverage, the watched path hidden, path and `marks` (the
    optima) inside the picture."""
    coverage, hidden, inside = 1.0, 0.0, True
    for t, (watch, ground) in zip(np.linspace(0.0, 1.0, len(sights)), sights, strict=True):
        eye, aim, d, shift = glide.pose(float(t))
        rays = pixel_rays(d, tangents[0], tangents[1], shift)
        coverage = min(coverage, ground_coverage(eye, rays, *ground, inset=inset))
        hidden = max(hidden, hidden_share(watch, eye, *ground, steps=40))
        framed = np.concatenate([np.asarray(watch).reshape(-1, 3), np.asarray(marks).reshape(-1, 3)])
        inside = inside and inside_picture(framed, eye, aim, d, tangents, shift)
    return GlideCheck(coverage, hidden, inside)


@remembered
def choose_glide(
    end_framed: np.ndarray,
    start_framed: np.ndarray,
    aims: list[np.ndarray],
    sights: list,
    marks: np.ndarray,
    tangents: dict[float, tuple[float, float]],
    elevations,
    azimuths,
    turn: float,
    fills,
    inset: float,
    need: float,
) -> Glide | None:
    """The crane: its end is a still's view of the last frame (`end_framed`: for each lens the
    first of the style's elevations and azimuths that fills the picture, the lowest end first);
    its start frames the first frame (`start_framed`) from `turn` degrees round (either way,
    then half as far, then none) and a little higher (RISES), through the same lens. The first
    move that passes `judge_glide` at every sight; None when none does (the caller orbits)."""
    ends = []
    for lens, tan in tangents.items():
        end = choose_fill_view(
            end_framed, aims, [sights[-1]], {lens: tan}, elevations, azimuths, (0.0,), fills,
            inset=inset, need=need,
        )  # fmt: skip
        if end.coverage >= need and end.hidden <= 0.02:
            ends.append(end)
    for end in sorted(ends, key=lambda v: v.elevation):  # stable: the style's lens order
        lens = {end.lens: tangents[end.lens]}
        rises = [end.elevation + r for r in RISES if end.elevation + r <= 75.0]
        for offset in (turn, -turn, 0.5 * turn, -0.5 * turn, 0.0):
            for rise in rises:
                start = choose_fill_view(
                    start_framed, aims, [sights[0]], lens, (rise,), (end.azimuth - offset,),
                    (0.0,), fills, inset=inset, need=need,
                )  # fmt: skip
                if start.coverage < need or start.hidden > 0.02:
                    continue
                for late in LATES:
                    glide = Glide(start, end, late)
                    if judge_glide(glide, sights, marks, tangents[end.lens], inset).passes(need):
                        return glide
    return None
