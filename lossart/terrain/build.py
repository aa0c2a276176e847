"""`lossart terrain RUN`: a run's loss grids to RUN/terrain/ (docs/bundle.md).

Reads RUN/grids/ alone, through `lossart.grid.files` (numpy + json): grid.json for the frames,
the kind and the curve, and each frame file for its loss and its coordinates in its plane
(control points, named points, step, epoch, training loss), which `lossart grid` wrote there. No
checkpoint, model or torch is touched, so a bundle can be rebuilt on a machine without torch. Two
passes over the grids: one checks every frame and picks the loss cap, one streams heights into
the bundle writer, so memory does not grow with the frame count. The new bundle replaces the
old one only once complete (docs/reliability.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lossart.checks import output_dir
from lossart.errors import LossartError
from lossart.format.kinds import AROUND, CURVE, SAMPLED, TRAJECTORY, run_kind
from lossart.frame_selection import FrameSelection, pick_frames
from lossart.grid.files import (
    FrameMeta,
    GridMeta,
    frame_grid_path,
    grid_json_path,
    read_frame_grid,
    read_grid_meta,
)
from lossart.locks import working_on
from lossart.progress import progress
from lossart.runs import Run, open_run
from lossart.terrain.bundle_write import BundleFrame, BundleSpec, NamedPoint, write_bundle
from lossart.terrain.heightfield import (
    HeightMapping,
    TerrainConfig,
    cap_from_samples,
    cap_samples,
    clip_loss_min,
    fill_nonfinite,
    frame_loss_min,
    quantile_stride,
    sample_bilinear,
    stream_heights,
)

#: Relative deviation from even spacing tolerated in a grid's xs/ys (float32 rounding).
SPACING_TOL = 1e-4


@dataclass
class GridSet:
    """The run's grid frames, checked to share one size and one window, and their coordinates."""

    indices: list[int]
    shape: tuple[int, int]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    metas: list[FrameMeta]
    lowest: float = float("inf")  # the lowest finite loss of all frames (before clipping)


@dataclass
class TerrainResult:
    """What `build_terrain` wrote."""

    root: Path
    manifest: dict
    previews: list[Path] = field(default_factory=list)
    mesh: Path | None = None

    def summary(self) -> str:
        m = self.manifest
        h, g = m["height"], m["grid"]
        nonfinite = sum(f["nonfinite"] for f in m["frames"])
        what = h.get("transform", "log10")
        if what == "log10-excess":
            what += f" above loss {h['mapping']['loss_min']:.4g}"
        line = (
            f"{self.root}: {len(m['frames'])} frame(s) of {g['width']}x{g['height']}, "
            f"z {h['z_min']:.3f}..{h['z_max']:.3f} ({what}, cap {h['loss_cap']:.4g})"
        )
        if nonfinite:
            line += f", {nonfinite} non-finite grid point(s) filled with the cap"
        if self.previews:
            line += f", {len(self.previews)} preview(s)"
        if self.mesh:
            line += f", mesh {self.mesh}"
        return line


# ---------------------------------------------------------------- reading the grids


def _rerun(run: Run) -> str:
    return f"rerun `lossart grid {run.root}` (it adds them without evaluating any loss again)"


def grid_meta(run: Run) -> GridMeta:
    """RUN/grids/grid.json, written by a lossart whose frame files carry plane coordinates."""
    if not run.grids.is_dir():
        raise LossartError(f"{run.root}: no grids/ folder (run `lossart grid {run.root}` first)")
    meta = read_grid_meta(run.grids)
    if meta is None:
        raise LossartError(
            f"{grid_json_path(run.grids)}: missing (run `lossart grid {run.root}` first)"
        )
    if not meta.has_coordinates:
        raise LossartError(
            f"{grid_json_path(run.grids)}: grids made before grid files carried the frames' "
            f"plane coordinates; {_rerun(run)}"
        )
    if not meta.frames:
        raise LossartError(f"{run.grids}: no frame grids (run `lossart grid {run.root}` first)")
    return meta


def _even_range(values: np.ndarray, what: str, path: Path) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) < 2:
        raise LossartError(f"{path}: {what} must hold at least 2 coordinates, got shape {v.shape}")
    step = np.diff(v)
    if not (step > 0).all():
        raise LossartError(f"{path}: {what} must be strictly increasing")
    if np.abs(step - step.mean()).max() > SPACING_TOL * abs(step.mean()):
        raise LossartError(f"{path}: {what} is not evenly spaced (the bundle needs a regular grid)")
    return float(v[0]), float(v[-1])


