"""Which plane each frame of a run is evaluated in, and where its curve lies there.

A curve run has one plane per recorded frame (`frame_plane`: through w1, w2 and the frame's
bend) and one window for all frames (`curve_window`), so that a video keeps w1 and w2 still and
only the bend moves; a plane-of-three run (`lossart plane`) has one plane, frame 0, through its
three optima. `grid_source(run)` gives either as a `GridSource`: the model and data to evaluate,
the planes, the window, and each frame's `FrameMeta` (control points and named points in that
frame's plane) that the grid files carry for the later stages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lossart.curvature import axis_scale, plane_axes
from lossart.curvature.files import read_result, result_paths
from lossart.data import DataSpec
from lossart.errors import LossartError
from lossart.format.kinds import AROUND, CURVE, PLANE3, TRAJECTORY, run_kind
from lossart.geometry.directions import DirectionPlane, centred_window, random_plane
from lossart.geometry.plane import (
    Plane,
    Window,
    control_points_2d,
    defines_plane,
    frame_bend,
    plane_from_directions,
    plane_through,
    window_around,
)
from lossart.geometry.trajectory import filter_mask
from lossart.geometry.weights import ParamLayout
from lossart.grid.files import FrameMeta
from lossart.grid.trajectory_files import FINAL_NAME, FINAL_POINT, START_POINT, read_plane_file
from lossart.models import ModelSpec
from lossart.runs import Run, run_model
from lossart.training.checkpoint import Checkpoint, load_checkpoint
from lossart.training.curve_run import CurveRun, FrameRecord, load_curve_run

PLANE3_NAMES = ("w1", "w2", "w3")


@dataclass
class GridSource:
    """The planes a run's grids live in, and the model and data to evaluate there."""

    kind: str  # a run kind (lossart.format.kinds)
    model: nn.Module
    data_spec: DataSpec
    frames: list[int]
    plane: Callable[[int], Plane]  # frame index -> its plane
    window: Callable[[float], Window]  # margin -> the window of every frame
    frame_meta: Callable[[int], FrameMeta]  # frame index -> its coordinates in its plane
    curve: dict[str, Any] | None = None  # {"kind", "bends"} of a curve run
    directions: dict[str, Any] | None = None  # an around run's axes (lossart.grid.around)


# ---------------------------------------------------------------- curve runs


def _frame_position(curve_run: CurveRun, frame: int | FrameRecord) -> int:
    index = frame if isinstance(frame, int) else int(frame.index)
    if not 0 <= index < len(curve_run.frames):
        raise LossartError(
            f"frame {index} does not exist (the run has {len(curve_run.frames)} frames)"
        )
    return index


def _fallback_direction(curve_run: CurveRun, index: int) -> torch.Tensor:
    """A second direction for a frame whose bend lies on the segment (e.g. the initial frame).

    The nearest later frame with a bend off the segment is used (then the nearest earlier one), so
    a video starting on the straight line shows it in the plane the curve is about to take; a run
    whose bends never leave the segment gets a fixed seeded direction.
    """
    w1, w2 = curve_run.w1, curve_run.w2
    n = len(curve_run.frames)
    for j in [*range(index + 1, n), *range(index - 1, -1, -1)]:
        b = frame_bend(curve_run.frames[j].bends).to(w1.device)
        if defines_plane(w1, w2, b):
            return b - w1
    g = torch.Generator().manual_seed(0)
    return torch.randn(w1.shape, generator=g, dtype=w1.dtype).to(w1.device)


def frame_plane(curve_run: CurveRun, frame: int | FrameRecord) -> Plane:
    """The plane of one frame of a curve run: through w1, w2 and the frame's (mean) bend.

    `frame` is a position in `curve_run.frames` or a `FrameRecord`. A frame whose bend lies on
    the straight segment (training without init noise starts there) takes its second direction
    from the nearest frame that has left it (see `_fallback_direction`).
    """
    pos = _frame_position(curve_run, frame)
    w1, w2 = curve_run.w1, curve_run.w2
    b = frame_bend(curve_run.frames[pos].bends).to(w1.device)
    if not defines_plane(w1, w2, b):
        return plane_from_directions(w1, w2, _fallback_direction(curve_run, pos))
    return plane_from_directions(w1, w2, b - w1)


