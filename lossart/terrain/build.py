"""`lossart terrain RUN`: a run's loss grids and curve frames to RUN/terrain/ (docs/bundle.md).

Reads RUN/grids/ (grid.json + frame_XXXXX.npz, docs/architecture.md) with numpy alone, takes
each frame's step/epoch/training loss from RUN/curve/frames.json, and the 2-D control points of
the curve (or the three optima of a plane run) from the plane geometry (lossart.geometry.plane: the only
part that touches torch). Two passes over the grids: one checks every frame and picks the loss
cap, one streams heights into the bundle writer, so memory does not grow with the frame count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lossart.blender.bundle_write import BundleFrame, BundleSpec, NamedPoint, write_bundle
from lossart.errors import LossartError
from lossart.progress import progress
from lossart.runs import Run, open_run
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
class FrameMeta:
    """What the manifest says about one frame apart from heights."""

    index: int
    step: int
    epoch: float
    train_loss: float | None
    control_points: np.ndarray  # [k+2, 2] or [0, 2] for plane3
    points: list[tuple[str, tuple[float, float]]]  # named positions (w1, w2[, w3])


@dataclass
class GridSet:
    """The run's grid frames, checked to share one size and one window."""

    indices: list[int]
    files: list[Path]
    shape: tuple[int, int]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
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


def grid_frame_path(run: Run, index: int) -> Path:
    return run.grids / f"frame_{index:05d}.npz"