def scan_grids(
    run: Run, meta: GridMeta, indices: list[int], config: TerrainConfig
) -> tuple[GridSet, float]:
    """Check every frame grid (present, same size and window, not all NaN, with its plane
    coordinates); pick the loss cap."""
    first: tuple | None = None
    samples: list[np.ndarray] = []
    metas: list[FrameMeta] = []
    stride = 1
    lowest = float("inf")
    bar = progress(len(indices), desc="terrain scan", unit="frame")
    for index in indices:
        bar.update(1)
        grid = read_frame_grid(run.grids, index)
        loss, path = grid.loss, frame_grid_path(run.grids, index)
        xr = _even_range(grid.xs, "xs", path)
        yr = _even_range(grid.ys, "ys", path)
        if first is None:
            first = (index, loss.shape, xr, yr)
            stride = quantile_stride(loss.size * len(indices))
        else:
            if loss.shape != first[1]:
                raise LossartError(
                    f"{path}: grid is {loss.shape[1]}x{loss.shape[0]} but frame {first[0]}'s is "
                    f"{first[1][1]}x{first[1][0]}; all frames need one size (rerun `lossart grid`)"
                )
            if not (np.allclose(xr, first[2], rtol=1e-6) and np.allclose(yr, first[3], rtol=1e-6)):
                raise LossartError(
                    f"{path}: window x {xr}, y {yr} differs from frame {first[0]}'s "
                    f"x {first[2]}, y {first[3]}; all frames need one window"
                )
        if not np.isfinite(loss).any():
            raise LossartError(
                f"{path}: every loss of frame {index} is NaN/inf (diverged everywhere, or an "
                f"unfinished grid); rerun `lossart grid` for it or leave it out with --frames"
            )
        metas.append(_frame_meta(run, meta, grid.meta, path))
        if config.loss_cap is None:
            samples.append(cap_samples(loss, stride))
        lowest = min(lowest, frame_loss_min(loss))
    bar.close()
    assert first is not None
    cap = cap_from_samples(samples, config)
    return GridSet(indices, first[1], first[2], first[3], metas, lowest), cap


def _frame_meta(run: Run, grids: GridMeta, frame: FrameMeta | None, path: Path) -> FrameMeta:
    """A frame's plane coordinates, checked against the curve that grid.json names."""
    if frame is None:
        raise LossartError(
            f"{path}: assembled before grid files carried the frames' plane coordinates; "
            f"{_rerun(run)}"
        )
    if grids.kind == TRAJECTORY.name:
        if len(frame.control_points) < 2 or len(frame.snapshots) != len(frame.control_points):
            raise LossartError(
                f"{path}: a trajectory frame needs 2+ projected snapshots, one record each "
                f"({len(frame.control_points)} points, {len(frame.snapshots)} records); "
                f"rerun `lossart grid {run.root} --overwrite`"
            )
        return frame
    want = grids.curve["bends"] + 2 if grids.kind == CURVE.name and grids.curve else 0
    if len(frame.control_points) != want:
        raise LossartError(
            f"{path}: {len(frame.control_points)} control points, expected {want} for "
            f"{grids.kind} grids ({grids.curve}); rerun `lossart grid {run.root} --overwrite`"
        )
    return frame


# ---------------------------------------------------------------- the build


def trajectory_frames(
    frame: FrameMeta, heights: np.ndarray, nonfinite: int, points: list[NamedPoint]
) -> Iterator[BundleFrame]:
    """A trajectory grid frame as one bundle frame per snapshot: the same heights, the path
    growing by one snapshot per frame, each frame stamped with its snapshot's step and epoch."""
    for k, rec in enumerate(frame.snapshots):
        loss = rec.get("train_loss")
        yield BundleFrame(
            index=k,
            step=int(rec["step"]),
            epoch=float(rec["epoch"]),
            train_loss=None if loss is None else float(loss),
            heights=heights,
            nonfinite=nonfinite,
            control_points=frame.control_points[: k + 1],
            points=points,
        )


