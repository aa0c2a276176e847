"""`lossart grid RUN`: every selected frame's loss grid, tile by tile, resumable, many workers.

The run says what the planes are (`lossart.grid.planes.grid_source`): a curve run has one plane
per recorded frame and one window for all frames; a plane-of-three run (`lossart plane`) has one
plane, frame 0. `grid.json` fixes the grid (resolution, window, subset, precision, tile rows); a
rerun with different settings is refused unless `overwrite`, and flags left out take the values
already recorded, so `lossart grid RUN` alone resumes whatever was started. Each assembled frame
file carries the frame's coordinates in its plane (`lossart.grid.files.FrameMeta`); frames
assembled before files carried them get them on a rerun, without evaluating any loss again.
With `adaptive` (a tolerance: by default the largest height error as a share of the relief, the
"picture" criterion; "log10": in log10 loss) each frame is refined level by level instead of
evaluated tile by tile (`lossart.grid.adaptive_run`); tolerance and criterion are recorded like
the rest (grids made before the criterion was recorded keep log10).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lossart.checks import output_dir
from lossart.data import DataSpec, eval_subset, load_dataset
from lossart.errors import LossartError
from lossart.frame_selection import pick_frames
from lossart.geometry.plane import Plane, Window, fit_aspect
from lossart.geometry.weights import ParamLayout
from lossart.grid.adaptive import AdaptivePlan, adaptive_plan
from lossart.grid.adaptive_run import (
    AdaptiveDone,
    assemble_adaptive,
    compute_adaptive,
    evaluated_counts,
)
from lossart.grid.config import (  # noqa: F401  (importable from here as before)
    DEFAULT_ASPECT,
    DEFAULT_RESOLUTION,
    MAX_SIDE,
    GridConfig,
    parse_aspect,
    parse_compile,
    parse_resolution,
)
from lossart.grid.engine import EngineConfig, GridEngine, grid_axis, resolve_device
from lossart.grid.files import (
    GridMeta,
    TileLayout,
    add_frame_meta,
    assemble_frame,
    clear_grids,
    default_tile_rows,
    frame_grid_path,
    frame_has_meta,
    grid_json_path,
    read_grid_meta,
    sweep_partial_tiles,
    tile_path,
    write_grid_meta,
    write_tile,
)
from lossart.grid.lock import GridLock
from lossart.grid.planes import GridSource, grid_source
from lossart.grid.workers import Workers, parse_shard
from lossart.options import option_error, resolve_options
from lossart.precision import resolve_dtype
from lossart.progress import progress
from lossart.runs import Run, now_iso, open_run, versions

DEFAULT_SUBSET = 1024
MAX_DAYS = 7.0  # estimated time for this process's share, without --force


@dataclass
class GridSummary:
    """What one `grid_run` call did."""

    frames: list[int]
    assembled: list[int]
    tiles_computed: int  # with --adaptive: units
    points_computed: int
    seconds: float
    flops_per_point: int
    engine: str
    spec: dict[str, Any] = field(default_factory=dict)  # grid.json as written
    upgraded: list[int] = field(default_factory=list)  # old frame files given their coordinates
    #: --adaptive: (points evaluated, points of the full lattice) over the assembled frames
    adaptive: tuple[int, int] | None = None
    waiting: list[int] = field(default_factory=list)  # adaptive frames waiting for other shards

    @property
    def points_per_second(self) -> float:
        return self.points_computed / self.seconds if self.seconds > 0 else 0.0


def recorded_options(old: GridMeta | None) -> dict[str, Any] | None:
    """What grid.json recorded, by GridConfig option name (None: no grid yet, or --overwrite).
    A recorded aspect of None (the window hugs the points) is the option's 0; the adaptive
    criterion is grid.json's record (a dict) where the grid was adaptive."""
    if old is None:
        return None
    return {
        "resolution": old.resolution, "subset": old.subset, "split": old.split,
        "margin": old.margin, "aspect": 0.0 if old.aspect is None else old.aspect,
        "tile_rows": old.tile, "compile": old.compile, "dtype": old.dtype,
        "adaptive": old.adaptive,
        "adaptive_criterion": old.adaptive_criterion if old.adaptive is not None else None,
    }  # fmt: skip