def curve_control_points(curve_run: CurveRun) -> list[np.ndarray]:
    """Each frame's `[k+2, 2]` control points in its own plane, in frame order."""
    w1, w2 = curve_run.w1, curve_run.w2
    return [
        control_points_2d(frame_plane(curve_run, pos), w1, fr.bends.to(w1.device), w2)
        for pos, fr in enumerate(curve_run.frames)
    ]


def _window_of(points: list[np.ndarray], margin: float) -> Window:
    if not points:
        raise LossartError("curve run has no frames: nothing to hold in a window")
    return window_around(np.concatenate(points), margin)


def curve_window(curve_run: CurveRun, margin: float = 0.2) -> Window:
    """One window holding every frame's control points (hence every frame's curve), with margin.

    w1 is at (0, 0) and w2 at (|w2 − w1|, 0) in every frame, so with this window fixed for all
    frames a video keeps the endpoints still and only the bend moves.
    """
    return _window_of(curve_control_points(curve_run), margin)


def curve_source(run: Run) -> GridSource:
    """The grid source of a curve run: one plane per recorded frame, one window for all."""
    cr = load_curve_run(run)
    if not cr.frames:
        raise LossartError(
            f"{run.root}: the run has no recorded curve frames (run `lossart curve` first)"
        )
    positions = {f.index: k for k, f in enumerate(cr.frames)}

    @functools.cache
    def points() -> list[np.ndarray]:  # every frame's plane once, for the window and the files
        return curve_control_points(cr)

    def meta(index: int) -> FrameMeta:
        fr = cr.frames[positions[index]]
        cp = points()[positions[index]]
        return FrameMeta(
            index=fr.index,
            step=int(fr.step),
            epoch=float(fr.epoch),
            train_loss=float(fr.train_loss),
            control_points=cp,
            points={"w1": _xy(cp[0]), "w2": _xy(cp[-1])},
        )

    return GridSource(
        kind=CURVE.name,
        model=cr.build_model(),
        data_spec=cr.data_spec,
        frames=list(positions),
        plane=lambda i: frame_plane(cr, positions[i]),
        window=lambda margin: _window_of(points(), margin),
        frame_meta=meta,
        curve=cr.spec.to_dict(),
    )


def _xy(p: np.ndarray) -> tuple[float, float]:
    return float(p[0]), float(p[1])


# ---------------------------------------------------------------- planes of three optima


def flat_optima(ckpts: list[Checkpoint]) -> tuple[nn.Module, list[torch.Tensor]]:
    """A model of the checkpoints' architecture and their flat parameter vectors."""
    model = ckpts[0].build_model()
    layout = ParamLayout.of(model)
    return model, [layout.flatten(c.state_dict).float().clone() for c in ckpts]


def plane3_points(plane: Plane, ws: list[torch.Tensor]) -> dict[str, list[float]]:
    """Plane coordinates of the three optima, by name."""
    return {
        n: [float(v) for v in plane.coords(w)[:2]] for n, w in zip(PLANE3_NAMES, ws, strict=True)
    }


def plane3_source(run: Run) -> GridSource:
    """The grid source of a plane3 run: one plane (frame 0) through the three copied optima."""
    spec = ModelSpec.from_dict(run_model(run.read(), run.manifest))
    ckpts = [load_checkpoint(run.endpoint(n), expect_model=spec) for n in PLANE3_NAMES]
    model, ws = flat_optima(ckpts)
    plane = plane_through(*ws)
    named = {n: (xy[0], xy[1]) for n, xy in plane3_points(plane, ws).items()}
    pts = np.array(list(named.values()), dtype=np.float64)
    meta = FrameMeta(0, 0, 0.0, None, np.zeros((0, 2)), named)
    return GridSource(
        kind=PLANE3.name,
        model=model,
        data_spec=ckpts[0].data,
        frames=[0],
        plane=lambda _i: plane,
        window=lambda margin: window_around(pts, margin),
        frame_meta=lambda _i: meta,
    )


# ---------------------------------------------------------------- random planes around one optimum

AROUND_NAME = "w"


def hessian_paths(run: Run) -> dict[str, Any]:
    """RUN/hessian/hessian.{json,pt,png}: the Hessian result a Hessian plane is made from."""
    return result_paths(run.endpoints / f"{AROUND_NAME}.pt", run.root / "hessian")