def build_terrain(
    run_path: str | Path,
    config: TerrainConfig | None = None,
    out: str | Path | None = None,
    select_frames: str | FrameSelection | None = None,
    preview: bool = False,
    export_mesh: int | None = None,
    mesh_format: str | None = None,
    mesh_ascii: bool = False,
) -> TerrainResult:
    """Write RUN/terrain/ (or `out`) from the run's grids; optionally previews and one mesh.

    `select_frames` picks grid frames as `lossart grid --select-frames` does (`a:b:s`, `i`,
    `i,j,k`, or a FrameSelection; default all). `export_mesh` names a frame index; the mesh goes to RUN/terrain/mesh/frame_XXXXX.ply|glb|obj|stl.
    A plane-of-three run gives one frame, an empty path and the points w1, w2, w3; an around run
    (`lossart plane --around`) the same with the one point w at (0, 0), as a bundle of kind plane3.
    A trajectory run (`lossart trajectory`) gives a bundle of kind trajectory: one bundle frame
    per snapshot over the one grid's heights, frame k's path the projected snapshots 0..k (so a
    video reveals the route snapshot by snapshot over a fixed terrain, and a still of the last
    frame shows all of it), with the points start and final (the optimum, at (0, 0)).
    """
    from lossart.terrain.mesh import check_mesh_options

    config = config or TerrainConfig()
    mesh_format = check_mesh_options(export_mesh, mesh_format, mesh_ascii)
    run = open_run(run_path)
    root = output_dir(out if out is not None else run.terrain)
    meta = grid_meta(run)
    kind = meta.kind
    row = run_kind(kind)
    if row is None:  # grid.json's reader refuses these; a guard for a caller's own GridMeta
        raise LossartError(f"{run.grids}: grids of an unknown kind {kind!r}")
    indices = pick_frames(sorted(set(meta.frames)), select_frames)
    if not row.many_grids and len(indices) != 1:
        raise LossartError(f"{run.grids}: a {kind} run has one frame grid, found {len(indices)}")
    if export_mesh is not None and export_mesh not in indices:
        raise LossartError(
            f"--export-mesh: no frame {export_mesh} in the grids "
            f"(frames {indices[0]}..{indices[-1]})"
        )
    grids, cap = scan_grids(run, meta, indices, config)
    mapping = HeightMapping.resolve(config, cap, clip_loss_min(grids.lowest, config, cap))
    curve = meta.curve if row.path == SAMPLED else None

    def load(position: int) -> np.ndarray:
        return read_frame_grid(run.grids, indices[position]).loss

    def stream():
        for pos, z, nonfinite in stream_heights(
            load, len(indices), config, cap, mapping.loss_min
        ):
            frame = grids.metas[pos]
            filled = fill_nonfinite(load(pos), cap)
            points = [
                NamedPoint(
                    name,
                    xy,
                    float(sample_bilinear(filled, grids.x_range, grids.y_range, np.array([xy]))[0]),
                )
                for name, xy in frame.points.items()
            ]
            if row is TRAJECTORY:
                yield from trajectory_frames(frame, z, nonfinite, points)
                continue
            yield BundleFrame(
                index=frame.index,
                step=frame.step,
                epoch=frame.epoch,
                train_loss=frame.train_loss,
                heights=z,
                nonfinite=nonfinite,
                control_points=frame.control_points,
                points=points,
            )

    total = len(grids.metas[0].snapshots) if row is TRAJECTORY else len(indices)
    spec = BundleSpec(
        kind=row.bundle,  # around: a plane3 bundle (one frame, named points, no path)
        curve=curve,
        x_range=grids.x_range,
        y_range=grids.y_range,
        source_shape=grids.shape,
        config=config,
        loss_cap=cap,
        source_run=str(run.root.resolve()),
        loss_min=mapping.loss_min,
        offset=mapping.offset,
        dtype=meta.dtype,  # a picture says how its grids were computed
        directions=meta.directions if row is AROUND else None,
    )
    with working_on(root, "`lossart terrain`"):  # the writer swaps the bundle in complete
        manifest = write_bundle(root, spec, stream(), total=total, progress=progress)
    result = TerrainResult(root=root, manifest=manifest)
    if preview:
        from lossart.terrain.preview import write_previews

        result.previews = write_previews(root)
    if export_mesh is not None:
        from lossart.terrain.mesh import export_frame_mesh

        result.mesh = export_frame_mesh(root, export_mesh, fmt=mesh_format, ascii=mesh_ascii)
    return result
