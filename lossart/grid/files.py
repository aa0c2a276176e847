"""The grid files: what `lossart grid` and `lossart plane` write under RUN/grids/, read by every
later stage. numpy + json only, so that the terrain stage reads grids with no torch installed.

```
RUN/grids/grid.json                          GridMeta: the grid spec, the curve, the frame list
RUN/grids/frame_00000.npz                    one frame: loss, accuracy [H, W] float32, xs [W],
                                             ys [H] float64, control_points [k+2, 2] float64,
                                             frame (a JSON string: FrameMeta without the arrays)
RUN/grids/tiles/frame_00000/tile_00003.npz   loss, accuracy [rows, W] of rows start..stop-1
RUN/grids/tiles/frame_00000/level_02_unit_00004.npz
                                             --adaptive: one unit of a refinement level: flat
                                             point indices (row * W + col) int64, loss, accuracy
RUN/grids/locks/<name>.lock                  held while a job runs (lossart.grid.lock)
```

A tile is a band of consecutive grid rows. Every file is written atomically, so a file that exists
is complete: a rerun after any interruption (kill -9 included) skips the tiles present and
computes the rest, and the assembled grid is the same array an uninterrupted run writes (each
point's value depends on nothing but its coordinates).

An adaptive grid's frame file also holds `evaluated` [H, W] bool, the points that were evaluated
(the others are interpolated, see lossart.grid.adaptive); full grids have none (all evaluated).

A frame file carries everything later stages need in that frame's plane coordinates (control
points, named points, step, epoch, training loss), so that they never reopen the checkpoints.
Frames assembled before that (grid.json without `format_version`, frame files without `frame`)
are upgraded in place by rerunning `lossart grid RUN`; readers that need the coordinates refuse
them in one line saying so.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lossart.atomic import np_savez, write_json
from lossart.errors import LossartError
from lossart.format.kinds import CURVE, RUN_KINDS
from lossart.runs import Run

GRID_FORMAT = "lossart-grid"
#: 2: frame files hold the frame's plane coordinates (`FrameMeta`) and grid.json the curve.
#: 1 (no `format_version` in grid.json): loss grids only.
GRID_VERSION = 2
GRID_JSON = "grid.json"
#: Settings that make two grids different grids (a rerun with others needs --overwrite).
SPEC_KEYS = (
    "kind", "resolution", "window", "subset", "split", "subset_seed", "dtype", "tile", "adaptive",
    "adaptive_criterion",
)  # fmt: skip
REQUIRED_KEYS = ("kind", "resolution", "window", "subset", "split", "dtype", "tile", "frames")
KINDS = tuple(RUN_KINDS)


# ---------------------------------------------------------------- paths


def grid_json_path(grids: Path) -> Path:
    return grids / GRID_JSON


def frame_grid_path(grids: Path, index: int) -> Path:
    return grids / f"frame_{index:05d}.npz"


def tile_dir(grids: Path, index: int) -> Path:
    return grids / "tiles" / f"frame_{index:05d}"


def tile_path(grids: Path, index: int, tile: int) -> Path:
    return tile_dir(grids, index) / f"tile_{tile:05d}.npz"


def unit_path(grids: Path, index: int, level: int, unit: int) -> Path:
    return tile_dir(grids, index) / f"level_{level:02d}_unit_{unit:05d}.npz"


def locks_dir(grids: Path) -> Path:
    return grids / "locks"


def rerun_hint(grids: Path) -> str:
    return f"rerun `lossart grid {grids.parent}`"


# ---------------------------------------------------------------- grid.json


@dataclass
class GridMeta:
    """RUN/grids/grid.json: the grid every frame of a run shares, and the frames asked for."""

    kind: str  # a run kind (lossart.format.kinds)
    resolution: tuple[int, int]  # (W, H)
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    subset: int
    split: str
    dtype: str
    tile: int  # rows per tile
    frames: list[int]
    margin: float = 0.2
    aspect: float | None = None  # window width / height; None: the window hugs the points
    subset_seed: int = 0
    curve: dict[str, Any] | None = None  # {"kind", "bends"} of a curve run; None for plane3
    flops_per_point: int | None = None
    compile: bool | None = None
    model: str | None = None
    created: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = GRID_VERSION
    adaptive: float | None = None  # --adaptive TOL, in the criterion's units; None: full lattice
    #: how TOL is judged (lossart.grid.adaptive.criterion_record): {"kind": "picture", ...} (TOL a
    #: share of the relief) or {"kind": "log10"} (TOL in log10 loss; grids made before this key)
    adaptive_criterion: dict[str, Any] | None = None
    directions: dict[str, Any] | None = None  # an around run's axes: kind, scale, names, eigenvalues

    @property
    def window(self) -> dict[str, list[float]]:
        return {"x_range": list(self.x_range), "y_range": list(self.y_range)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": GRID_FORMAT,
            "format_version": self.format_version,
            "kind": self.kind,
            "resolution": list(self.resolution),
            "window": self.window,
            "margin": self.margin,
            "aspect": self.aspect,
            "subset": self.subset,
            "split": self.split,
            "subset_seed": self.subset_seed,
            "dtype": self.dtype,
            "tile": self.tile,
            "adaptive": self.adaptive,
            "adaptive_criterion": self.adaptive_criterion,
            "frames": list(self.frames),
            "curve": self.curve,
            "directions": self.directions,
            "flops_per_point": self.flops_per_point,
            "compile": self.compile,
            "model": self.model,
            "created": self.created,
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, d: Any, path: Path) -> GridMeta:
        """A checked GridMeta; one-line errors name the file and the key."""
        if not isinstance(d, dict) or d.get("format") != GRID_FORMAT:
            raise LossartError(f"{path}: not a lossart grid spec (format != {GRID_FORMAT!r})")
        version = d.get("format_version", 1)
        if not isinstance(version, int) or version > GRID_VERSION:
            raise LossartError(
                f"{path}: format_version {version!r} is newer than this lossart reads "
                f"({GRID_VERSION}); update lossart"
            )
        missing = [k for k in REQUIRED_KEYS if k not in d]
        if missing:
            raise LossartError(f"{path}: missing key {missing[0]!r}")
        try:
            meta = cls(
                kind=str(d["kind"]),
                resolution=_pair(d["resolution"], int),
                x_range=_pair(d["window"]["x_range"], float),
                y_range=_pair(d["window"]["y_range"], float),
                subset=int(d["subset"]),
                split=str(d["split"]),
                dtype=str(d["dtype"]),
                tile=int(d["tile"]),
                frames=[_index(f) for f in d["frames"]],
                margin=float(d.get("margin", 0.2)),
                aspect=None if d.get("aspect") is None else float(d["aspect"]),
                subset_seed=int(d.get("subset_seed", 0)),
                curve=_curve(d.get("curve")),
                flops_per_point=d.get("flops_per_point"),
                compile=d.get("compile"),
                model=d.get("model"),
                created=d.get("created"),
                versions=dict(d.get("versions") or {}),
                format_version=version,
                adaptive=None if d.get("adaptive") is None else float(d["adaptive"]),
                adaptive_criterion=_criterion(d),
                directions=d.get("directions") if isinstance(d.get("directions"), dict) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LossartError(
                f"{path}: malformed grid spec ({type(exc).__name__}: {exc})"
            ) from None
        if meta.kind not in KINDS:
            raise LossartError(f"{path}: kind {meta.kind!r}, expected one of {', '.join(KINDS)}")
        if min(meta.resolution) < 2 or meta.tile < 1:
            raise LossartError(
                f"{path}: resolution {list(meta.resolution)} needs 2+ points per side, "
                f"tile {meta.tile} 1+ rows"
            )
        if not (meta.x_range[0] < meta.x_range[1] and meta.y_range[0] < meta.y_range[1]):
            raise LossartError(f"{path}: window {meta.window} is empty")
        if version >= 2 and meta.kind == CURVE.name and meta.curve is None:
            raise LossartError(f"{path}: a curve grid without 'curve' (kind and bends)")
        return meta

    def differences(self, other: GridMeta) -> list[str]:
        """The SPEC_KEYS settings in which `other` differs, as `key old vs new`."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k} {a[k]} vs {b[k]}" for k in SPEC_KEYS if a[k] != b[k]]

    @property
    def has_coordinates(self) -> bool:
        """Written by a lossart whose frame files carry their plane coordinates."""
        return self.format_version >= 2