def _subset(
    data_spec: DataSpec, split: str, size: int | None, device: str
) -> tuple[torch.Tensor, torch.Tensor, str, int]:
    ds = load_dataset(data_spec)
    n = len(ds.split(split)[0])
    if size is None:
        size = min(DEFAULT_SUBSET, n)
    if size > n:  # the range itself is GridConfig's (lossart.options)
        problem = f"the {split} split of {data_spec.name!r} has only {n} samples"
        raise option_error(GridConfig, "subset", problem, size)
    x, y = eval_subset(ds, split=split, size=size, seed=0, device=device)
    return x, y, ds.task, size


def _recorded(run: Run) -> GridMeta | None:
    """The grid.json on disk (None if there is none); a broken one is refused in one line."""
    try:
        return read_grid_meta(run.grids)
    except LossartError as exc:
        raise LossartError(f"{exc}; fix it or pass --overwrite") from None


def _same_window(window: Window, recorded: dict[str, Any] | None) -> Window:
    """The recorded window where it is this one up to rounding: processes with other thread counts
    sum the plane geometry in another order, and must not see "other settings" in the last bit."""
    if not recorded:
        return window
    try:
        old = Window.from_dict(recorded)
    except (KeyError, TypeError, ValueError):
        return window
    now = [*window.x_range, *window.y_range]
    then = [*old.x_range, *old.y_range]
    scale = max(abs(v) for v in now + then) or 1.0
    if all(abs(a - b) <= 1e-9 * scale for a, b in zip(now, then)):
        return old
    return window


def _check_time(
    spec: dict[str, Any], points: int, engine: GridEngine, force: bool, plane: Plane
) -> None:
    """Refuse a grid that would take absurdly long: measure this engine's points/s (in the first
    frame's `plane`) and say so."""
    if force or points < 5000:
        return
    engine.set_plane(plane.origin, plane.u_hat, plane.v_hat)
    w, h = spec["resolution"]
    cx, cy = (sum(spec["window"]["x_range"]) / 2, sum(spec["window"]["y_range"]) / 2)
    n = max(1, min(4, engine.batch_points))
    engine.evaluate([cx] * n, [cy] * n)  # warm-up
    t0 = time.perf_counter()
    engine.evaluate([cx] * n, [cy] * n)
    rate = n / max(1e-9, time.perf_counter() - t0)
    seconds = points / rate
    if seconds > MAX_DAYS * 86400:
        raise LossartError(
            f"--resolution {w}x{h}: {points:,} points per worker at the measured "
            f"{rate:.2f} points/s "
            f"would take {seconds / 86400:.1f} days ({engine.flops_per_point / 1e9:.2f} GFLOP per "
            f"point); use more workers, a smaller grid or subset, or pass --force"
        )


def create_then_grid(out: str | Path, cfg: GridConfig, create: Callable[[], object]) -> GridSummary:
    """Make (or resume) a run folder with `create()`, then compute its grids: the one path of
    `lossart plane`, `plane --around` and `trajectory`. Under torchrun only rank 0 creates the
    folder; the others wait for it and fail with its error line if it could not be made."""
    output_dir(out)
    workers = Workers.from_env(parse_shard(cfg.shard))
    workers.start(workers.device_name(cfg.device))
    try:
        workers.lead(create)
    except LossartError:
        workers.stop()
        raise
    return grid_run(out, cfg)


def grid_run(run_path: str | Path | Run, cfg: GridConfig) -> GridSummary:
    """Compute (or resume) the grids of the selected frames of a run; returns what was done."""
    workers = Workers.from_env(parse_shard(cfg.shard))
    if cfg.overwrite and workers.shard is not None:
        raise LossartError("--overwrite with --shard: clear the grids with one unsharded run first")
    device = workers.device_name(cfg.device)
    resolve_device(device)
    workers.start(device)
    try:
        return _grid_run(run_path, cfg, workers, device)
    finally:
        workers.stop()