def listed_grid_frames(run: Run) -> list[int]:
    """Frame indices from RUN/grids/grid.json, or the frame files present where it lists none."""
    spec_path = run.grids / "grid.json"
    if not run.grids.is_dir():
        raise LossartError(f"{run.root}: no grids/ folder (run `lossart grid {run.root}` first)")
    listed = None
    if spec_path.is_file():
        try:
            spec = json.loads(spec_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LossartError(f"{spec_path}: not valid JSON ({exc})") from None
        listed = spec.get("frames") if isinstance(spec, dict) else None
    if listed:
        try:
            indices = [int(f["index"] if isinstance(f, dict) else f) for f in listed]
        except (KeyError, TypeError, ValueError):
            raise LossartError(f"{spec_path}: 'frames' must list frame indices") from None
    else:
        indices = sorted(int(p.stem.split("_")[1]) for p in run.grids.glob("frame_[0-9]*.npz"))
    if not indices:
        raise LossartError(f"{run.grids}: no frame grids (run `lossart grid {run.root}` first)")
    return sorted(set(indices))


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


def load_grid_frame(path: Path, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(loss [H, W], xs [W], ys [H]) of one frame file, with one-line errors."""
    if not path.is_file():
        raise LossartError(
            f"{path}: grid of frame {index} is missing (rerun `lossart grid` to finish the run)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            loss, xs, ys = data["loss"], data["xs"], data["ys"]
    except KeyError as exc:
        raise LossartError(f"{path}: frame grid lacks array {exc} (needs loss, xs, ys)") from None
    except (OSError, ValueError) as exc:
        raise LossartError(f"{path}: not a readable frame grid ({exc})") from None
    if loss.ndim != 2 or loss.shape != (len(ys), len(xs)):
        raise LossartError(
            f"{path}: loss has shape {loss.shape}, expected [len(ys), len(xs)] = "
            f"[{len(ys)}, {len(xs)}]"
        )
    return loss, xs, ys


def scan_grids(run: Run, indices: list[int], config: TerrainConfig) -> tuple[GridSet, float]:
    """Check every frame grid (present, same size and window, not all NaN); pick the loss cap
    and find the lowest loss."""
    files = [grid_frame_path(run, i) for i in indices]
    first: tuple | None = None
    lowest = float("inf")
    samples: list[np.ndarray] = []
    stride = 1
    bar = progress(len(indices), desc="terrain scan", unit="frame")
    for index, path in zip(indices, files, strict=True):
        bar.update(1)
        loss, xs, ys = load_grid_frame(path, index)
        xr = _even_range(xs, "xs", path)
        yr = _even_range(ys, "ys", path)
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
        if config.loss_cap is None:
            samples.append(cap_samples(loss, stride))
        lowest = min(lowest, frame_loss_min(loss))
    bar.close()
    assert first is not None
    cap = cap_from_samples(samples, config)
    return GridSet(indices, files, first[1], first[2], first[3], lowest), cap


# ---------------------------------------------------------------- frame metadata and geometry


def run_kind(run: Run) -> str:
    kind = run.read().get("kind")
    if kind in ("plane3", "plane"):
        return "plane3"
    if kind == "curve" or (run.curve / "frames.json").is_file():
        return "curve"
    raise LossartError(
        f"{run.manifest}: kind {kind!r} has no terrain (expected a 'curve' or 'plane3' run)"
    )


def curve_frame_meta(run: Run, indices: list[int]) -> tuple[dict, Callable[[int], FrameMeta]]:
    """The curve spec and a lookup of each frame's step, epoch, loss and 2-D control points."""
    from lossart.geometry.plane import control_points_2d, frame_plane
    from lossart.training.curve_run import load_curve_run

    curve_run = load_curve_run(run)
    by_index = {fr.index: pos for pos, fr in enumerate(curve_run.frames)}
    missing = [i for i in indices if i not in by_index]
    if missing:
        raise LossartError(
            f"{run.grids}: grids for frame(s) {missing[:5]} have no curve frame in "
            f"{run.curve / 'frames.json'}"
        )

    def meta(index: int) -> FrameMeta:
        pos = by_index[index]
        fr = curve_run.frames[pos]
        plane = frame_plane(curve_run, pos)
        cp = control_points_2d(plane, curve_run.w1, fr.bends, curve_run.w2)
        return FrameMeta(
            index=index,
            step=int(fr.step),
            epoch=float(fr.epoch),
            train_loss=float(fr.train_loss),
            control_points=cp,
            points=[("w1", tuple(cp[0])), ("w2", tuple(cp[-1]))],
        )

    return curve_run.spec.to_dict(), meta


def plane3_frame_meta(run: Run) -> Callable[[int], FrameMeta]:
    """The plane through three optima: w1, w2, w3 at run.json's `plane3.points` (written by
    `lossart plane`), else projected again from endpoints/w1.pt, w2.pt, w3.pt."""
    from lossart.geometry.plane import plane_through
    from lossart.geometry.weights import ParamLayout
    from lossart.models import create_model
    from lossart.training.checkpoint import load_checkpoint

    recorded = (run.read().get("plane3") or {}).get("points") or {}
    if all(isinstance(recorded.get(n), list) and len(recorded[n]) == 2 for n in ("w1", "w2", "w3")):
        xy = [(float(recorded[n][0]), float(recorded[n][1])) for n in ("w1", "w2", "w3")]
    else:  # not recorded by `lossart plane`: project the three optima again
        ckpts = [load_checkpoint(run.endpoints / f"w{i}.pt") for i in (1, 2, 3)]
        layout = ParamLayout.of(create_model(ckpts[0].model))
        ws = [layout.flatten(ck.state_dict).float() for ck in ckpts]
        plane = plane_through(*ws)
        xy = [tuple(float(c) for c in plane.coords(w)[:2]) for w in ws]

    def meta(index: int) -> FrameMeta:
        return FrameMeta(
            index=index,
            step=0,
            epoch=0.0,
            train_loss=None,
            control_points=np.zeros((0, 2)),
            points=[("w1", xy[0]), ("w2", xy[1]), ("w3", xy[2])],
        )

    return meta


# ---------------------------------------------------------------- the build


def build_terrain(
    run_path: str | Path,
    config: TerrainConfig | None = None,
    out: str | Path | None = None,
    frames: str | None = None,
    preview: bool = False,
    export_mesh: int | None = None,
    mesh_format: str = "ply",
    mesh_ascii: bool = False,
) -> TerrainResult:
    """Write RUN/terrain/ (or `out`) from the run's grids; optionally previews and one mesh.

    `frames` selects grid frames like `lossart grid --frames` (`a:b:s`, `i`, `i,j,k`; default
    all). `export_mesh` names a frame index; the mesh goes to RUN/terrain/mesh/frame_XXXXX.ply|glb.
    A plane-of-three run gives one frame, an empty path and the points w1, w2, w3.
    """
    config = config or TerrainConfig()
    run = open_run(run_path)
    root = Path(out) if out is not None else run.terrain
    kind = run_kind(run)
    indices = listed_grid_frames(run)
    if frames is not None:
        from lossart.grid.run_grid import select_frames

        indices = select_frames(indices, frames)
    if kind == "plane3" and len(indices) != 1:
        raise LossartError(f"{run.grids}: a plane3 run has one frame grid, found {len(indices)}")
    if export_mesh is not None and export_mesh not in indices:
        raise LossartError(
            f"--export-mesh: no frame {export_mesh} in the grids "
            f"(frames {indices[0]}..{indices[-1]})"
        )
    grids, cap = scan_grids(run, indices, config)
    mapping = HeightMapping.resolve(config, cap, clip_loss_min(grids.lowest, config, cap))
    if kind == "curve":
        curve, meta_of = curve_frame_meta(run, indices)
    else:
        curve, meta_of = None, plane3_frame_meta(run)

    def load(position: int) -> np.ndarray:
        return load_grid_frame(grids.files[position], indices[position])[0]

    def stream():
        for pos, z, nonfinite in stream_heights(
            load, len(indices), config, cap, mapping.loss_min
        ):
            meta = meta_of(indices[pos])
            filled = fill_nonfinite(load(pos), cap)
            points = [
                NamedPoint(
                    name,
                    xy,
                    float(sample_bilinear(filled, grids.x_range, grids.y_range, np.array([xy]))[0]),
                )
                for name, xy in meta.points
            ]
            yield BundleFrame(
                index=meta.index,
                step=meta.step,
                epoch=meta.epoch,
                train_loss=meta.train_loss,
                heights=z,
                nonfinite=nonfinite,
                control_points=meta.control_points,
                points=points,
            )

    spec = BundleSpec(
        kind=kind,
        curve=curve,
        x_range=grids.x_range,
        y_range=grids.y_range,
        source_shape=grids.shape,
        config=config,
        loss_cap=cap,
        source_run=str(run.root.resolve()),
        loss_min=mapping.loss_min,
        offset=mapping.offset,
    )
    manifest = write_bundle(root, spec, stream(), total=len(indices), progress=progress)
    result = TerrainResult(root=root, manifest=manifest)
    if preview:
        from lossart.terrain.preview import write_previews

        result.previews = write_previews(root)
    if export_mesh is not None:
        from lossart.terrain.mesh import export_frame_mesh

        result.mesh = export_frame_mesh(root, export_mesh, fmt=mesh_format, ascii=mesh_ascii)
    return result
