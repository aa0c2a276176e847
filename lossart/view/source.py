"""What a view shows: a terrain bundle, and the run's loss grids where they can be found.

`lossart view RUN` opens RUN/terrain/ and reads the losses from RUN/grids/; a bundle folder opens
with the losses of the run it sits in (or the run its manifest names, `source_run`) when that
run's grids still match it, and with heights only where there is no such run (a bundle someone
shared). The grids are read through `lossart.grid.files` (numpy + json), never the checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lossart.errors import LossartError
from lossart.format.bundle import Bundle, BundleError, load_bundle
from lossart.format.kinds import TRAJECTORY, source_kind
from lossart.grid.files import (
    FrameGrid,
    GridMeta,
    frame_grid_path,
    read_frame_grid,
    read_grid_meta,
)
from lossart.runs import Run

#: How far (as a share of the window) a grid's first/last coordinate may sit from the bundle's.
WINDOW_TOL = 1e-5


@dataclass
class RunGrids:
    """A run's grids matched to a bundle: the grid frame behind each bundle frame."""

    run: Run
    meta: GridMeta
    indices: list[int]  # grid frame index per bundle frame position

    @property
    def adaptive(self) -> bool:
        return self.meta.adaptive is not None

    def frame(self, position: int) -> FrameGrid:
        return read_frame_grid(self.run.grids, self.indices[position])


@dataclass
class ViewSource:
    """A bundle to show and, when found, the grids its heights were made from."""

    bundle: Bundle
    grids: RunGrids | None
    run: Run | None  # the run folder the bundle belongs to (for the default output path)
    note: str = ""  # why the losses are not shown, when they are not

    @property
    def directions(self) -> str:
        """What spans an around plane: random (Li et al.), hessian or hessian-min (run.json)."""
        if self.run is None or not self.run.manifest.is_file():
            return "random"
        try:
            around = self.run.read().get("around")
        except LossartError:
            return "random"
        return str((around or {}).get("directions") or "random")

    @property
    def kind(self) -> str:
        """curve, plane3, around (a plane3 bundle with the one point w) or trajectory."""
        row = source_kind(self.bundle.kind, [p.name for p in self.bundle.frames[0].points])
        return row.name if row else self.bundle.kind


def open_source(path: str | os.PathLike, losses: bool = True) -> ViewSource:
    """RUN or BUNDLE -> ViewSource; one-line errors name the folder and what was expected.

    A run whose grids no longer match its bundle is an error (rerun `lossart terrain`); a bundle
    given by itself falls back to heights only and says why in `note`."""
    p = Path(path).expanduser()
    if p.is_file() and p.name == "manifest.json":
        p = p.parent
    if (p / "run.json").is_file():
        run = Run(p)
        if not (run.terrain / "manifest.json").is_file():
            raise LossartError(
                f"{p}: this run has no terrain bundle yet (run `lossart terrain {p}` first)"
            )
        bundle = _load(run.terrain)
        if not losses:
            return ViewSource(bundle, None, run, "heights only (asked for)")
        grids = _match(run, bundle)
        return ViewSource(bundle, grids, run, "" if grids else f"heights only: {run.grids} has no grids")
    if not (p / "manifest.json").is_file():
        raise LossartError(
            f"{p}: neither a run folder (run.json) nor a terrain bundle (manifest.json)"
        )
    bundle = _load(p)
    home = Run(p.parent) if (p.parent / "run.json").is_file() else None
    if not losses:
        return ViewSource(bundle, None, home, "heights only (asked for)")
    candidates = [home] if home else []
    named = bundle.manifest.source_run
    if isinstance(named, str) and (Path(named) / "run.json").is_file():
        candidates.append(Run(Path(named)))
    note = "heights only: no run folder with this bundle's grids"
    for run in candidates:
        try:
            grids = _match(run, bundle)
        except LossartError as exc:
            note = f"heights only: {exc}"
            continue
        if grids is not None:
            return ViewSource(bundle, grids, home or run)
    return ViewSource(bundle, None, home, note)


def _load(root: Path) -> Bundle:
    try:
        return load_bundle(root)
    except BundleError as exc:
        raise LossartError(str(exc)) from None


def _match(run: Run, bundle: Bundle) -> RunGrids | None:
    """The run's grid frames behind the bundle's frames, checked to be the grids it was made
    from (size and window); None where the run has no grids."""
    meta = read_grid_meta(run.grids)
    if meta is None:
        return None
    if bundle.kind == TRAJECTORY.bundle:
        if len(meta.frames) != 1:
            raise LossartError(f"{run.grids}: a trajectory run has one frame grid")
        indices = [meta.frames[0]] * len(bundle.frames)
    else:
        indices = [f.index for f in bundle.frames]
    missing = [i for i in indices if not frame_grid_path(run.grids, i).is_file()]
    if missing:
        raise LossartError(
            f"{frame_grid_path(run.grids, missing[0])}: missing, but the bundle shows frame "
            f"{missing[0]}; rerun `lossart terrain {run.root}`, or view heights only (--heights-only)"
        )
    first = read_frame_grid(run.grids, indices[0])
    g = bundle.manifest.grid
    want = (g.source_height, g.source_width)
    x_ok = _same_range(first.xs, bundle.x_range)
    y_ok = _same_range(first.ys, bundle.y_range)
    if first.loss.shape != want or not (x_ok and y_ok):
        raise LossartError(
            f"{run.grids}: frame {indices[0]}'s grid ({first.loss.shape[1]}x{first.loss.shape[0]}, "
            f"x {first.xs[0]:.6g}..{first.xs[-1]:.6g}) is not the one the bundle was made from "
            f"({want[1]}x{want[0]}, x {bundle.x_range[0]:.6g}..{bundle.x_range[1]:.6g}); rerun "
            f"`lossart terrain {run.root}`, or view heights only (--heights-only)"
        )
    return RunGrids(run, meta, indices)


def _same_range(coords: np.ndarray, want: tuple[float, float]) -> bool:
    span = want[1] - want[0]
    return abs(coords[0] - want[0]) <= WINDOW_TOL * span and abs(coords[-1] - want[1]) <= WINDOW_TOL * span