def _grid_run(
    run_path: str | Path | Run, cfg: GridConfig, workers: Workers, device: str
) -> GridSummary:
    """The one driver: what was asked merged with grid.json (`resolve_options`, the declared
    options' one merge), the grid's spec, rank 0's claim, every rank's share, rank 0's assembly."""
    started = time.perf_counter()
    run = run_path if isinstance(run_path, Run) else open_run(run_path)
    source = grid_source(run)
    frames = pick_frames(source.frames, cfg.select_frames)
    old = None if cfg.overwrite else _recorded(run)
    got = resolve_options(cfg, recorded_options(old))
    (w, h), aspect = got["resolution"], got["aspect"] or None  # aspect 0: the window hugs
    dtype = workers.broadcast(resolve_dtype(got["dtype"], device, quiet=not workers.leader))
    x, y, task, subset = _subset(source.data_spec, got["split"], got["subset"], device)
    window = _same_window(fit_aspect(source.window(got["margin"]), aspect), old and old.window)
    plan, criterion = adaptive_plan(w, h, got["adaptive"], got["adaptive_criterion"], window.shape)
    engine = GridEngine(source.model, ParamLayout.of(source.model), x, y, task,
                        EngineConfig(device=device, dtype=dtype, batch_points=cfg.batch_points))  # fmt: skip
    meta = GridMeta(
        kind=source.kind, resolution=(w, h), x_range=window.x_range, y_range=window.y_range,
        subset=subset, split=got["split"], dtype=dtype, margin=got["margin"], aspect=aspect,
        tile=min(int(got["tile_rows"] or default_tile_rows(w, h)), h),
        frames=sorted(set(old.frames) | set(frames)) if old else frames,
        curve=source.curve, directions=source.directions, flops_per_point=engine.flops_per_point,
        # compiled or not is decided once (then grid.json's): a resumed run rounds alike
        compile=engine.plan_compile(len(frames) * w * h, force=got["compile"]),
        model=(run.read().get("model") or {}).get("name"), versions=versions(),
        created=old.created if old and old.created else now_iso(),
        adaptive=got["adaptive"], adaptive_criterion=criterion,
    )  # fmt: skip
    tiles = TileLayout(w, h, meta.tile)
    xs, ys = grid_axis(*window.x_range, w), grid_axis(*window.y_range, h)
    lock = GridLock(run.grids, workers.shard)
    missing = workers.lead(lambda: _claim(run, cfg, old, meta, lock, workers, engine, source,
                                          frames, tiles, plan))  # fmt: skip
    try:
        if plan is not None:  # every rank takes part in every frame's levels
            done = compute_adaptive(run, engine, source, plan, missing, tiles.rows * w, xs, ys,
                                    workers, cfg.quiet)  # fmt: skip
        else:
            done = _compute(run, engine, source, workers.rank_tasks(missing), tiles, xs, ys,
                            workers, cfg.quiet)  # fmt: skip
        workers.barrier()
        assembled, upgraded, counts = [], [], None
        if workers.leader:
            assembled = _assemble(run, source, plan, frames, tiles, xs, ys)
            upgraded = _add_coordinates(run, source, meta.frames)
            counts = evaluated_counts(run, plan, frames) if plan is not None else None
        workers.barrier()
    finally:
        lock.release()
    return GridSummary(
        frames=frames, assembled=assembled, tiles_computed=done.units, points_computed=done.points,
        seconds=time.perf_counter() - started, flops_per_point=engine.flops_per_point,
        engine=engine.describe(), spec=meta.to_dict(), upgraded=upgraded, adaptive=counts,
        waiting=done.waiting,
    )  # fmt: skip


