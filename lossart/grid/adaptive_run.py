"""`lossart grid --adaptive TOL`: each frame refined level by level, in resumable units on disk.

The plan (`lossart.grid.adaptive.AdaptivePlan`) picks a level's points from the values of the
earlier levels only, so the state of a frame is nothing but its unit files: read them, ask the
plan for the first incomplete level, cut that level's full point list (row-major, fixed) into
units of `tile` rows' worth of points, and evaluate the units not on disk yet. A killed run
resumes from the same files with the same units; `--shard i/n` takes every n-th unit of each
level (a shard that finds a level waiting for other shards' units goes on to the next frame, and
says to rerun); torchrun ranks split a shard's units and barrier between levels.

The assembled frame keeps the evaluated values exactly; the rest is filled by the plan's `fill`:
loss in log10 (floored, `log_loss`) then back to loss, accuracy linearly in its own units and
clipped to [0, 1]. Its `evaluated` mask says which cells were evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lossart.grid.adaptive import AdaptivePlan, log_loss
from lossart.grid.engine import GridEngine
from lossart.grid.files import (
    FrameGrid,
    FrameMeta,
    frame_grid_path,
    read_units,
    unit_path,
    write_frame_grid,
    write_unit,
)
from lossart.grid.planes import GridSource
from lossart.grid.workers import Workers
from lossart.progress import progress
from lossart.runs import Run


@dataclass
class AdaptiveDone:
    """What this worker evaluated, and which frames still wait for other shards' units."""

    units: int = 0
    points: int = 0
    waiting: list[int] = field(default_factory=list)


def frame_state(
    run: Run, plan: AdaptivePlan, frame: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frame's units on disk as (loss, accuracy, evaluated) on the [H, W] lattice."""
    return read_units(run.grids, frame, plan.width, plan.height)


def compute_adaptive(
    run: Run,
    engine: GridEngine,
    source: GridSource,
    plan: AdaptivePlan,
    frames: list[int],
    unit_points: int,
    xs: np.ndarray,
    ys: np.ndarray,
    workers: Workers,
    quiet: bool | None,
) -> AdaptiveDone:
    """Evaluate this worker's units of every level of `frames`, writing each atomically."""
    disable = True if workers.distributed and not workers.leader else quiet
    done = AdaptiveDone()
    with progress(desc=f"adaptive grid [{engine.describe()}]", unit="pt", disable=disable) as bar:
        for f in frames:
            plane = source.plane(f)
            engine.set_plane(plane.origin, plane.u_hat, plane.v_hat)
            if not _refine_frame(run, engine, plan, f, unit_points, xs, ys, workers, done, bar):
                done.waiting.append(f)
    return done


def _refine_frame(run, engine, plan, f, unit_points, xs, ys, workers, done, bar) -> bool:
    """Refine one frame until complete (True) or waiting for other shards' units (False).

    Every rank reads the same files after the barrier, so all take the same decisions.
    """
    while True:
        workers.barrier()
        loss, _, evaluated = frame_state(run, plan, f)
        logv = log_loss(loss)
        work = plan.next_work(logv, evaluated)
        if work is None:
            return True
        units = list(enumerate(plan.level_points(work.level, logv, evaluated).units(unit_points)))
        todo = [
            (k, u) for k, u in workers.shard_tasks(units)
            if not unit_path(run.grids, f, work.level, k).is_file()
        ]  # fmt: skip
        if not todo:
            return False  # the rest of this level belongs to other shards
        for k, u in workers.rank_tasks(todo):
            res = engine.evaluate(xs[u.cols], ys[u.rows])
            write_unit(
                unit_path(run.grids, f, u.level, k),
                u.rows * plan.width + u.cols,
                res.loss,
                res.accuracy,
            )
            done.units += 1
            done.points += u.count
            bar.set_postfix_str(f"frame {f}: level {u.level}/{plan.levels - 1}", refresh=False)
            bar.update(u.count)


def assemble_adaptive(
    run: Run,
    plan: AdaptivePlan,
    frame: int,
    xs: np.ndarray,
    ys: np.ndarray,
    meta: FrameMeta | None,
) -> bool:
    """Write the frame file from its units if the plan is complete; False if it is not."""
    loss, acc, evaluated = frame_state(run, plan, frame)
    logv = log_loss(loss)
    if plan.next_work(logv, evaluated) is not None:
        return False
    with np.errstate(over="ignore"):
        filled = np.where(evaluated, loss, 10.0 ** plan.fill(logv, evaluated))
    accuracy = np.where(evaluated, acc, np.clip(plan.fill(acc, evaluated), 0.0, 1.0))
    write_frame_grid(run.grids, FrameGrid(frame, filled, accuracy, xs, ys, meta, evaluated))
    return True


def evaluated_counts(run: Run, plan: AdaptivePlan, frames: list[int]) -> tuple[int, int]:
    """(points evaluated, points of the full lattice) over the frames that are assembled."""
    got = total = 0
    for f in frames:
        if frame_grid_path(run.grids, f).is_file():
            got += int(frame_state(run, plan, f)[2].sum())
            total += plan.width * plan.height
    return got, total