def around_source(run: Run) -> GridSource:
    """The grid source of an around run: Li et al.'s seeded plane through the copied optimum.

    The window is [-span, span]² in units of the two filter-normalized directions; `margin` does
    not apply (there is nothing to hold but the centre).
    """
    meta = run.read()
    spec = ModelSpec.from_dict(run_model(meta, run.manifest))
    around = meta["around"]
    ckpt = load_checkpoint(run.endpoint(AROUND_NAME), expect_model=spec)
    model, (w,) = flat_optima([ckpt])
    plane, directions = around_plane(run, around, model, w)
    window = centred_window(float(around["span"]))
    frame = FrameMeta(0, 0, 0.0, None, np.zeros((0, 2)), {AROUND_NAME: (0.0, 0.0)})
    return GridSource(
        kind=AROUND.name,
        model=model,
        data_spec=ckpt.data,
        frames=[0],
        plane=lambda _i: plane,
        window=lambda _margin: window,
        frame_meta=lambda _i: frame,
        directions=directions,
    )


def around_plane(
    run: Run, around: dict[str, Any], model: nn.Module, w: torch.Tensor
) -> tuple[DirectionPlane, dict[str, Any]]:
    """An around run's plane and the description of its axes (grid.json and the bundle).

    Random (the default, and every run made before `directions` existed): Li et al.'s seeded
    filter-normalized pair. Hessian: the eigenvectors stored in RUN/hessian/ by `create_around_run`,
    scaled to the length of a filter-normalized direction (lossart.curvature.plane_axes).
    """
    kind = around.get("directions", "random")
    layout = ParamLayout.of(model)
    if kind == "random":
        plane = random_plane(w, model, int(around["seed"]), around.get("ignore"))
        mask = filter_mask(layout, around.get("ignore"))
        description = {
            "kind": "random",
            "seed": int(around["seed"]),
            "scale": axis_scale(w, mask),
            "axes": [{"name": "random direction 1", "eigenvalue": None},
                     {"name": "random direction 2", "eigenvalue": None}],
        }  # fmt: skip
        return plane, description
    _, result = read_result(hessian_paths(run)["json"])
    u, v, description = plane_axes(result, w, layout, kind)
    return DirectionPlane(w.detach().clone(), u, v), description


# ---------------------------------------------------------------- training trajectories


def trajectory_source(run: Run) -> GridSource:
    """The grid source of a trajectory run: the plane of the snapshots' first two principal
    directions through the final weights (`lossart trajectory`), one frame (0).

    The window holds every snapshot's projection, grown by `margin`; the frame's control points
    are those projections in training order (the path), its points the start and the final
    weights (0, 0), and its `snapshots` say when each was taken.
    """
    meta = run.read()
    spec = ModelSpec.from_dict(meta["model"])
    ckpt = load_checkpoint(run.endpoints / f"{FINAL_NAME}.pt", expect_model=spec)
    model, (w,) = flat_optima([ckpt])
    stored = read_plane_file(run)
    if stored.u.shape != w.shape or stored.v.shape != w.shape:
        raise LossartError(
            f"{run.root}: trajectory plane has {stored.u.numel()} parameters, the final "
            f"checkpoint {w.numel()}; make the run again"
        )
    plane = Plane(w, stored.u.to(w.dtype), stored.v.to(w.dtype))
    coords = stored.coords
    last = stored.snapshots[-1]
    frame = FrameMeta(
        index=0,
        step=int(last["step"]),
        epoch=float(last["epoch"]),
        train_loss=None if last.get("train_loss") is None else float(last["train_loss"]),
        control_points=coords,
        points={START_POINT: _xy(coords[0]), FINAL_POINT: _xy(coords[-1])},
        snapshots=tuple(stored.snapshots),
    )
    return GridSource(
        kind=TRAJECTORY.name,
        model=model,
        data_spec=ckpt.data,
        frames=[0],
        plane=lambda _i: plane,
        window=lambda margin: window_around(coords, margin),
        frame_meta=lambda _i: frame,
    )


def grid_source(run: Run) -> GridSource:
    """The planes and model of a curve run, a plane-of-three run, a random plane around one
    network or a training trajectory's plane."""
    kind = run.read().get("kind")
    sources = {CURVE: curve_source, PLANE3: plane3_source, AROUND: around_source,
               TRAJECTORY: trajectory_source}
    row = run_kind(kind)
    if row in sources:
        return sources[row](run)
    raise LossartError(
        f"{run.root}: grids need a curve run or a plane run (run.json kind is {kind!r})"
    )