def _claim(
    run: Run, cfg: GridConfig, old: GridMeta | None, meta: GridMeta, lock: GridLock,
    workers: Workers, engine: GridEngine, source: GridSource, frames: list[int],
    tiles: TileLayout, plan: AdaptivePlan | None,
) -> list:  # fmt: skip
    """Rank 0's claim on the grid before any work: the lock, a clean slate (partial tiles swept,
    or every grid cleared with `overwrite`), the same settings as grid.json's, the work left
    (frames with `plan`, else this shard's tiles) and its time, then grid.json written."""
    try:
        output_dir(run.grids, "")  # a file named grids, a read-only run: before the lock
        output_dir(lock.dir, "")
        lock.acquire()
        if workers.shard is None:
            sweep_partial_tiles(run.grids)
        if cfg.overwrite:
            clear_grids(run.grids)
        elif old and old.differences(meta):
            raise LossartError(
                f"{grid_json_path(run.grids)}: existing grids were made with other settings "
                f"({'; '.join(old.differences(meta))}); pass --overwrite to discard them"
            )
        w, h = meta.resolution
        if plan is not None:  # every worker takes part in every frame's levels
            missing: list = [f for f in frames if not frame_grid_path(run.grids, f).is_file()]
            _say_resuming(len(frames) - len(missing), len(missing), "frames")
            share = len(missing) * w * h // (workers.world * (workers.shard or (0, 1))[1])
        else:
            mine = workers.shard_tasks([(f, k) for f in frames for k in range(tiles.count)])
            missing = [
                (f, k) for f, k in mine
                if not frame_grid_path(run.grids, f).is_file()
                and not tile_path(run.grids, f, k).is_file()
            ]  # fmt: skip
            share = -(-len(missing) // workers.world) * tiles.rows * w
            _say_resuming(len(mine) - len(missing), len(missing), "tiles")
        _check_time(meta.to_dict(), share, engine, cfg.force, source.plane(frames[0]))
        write_grid_meta(run.grids, meta)
        run.record_command("grid")
    except LossartError:
        lock.release()
        raise
    return missing


def _assemble(
    run: Run, source: GridSource, plan: AdaptivePlan | None, frames: list[int],
    tiles: TileLayout, xs: np.ndarray, ys: np.ndarray,
) -> list[int]:  # fmt: skip
    """Rank 0: every selected frame whose tiles (or levels) are all written, as one frame file."""
    assembled = []
    for f in frames:
        if frame_grid_path(run.grids, f).is_file():
            continue
        fm = source.frame_meta(f)
        if plan is not None:
            done = assemble_adaptive(run, plan, f, xs, ys, fm)
        else:
            done = assemble_frame(run.grids, f, tiles, xs, ys, fm) is not None
        if done:
            assembled.append(f)
    return assembled


def _say_resuming(done: int, left: int, what: str) -> None:
    """One line when work already on disk is kept (a resumed grid says so)."""
    if done and left:
        print(f"lossart: resuming: {done}/{done + left} {what} already done", file=sys.stderr)


def _add_coordinates(run: Run, source: GridSource, frames: list[int]) -> list[int]:
    """Give frame files assembled before frames carried their plane coordinates those
    coordinates (the loss arrays are kept); returns the frames rewritten."""
    recorded = set(source.frames)
    out = []
    for f in frames:
        path = frame_grid_path(run.grids, f)
        if f in recorded and path.is_file() and not frame_has_meta(run.grids, f):
            add_frame_meta(run.grids, f, source.frame_meta(f))
            out.append(f)
    return out


def _compute(
    run: Run,
    engine: GridEngine,
    source: GridSource,
    mine: list[tuple[int, int]],
    tiles: TileLayout,
    xs: np.ndarray,
    ys: np.ndarray,
    workers: Workers,
    quiet: bool | None,
) -> AdaptiveDone:
    """Evaluate this worker's tiles, writing each atomically as it finishes; returns the tiles
    and points done (as an adaptive run's units are counted)."""
    points = sum(tiles.points_of(k) for _, k in mine)
    disable = quiet if quiet is not None else None
    if workers.distributed and not workers.leader:
        disable = True
    per_frame: dict[int, int] = {}
    for f, _ in mine:
        per_frame[f] = per_frame.get(f, 0) + 1
    done_frame: dict[int, int] = {}
    current = None
    done = 0
    desc = f"grid [{engine.describe()}]"
    with progress(total=points, desc=desc, unit="pt", disable=disable) as bar:
        for n, (f, k) in enumerate(mine):
            if f != current:
                plane = source.plane(f)
                engine.set_plane(plane.origin, plane.u_hat, plane.v_hat)
                current = f
            start, stop = tiles.rows_of(k)
            gx, gy = np.meshgrid(xs, ys[start:stop])
            res = engine.evaluate(gx.reshape(-1), gy.reshape(-1))
            shape = (stop - start, tiles.width)
            write_tile(
                tile_path(run.grids, f, k),
                res.loss.reshape(shape),
                res.accuracy.reshape(shape),
                (start, stop),
            )
            done += res.loss.size
            done_frame[f] = done_frame.get(f, 0) + 1
            bar.set_postfix_str(
                f"frame {f}: tile {done_frame[f]}/{per_frame[f]}, all tiles {n + 1}/{len(mine)}",
                refresh=False,
            )
            bar.update(res.loss.size)
    return AdaptiveDone(units=len(mine), points=done)
