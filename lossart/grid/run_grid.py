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
from lossart.grid.adaptive import criterion_record, plan_from_record
from lossart.grid.adaptive_run import assemble_adaptive, compute_adaptive, evaluated_counts
from lossart.grid.config import (  # noqa: F401  (importable from here as before)
    DEFAULT_ASPECT,
    DEFAULT_RESOLUTION,
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
from lossart.options import resolve_options
from lossart.precision import resolve_dtype
from lossart.progress import progress
from lossart.runs import Run, now_iso, open_run, versions

DEFAULT_SUBSET = 1024
MAX_SIDE = 20000  # per axis, without --force
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
    A recorded aspect of None (the window hugs the points) is the option's 0."""
    if old is None:
        return None
    return {
        "resolution": old.resolution, "subset": old.subset, "split": old.split,
        "margin": old.margin, "aspect": 0.0 if old.aspect is None else old.aspect,
        "tile_rows": old.tile, "compile": old.compile,
        "adaptive": old.adaptive,
    }  # fmt: skip


def _subset(
    data_spec: DataSpec, split: str, size: int | None, device: str
) -> tuple[torch.Tensor, torch.Tensor, str, int]:
    ds = load_dataset(data_spec)
    n = len(ds.split(split)[0])
    if size is None:
        size = min(DEFAULT_SUBSET, n)
    if size < 1:
        raise LossartError(f"--subset {size}: expected at least 1 sample")
    if size > n:
        raise LossartError(
            f"--subset {size}: the {split} split of {data_spec.name!r} has only {n} samples"
        )
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
    status = None
    if workers.leader:
        try:
            create()
        except LossartError as exc:
            status = str(exc)
    status = workers.broadcast(status)
    if status:
        workers.stop()
        raise LossartError(status)
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
    started = time.perf_counter()
    run = run_path if isinstance(run_path, Run) else open_run(run_path)
    source = grid_source(run)
    frames = pick_frames(source.frames, cfg.select_frames)
    old = None if cfg.overwrite else _recorded(run)

    got = resolve_options(cfg, recorded_options(old))
    w, h = (int(v) for v in got["resolution"])
    if max(w, h) > MAX_SIDE and not cfg.force:
        raise LossartError(
            f"--resolution {w}x{h}: over {MAX_SIDE} points per side; one frame's arrays alone "
            f"take {w * h * 8 / 2**30:.1f} GiB (pass --force to run it anyway)"
        )
    # The precision is chosen once per grid: a recorded grid keeps its own (`auto` or no dtype
    # asks for nothing new); a new one resolves `auto` on rank 0, which every rank then uses.
    # The library's default for a new grid is float32 (exact); the CLI's is auto.
    if old and cfg.dtype in (None, "auto"):
        dtype = old.dtype
    else:
        dtype = resolve_dtype(cfg.dtype or "float32", device, quiet=not workers.leader)
    dtype = workers.broadcast(dtype)
    split, margin, adaptive = got["split"], got["margin"], got["adaptive"]
    x, y, task, subset_size = _subset(source.data_spec, split, got["subset"], device)
    aspect = got["aspect"] or None  # 0 asks for no aspect: the window hugs the points
    window = _same_window(fit_aspect(source.window(margin), aspect), old.window if old else None)
    rows = min(int(got["tile_rows"] or default_tile_rows(w, h)), h)
    shape = (window.x_range[1] - window.x_range[0]) / (window.y_range[1] - window.y_range[0])
    criterion = None
    if adaptive is not None:
        if cfg.adaptive_criterion is not None:
            criterion = criterion_record(cfg.adaptive_criterion, adaptive, shape)
        elif old is not None and old.adaptive is not None:
            criterion = old.adaptive_criterion
        else:
            criterion = criterion_record("picture", adaptive, shape)
    plan = plan_from_record(w, h, adaptive, criterion, shape) if adaptive is not None else None

    layout = ParamLayout.of(source.model)
    engine = GridEngine(
        source.model, layout, x, y, task,
        EngineConfig(device=device, dtype=dtype, batch_points=cfg.batch_points),
    )  # fmt: skip
    # Compiling is decided once per grid (then read from grid.json), so that a resumed run
    # rounds exactly like the first one.
    compiled = engine.plan_compile(len(frames) * w * h, force=got["compile"])
    meta = GridMeta(
        kind=source.kind,
        resolution=(w, h),
        x_range=window.x_range,
        y_range=window.y_range,
        subset=subset_size,
        split=split,
        dtype=dtype,
        tile=rows,
        frames=sorted(set(old.frames) | set(frames)) if old else frames,
        margin=margin,
        aspect=aspect,
        curve=source.curve,
        directions=source.directions,
        flops_per_point=engine.flops_per_point,
        compile=compiled,
        model=(run.read().get("model") or {}).get("name"),
        created=old.created if old and old.created else now_iso(),
        versions=versions(),
        adaptive=adaptive,
        adaptive_criterion=criterion,
    )
    spec = meta.to_dict()
    tiles = TileLayout(w, h, rows)
    xs = grid_axis(*window.x_range, w)
    ys = grid_axis(*window.y_range, h)

    tasks = [(f, k) for f in frames for k in range(tiles.count)]
    lock = GridLock(run.grids, workers.shard)
    status, missing = None, None
    if workers.leader:
        try:
            output_dir(run.grids, "")  # a file named grids, a read-only run: before the lock
            output_dir(lock.dir, "")
            lock.acquire()
            if workers.shard is None:
                sweep_partial_tiles(run.grids)
            if cfg.overwrite:
                clear_grids(run.grids)
            elif old:
                diff = old.differences(meta)
                if diff:
                    raise LossartError(
                        f"{grid_json_path(run.grids)}: existing grids were made with other settings "
                        f"({'; '.join(diff)}); pass --overwrite to discard them"
                    )
            if plan is not None:  # every worker takes part in every frame's levels
                missing = [f for f in frames if not frame_grid_path(run.grids, f).is_file()]
                _say_resuming(len(frames) - len(missing), len(missing), "frames")
                share = len(missing) * w * h // (workers.world * (workers.shard or (0, 1))[1])
            else:
                missing = [
                    (f, k) for f, k in workers.shard_tasks(tasks)
                    if not frame_grid_path(run.grids, f).is_file()
                    and not tile_path(run.grids, f, k).is_file()
                ]  # fmt: skip
                share = -(-len(missing) // workers.world) * tiles.rows * w
                _say_resuming(len(workers.shard_tasks(tasks)) - len(missing), len(missing), "tiles")
            _check_time(spec, share, engine, cfg.force, source.plane(frames[0]))
            write_grid_meta(run.grids, meta)
            run.record_command("grid")
        except LossartError as exc:
            lock.release()
            status = str(exc)
    status, missing = workers.broadcast((status, missing))
    if status:
        raise LossartError(status)
    waiting: list[int] = []
    counts = None
    try:
        if plan is not None:
            got = compute_adaptive(
                run, engine, source, plan, missing, rows * w, xs, ys, workers, cfg.quiet
            )
            units, computed, waiting = got.units, got.points, got.waiting
        else:
            mine = workers.rank_tasks(missing)
            points = sum(tiles.points_of(k) for _, k in mine)
            computed = _compute(
                run, engine, source, mine, tiles, xs, ys, points, workers, cfg.quiet
            )
            units = len(mine)
        workers.barrier()
        assembled, upgraded = [], []
        if workers.leader:
            for f in frames:
                if frame_grid_path(run.grids, f).is_file():
                    continue
                fm = source.frame_meta(f)
                if plan is not None:
                    if assemble_adaptive(run, plan, f, xs, ys, fm):
                        assembled.append(f)
                elif assemble_frame(run.grids, f, tiles, xs, ys, fm) is not None:
                    assembled.append(f)
            upgraded = _add_coordinates(run, source, meta.frames)
            if plan is not None:
                counts = evaluated_counts(run, plan, frames)
        workers.barrier()
    finally:
        lock.release()
    return GridSummary(
        frames=frames,
        assembled=assembled,
        tiles_computed=units,
        points_computed=computed,
        seconds=time.perf_counter() - started,
        flops_per_point=engine.flops_per_point,
        engine=engine.describe(),
        spec=spec,
        upgraded=upgraded,
        adaptive=counts,
        waiting=waiting,
    )


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
    points: int,
    workers: Workers,
    quiet: bool | None,
) -> int:
    """Evaluate this worker's tiles, writing each atomically as it finishes; returns points done."""
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
    return done