def _criterion(d: dict) -> dict[str, Any] | None:
    """grid.json's adaptive criterion; an adaptive grid without one judged log10 loss."""
    if d.get("adaptive") is None:
        return None
    record = d.get("adaptive_criterion")
    if record is None:
        return {"kind": "log10"}
    if not isinstance(record, dict) or "kind" not in record:
        raise ValueError(f"adaptive_criterion {record!r} is not a mapping with a kind")
    return dict(record)


def _pair(v: Any, kind: type) -> tuple:
    if len(v) != 2:
        raise ValueError(f"expected 2 values, got {len(v)}")
    return kind(v[0]), kind(v[1])


def _index(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"frame index {v!r} is not an integer")
    return v


def _curve(v: Any) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"kind": str(v["kind"]), "bends": int(v["bends"])}


def read_grid_meta(grids: Path) -> GridMeta | None:
    """grid.json of a grids folder, checked; None where there is none yet."""
    path = grid_json_path(grids)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LossartError(f"{path}: not valid JSON ({exc})") from None
    return GridMeta.from_dict(data, path)


def write_grid_meta(grids: Path, meta: GridMeta) -> None:
    write_json(grid_json_path(grids), meta.to_dict())


# ---------------------------------------------------------------- tiles


@dataclass(frozen=True)
class TileLayout:
    """A W×H grid cut into bands of `rows` rows (the last band may be shorter)."""

    width: int
    height: int
    rows: int

    @property
    def count(self) -> int:
        return -(-self.height // self.rows)

    def rows_of(self, tile: int) -> tuple[int, int]:
        start = tile * self.rows
        return start, min(self.height, start + self.rows)

    def points_of(self, tile: int) -> int:
        start, stop = self.rows_of(tile)
        return (stop - start) * self.width


def default_tile_rows(width: int, height: int, target_points: int = 256) -> int:
    """Rows per tile so that a tile holds about `target_points` points (at least one row).

    Small enough that an interruption loses little, large enough that a GPU launch block fits.
    """
    return max(1, min(height, -(-target_points // width)))


def write_tile(path: Path, loss: np.ndarray, accuracy: np.ndarray, rows: tuple[int, int]) -> None:
    np_savez(
        path,
        loss=np.asarray(loss, dtype=np.float32),
        accuracy=np.asarray(accuracy, dtype=np.float32),
        rows=np.asarray(rows, dtype=np.int64),
    )


def read_tile(path: Path, layout: TileLayout, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """A tile's loss and accuracy bands, checked against the layout."""
    start, stop = layout.rows_of(tile)
    shape = (stop - start, layout.width)
    try:
        with np.load(path) as z:
            loss, acc, rows = z["loss"], z["accuracy"], tuple(int(r) for r in z["rows"])
    except (OSError, KeyError, ValueError) as exc:
        raise LossartError(
            f"{path}: unreadable grid tile ({type(exc).__name__}); delete it and rerun"
        ) from None
    if loss.shape != shape or acc.shape != shape or rows != (start, stop):
        raise LossartError(
            f"{path}: tile holds rows {rows} shape {loss.shape}, "
            f"expected rows {(start, stop)} shape {shape}"
        )
    return loss, acc


def write_unit(path: Path, points: np.ndarray, loss: np.ndarray, accuracy: np.ndarray) -> None:
    """One adaptive unit: the flat indices (row * W + col) of its points and their values."""
    np_savez(
        path,
        points=np.asarray(points, dtype=np.int64),
        loss=np.asarray(loss, dtype=np.float32),
        accuracy=np.asarray(accuracy, dtype=np.float32),
    )


def read_units(
    grids: Path, index: int, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every adaptive unit of a frame on disk, on the [H, W] lattice: (loss, accuracy, evaluated).

    Cells no unit holds are NaN and not evaluated.
    """
    loss = np.full((height, width), np.nan, dtype=np.float32)
    acc = np.full((height, width), np.nan, dtype=np.float32)
    done = np.zeros((height, width), dtype=bool)
    for path in sorted(tile_dir(grids, index).glob("level_*_unit_*.npz")):
        try:
            with np.load(path) as z:
                pts, lv, av = z["points"], z["loss"], z["accuracy"]
        except (OSError, KeyError, ValueError) as exc:
            raise LossartError(
                f"{path}: unreadable adaptive unit ({type(exc).__name__}); delete it and rerun"
            ) from None
        if not (pts.ndim == 1 and lv.shape == pts.shape and av.shape == pts.shape) or (
            pts.size and (pts.min() < 0 or pts.max() >= width * height)
        ):
            raise LossartError(
                f"{path}: adaptive unit does not fit a {width}x{height} grid; delete it and rerun"
            )
        r, c = np.divmod(pts, width)
        loss[r, c], acc[r, c], done[r, c] = lv, av, True
    return loss, acc, done


def clear_grids(grids: Path) -> None:
    """Remove grid results (not locks), for --overwrite."""
    shutil.rmtree(grids / "tiles", ignore_errors=True)
    for p in grids.glob("frame_*.npz"):
        p.unlink(missing_ok=True)
    grid_json_path(grids).unlink(missing_ok=True)


def sweep_partial_tiles(grids: Path) -> int:
    """Delete temporary files of tiles whose writer was killed mid-write (kill -9 leaves them).

    Only safe under the whole-run lock: shards may be writing their own temporaries right now.
    """
    n = 0
    for p in grids.glob("tiles/*/.*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


# ---------------------------------------------------------------- frame files


@dataclass(frozen=True)
class FrameMeta:
    """One frame in its grid's plane coordinates, and when it was recorded."""

    index: int
    step: int
    epoch: float
    train_loss: float | None  # None for a plane of three optima
    control_points: np.ndarray  # float64 [k+2, 2] (w1, bends, w2); [0, 2] for plane3;
    #                             [N, 2] for a trajectory: every snapshot's projection, in order
    points: dict[str, tuple[float, float]]  # named points: w1, w2 (and w3 for plane3)
    #: a trajectory's snapshots in order: {"index", "step", "epoch", "train_loss"} each
    snapshots: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "index": self.index,
            "step": self.step,
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "points": {k: [float(v[0]), float(v[1])] for k, v in self.points.items()},
        }
        if self.snapshots:
            body["snapshots"] = [dict(r) for r in self.snapshots]
        return json.dumps(body)

    @classmethod
    def from_arrays(cls, text: str, control_points: np.ndarray) -> FrameMeta:
        d = json.loads(text)
        cp = np.asarray(control_points, dtype=np.float64)
        if cp.ndim != 2 or cp.shape[1] != 2:
            raise ValueError(f"control_points has shape {cp.shape}, expected [n, 2]")
        loss = d["train_loss"]
        return cls(
            index=int(d["index"]),
            step=int(d["step"]),
            epoch=float(d["epoch"]),
            train_loss=None if loss is None else float(loss),
            control_points=cp,
            points={str(k): (float(v[0]), float(v[1])) for k, v in d["points"].items()},
            snapshots=tuple(dict(r) for r in d.get("snapshots") or ()),
        )


@dataclass(frozen=True)
class FrameGrid:
    """One frame's assembled grid: row i <-> ys[i] (ascending), column j <-> xs[j]."""

    index: int
    loss: np.ndarray  # float32 [H, W]
    accuracy: np.ndarray  # float32 [H, W]
    xs: np.ndarray  # float64 [W]
    ys: np.ndarray  # float64 [H]
    meta: FrameMeta | None = None  # None: assembled before frames carried plane coordinates
    evaluated: np.ndarray | None = None  # bool [H, W] of an adaptive grid; None: all evaluated


def write_frame_grid(grids: Path, grid: FrameGrid) -> Path:
    """Write `frame_XXXXX.npz` atomically."""
    arrays: dict[str, np.ndarray] = {
        "loss": np.asarray(grid.loss, np.float32),
        "accuracy": np.asarray(grid.accuracy, np.float32),
        "xs": np.asarray(grid.xs, np.float64),
        "ys": np.asarray(grid.ys, np.float64),
    }
    if grid.meta is not None:
        arrays["control_points"] = np.asarray(grid.meta.control_points, np.float64).reshape(-1, 2)
        arrays["frame"] = np.array(grid.meta.to_json())
    if grid.evaluated is not None:
        arrays["evaluated"] = np.asarray(grid.evaluated, dtype=bool)
    path = frame_grid_path(grids, grid.index)
    np_savez(path, **arrays)
    return path


def assemble_frame(
    grids: Path,
    index: int,
    layout: TileLayout,
    xs: np.ndarray,
    ys: np.ndarray,
    meta: FrameMeta | None = None,
) -> Path | None:
    """Write `frame_XXXXX.npz` from its tiles if all are present; None if some are missing."""
    paths = [tile_path(grids, index, k) for k in range(layout.count)]
    if not all(p.is_file() for p in paths):
        return None
    loss = np.empty((layout.height, layout.width), dtype=np.float32)
    acc = np.empty((layout.height, layout.width), dtype=np.float32)
    for k, p in enumerate(paths):
        start, stop = layout.rows_of(k)
        loss[start:stop], acc[start:stop] = read_tile(p, layout, k)
    return write_frame_grid(grids, FrameGrid(index, loss, acc, xs, ys, meta))


def add_frame_meta(grids: Path, index: int, meta: FrameMeta) -> Path:
    """Rewrite an assembled frame file with its plane coordinates (the loss is kept as is)."""
    return write_frame_grid(grids, replace(read_frame_grid(grids, index), meta=meta))


def frame_has_meta(grids: Path, index: int) -> bool:
    """Whether an assembled frame file carries its plane coordinates (reads no arrays)."""
    try:
        with np.load(frame_grid_path(grids, index)) as z:
            return "frame" in z.files and "control_points" in z.files
    except (OSError, ValueError):
        return False


def read_frame_grid(grids: Path, index: int) -> FrameGrid:
    """The assembled grid of frame `index`, checked; one-line errors name the file."""
    path = frame_grid_path(grids, index)
    if not path.is_file():
        have = frames_with_grids(grids)
        hint = f"frames with grids: {have[:10]}" if have else "no frame has a grid yet"
        raise LossartError(
            f"{path}: grid of frame {index} is missing ({hint}; {rerun_hint(grids)} to finish it)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            loss, acc, xs, ys = z["loss"], z["accuracy"], z["xs"], z["ys"]
            meta = None
            if "frame" in z.files:
                meta = FrameMeta.from_arrays(str(z["frame"]), z["control_points"])
            evaluated = z["evaluated"].astype(bool) if "evaluated" in z.files else None
    except KeyError as exc:
        raise LossartError(
            f"{path}: frame grid lacks array {exc} (needs loss, accuracy, xs, ys)"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise LossartError(f"{path}: not a readable frame grid ({exc})") from None
    for name, array in (("loss", loss), ("accuracy", acc), ("xs", xs), ("ys", ys)):
        if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
            raise LossartError(f"{path}: array {name} has dtype {array.dtype}, expected numbers")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise LossartError(f"{path}: arrays xs/ys hold NaN/inf coordinates, expected finite")
    h, w = len(ys), len(xs)
    if loss.ndim != 2 or loss.shape != (h, w) or acc.shape != (h, w):
        raise LossartError(
            f"{path}: loss has shape {loss.shape}, expected [len(ys), len(xs)] = [{h}, {w}]"
        )
    if evaluated is not None and evaluated.shape != (h, w):
        raise LossartError(f"{path}: evaluated mask has shape {evaluated.shape}, expected [{h}, {w}]")
    if meta is not None and meta.index != index:
        raise LossartError(f"{path}: holds frame {meta.index}, expected frame {index}")
    return FrameGrid(index, loss, acc, xs, ys, meta, evaluated)


def load_frame_grid(run: Run, index: int) -> FrameGrid:
    """The assembled grid of frame `index` of a run (what later stages read)."""
    return read_frame_grid(run.grids, index)


def frames_with_grids(grids: Path) -> list[int]:
    """Indices of the frames whose grid is assembled, ascending."""
    out = []
    for p in grids.glob("frame_*.npz"):
        m = re.fullmatch(r"frame_(\d+)\.npz", p.name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def list_frame_grids(run: Run) -> list[int]:
    """Indices of the run's frames whose grid is assembled, ascending."""
    return frames_with_grids(run.grids)
