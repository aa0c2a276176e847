"""The terrain bundle (docs/bundle.md, schema v1): its one reader.

The format's single home, with json and numpy only: `lossart addon build` copies it into the
Blender extension (so the add-on reads bundles in a Blender without lossart) and lossart reads
every bundle through it too (previews, meshes, renders, `lossart validate`). The manifest is
declared once in `manifest.py` and parsed through that declaration here; beside it: `png16`
(the height PNGs); in the terrain stage, which only lossart runs: `bundle_write` (the writer),
`bundle_validate` (the rules between fields and files) and `curve2d` (the path's curve). Every
problem with a bundle is one `BundleError` line naming the file and the field path, so
operators can hand it to `self.report({'ERROR'}, ...)` and the CLI can print it as is.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BundleError
from .kinds import BUNDLE_KINDS
from .manifest import (  # noqa: F401  (the format's constants, importable from the reader)
    DIRECTION_KINDS,
    FORMAT,
    PNG_BITS,
    SCHEMA_VERSION,
    TRANSFORMS,
    FrameEntry,
    Manifest,
    PointEntry,
)
from .png16 import read_png16
from .schema import FieldProblem, Problems, parse_record

KINDS = BUNDLE_KINDS  # the kinds table (kinds.py) says which run kinds write which
#: How high a bundle is drawn: z_min..z_max rises this share of the window's width (x extent),
#: unless the manifest's `height.relief.share` says otherwise (bundles before it had none).
DEFAULT_RELIEF = 0.2
HEIGHTS_DIR = "heights"


@dataclass(frozen=True)
class Frame:
    """One frame of the bundle: its height files (resolved) and the curve drawn on it."""

    index: int
    step: int
    epoch: float
    train_loss: float | None
    heights_npy: Path
    heights_png: Path | None
    nonfinite: int  # source grid points that were NaN/inf (filled with the loss cap)
    path: np.ndarray  # [N, 3] plane x, y, z (may be empty for plane3 bundles)
    points: tuple[PointEntry, ...]  # as declared
    bends: np.ndarray  # [k, 2]
    control_points: np.ndarray  # [k+2, 2]


@dataclass
class Bundle:
    """A checked bundle; heights are read lazily and kept in a small cache."""

    root: Path
    manifest: Manifest  # as declared (manifest.py), type-checked
    z_min: float
    z_max: float
    frames: list[Frame]
    cache_frames: int = 48
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def width(self) -> int:
        return self.manifest.grid.width

    @property
    def height(self) -> int:
        return self.manifest.grid.height

    @property
    def x_range(self) -> tuple[float, float]:
        return self.manifest.grid.x_range

    @property
    def y_range(self) -> tuple[float, float]:
        return self.manifest.grid.y_range

    @property
    def xs(self) -> np.ndarray:
        return np.linspace(self.x_range[0], self.x_range[1], self.width)

    @property
    def ys(self) -> np.ndarray:
        return np.linspace(self.y_range[0], self.y_range[1], self.height)

    def heights(self, i: int) -> np.ndarray:
        """Frame `i`'s heights, float32 [H, W] (row 0 = smallest y), cached."""
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        frame = self.frames[i]
        try:
            arr = np.load(frame.heights_npy, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(f"{frame.heights_npy}: cannot read height file ({exc})") from None
        if arr.shape != (self.height, self.width):
            raise BundleError(
                f"{frame.heights_npy}: heights have shape {arr.shape}, manifest grid says "
                f"({self.height}, {self.width})"
            )
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            arr = np.nan_to_num(arr, nan=self.z_max, posinf=self.z_max, neginf=self.z_min)
        self._cache[i] = arr
        while len(self._cache) > self.cache_frames:
            self._cache.popitem(last=False)
        return arr

    def png_heights(self, i: int) -> np.ndarray:
        """Frame `i`'s heights decoded from its 16-bit PNG (within half a step of `heights(i)`)."""
        png = self.frames[i].heights_png
        if png is None:
            raise BundleError(f"{self.root}: frame {self.frames[i].index} has no heights_png")
        return dequantize16(read_png16(png), self.z_min, self.z_max)

    def state(self, position: float) -> FrameState:
        """Heights, path, points and bends at a fractional frame position (linear in between).

        Fractional positions give smooth slow motion from few frames. Path/point heights are
        resampled from the interpolated heightfield, so the path always lies on the surface. A
        path one point longer in the next frame (a trajectory) grows its last segment in.
        """
        n = len(self.frames)
        p = min(max(float(position), 0.0), n - 1.0)
        i0 = int(math.floor(p))
        a = p - i0
        i1 = min(i0 + 1, n - 1)
        f0, f1 = self.frames[i0], self.frames[i1]
        h = self.heights(i0)
        if a > 1e-6 and i1 != i0:
            h = ((1.0 - a) * h + a * self.heights(i1)).astype(np.float32)
        else:
            a = 0.0
        path_xy = _lerp_points(f0.path[:, :2], f1.path[:, :2], a)
        if a > 0.0 and len(f0.path) and len(f1.path) == len(f0.path) + 1:
            # a path growing by one point per frame (a trajectory): the new segment grows in
            tip = (1 - a) * f0.path[-1, :2] + a * f1.path[-1, :2]
            path_xy = np.vstack([f0.path[:, :2], tip[None]])
        bends = _lerp_points(f0.bends, f1.bends, a)
        names1 = {pt.name: pt for pt in f1.points}
        points = []
        for pt in f0.points:
            other = names1.get(pt.name, pt)
            xy = (1 - a) * np.asarray(pt.xy) + a * np.asarray(other.xy)
            points.append((pt.name, xy))
        pxy = np.array([xy for _, xy in points], dtype=np.float64).reshape(-1, 2)
        return FrameState(
            position=p,
            heights=h,
            path=np.column_stack([path_xy, self.sample(h, path_xy)])
            if len(path_xy)
            else np.zeros((0, 3)),
            point_names=[name for name, _ in points],
            points=np.column_stack([pxy, self.sample(h, pxy)]) if len(pxy) else np.zeros((0, 3)),
            bends=np.column_stack([bends, self.sample(h, bends)])
            if len(bends)
            else np.zeros((0, 3)),
        )

    def sample(self, heights: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Bilinear heights at plane points `xy` [N, 2] (clamped to the grid)."""
        return sample_bilinear(heights, self.x_range, self.y_range, xy)

    @property
    def transform(self) -> str:
        return self.manifest.height.transform

    @property
    def relief(self) -> float:
        """How high z_min..z_max is drawn, as a share of the window's width (`height.relief`)."""
        relief = self.manifest.height.relief
        return DEFAULT_RELIEF if relief is None else relief.share

    def loss_of(self, z) -> np.ndarray:
        """The (smoothed) loss a height stands for: the inverse of `height.transform`."""
        z = np.asarray(z, dtype=np.float64)
        mapping = self.manifest.height.mapping
        if self.transform != "log10-excess" or mapping is None:
            return 10.0**z
        return 10.0**z + mapping.loss_min - mapping.offset

    def height_label(self) -> str:
        """What z is, in words (previews, mesh headers)."""
        if self.transform == "log10-excess":
            return "log10(loss - min + offset)"
        return "log10 loss"


@dataclass
class FrameState:
    """Everything the scene shows at one (fractional) frame position, in plane coordinates."""

    position: float
    heights: np.ndarray
    path: np.ndarray
    point_names: list[str]
    points: np.ndarray
    bends: np.ndarray


def _lerp_points(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    if t == 0.0 or a.shape != b.shape:
        return np.asarray(a, dtype=np.float64)
    return (1 - t) * a + t * b


def manifest_path(path: str | Path) -> Path:
    """Accept the bundle folder, its manifest.json, or a run folder (run.json) holding terrain/."""
    p = Path(path).expanduser()
    if p.is_dir():
        if (p / "manifest.json").is_file():
            return p / "manifest.json"
        if (p / "run.json").is_file() and (p / "terrain" / "manifest.json").is_file():
            return p / "terrain" / "manifest.json"
        raise BundleError(
            f"{p}: no manifest.json here (not a lossart terrain bundle, or an unfinished one)"
        )
    if p.is_file():
        return p
    raise BundleError(f"{p}: no such bundle folder or manifest.json")


def read_manifest(path: str | Path, problems: Problems = None) -> tuple[Path, Manifest]:
    """(manifest.json's path, the manifest parsed through its declaration).

    A file that is no bundle or a newer schema is refused outright. A field that breaks its
    declaration raises one line naming the file and the field path, or, where `problems`
    collects (the validator), is listed there; the manifest then holds None in its place.
    """
    mpath = manifest_path(path)
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{mpath}: not a readable JSON manifest ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise BundleError(f"{mpath}: not a lossart terrain bundle (format != {FORMAT!r})")
    version = m.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{mpath}: schema_version must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise BundleError(
            f"{mpath}: schema_version {version} is newer than this lossart knows "
            f"({SCHEMA_VERSION}); update lossart and its Blender add-on"
        )
    try:
        return mpath, parse_record(Manifest, m, "", problems)
    except FieldProblem as exc:
        raise BundleError(f"{mpath}: {exc}") from None


def load_bundle(path: str | Path) -> Bundle:
    """Open and check a bundle; a `BundleError` (one line) for anything the add-on cannot show."""
    mpath, m = read_manifest(path)
    h = m.height
    if h.z_max < h.z_min:
        raise BundleError(
            f"{mpath}: height.z_min..z_max must be ascending, got {h.z_min}..{h.z_max}"
        )
    if h.transform == "log10-excess" and not (
        h.mapping is not None and (h.mapping.loss_min or 0) > 0 and h.mapping.offset > 0
    ):
        raise BundleError(
            f"{mpath}: transform 'log10-excess' needs height.mapping with a positive "
            "loss_min and offset"
        )
    frames = [_frame(f, k, mpath, m) for k, f in enumerate(m.frames)]
    z_max = h.z_max if h.z_max > h.z_min else h.z_min + 1.0
    return Bundle(root=mpath.parent, manifest=m, z_min=h.z_min, z_max=z_max, frames=frames)


def inside_bundle(root: Path, rel: str) -> Path | None:
    """`rel` (a manifest's relative path) under `root`, or None where it points outside."""
    p = (root / rel).resolve()
    return p if root.resolve() in p.parents and not Path(rel).is_absolute() else None


def _frame(f: FrameEntry, k: int, mpath: Path, m: Manifest) -> Frame:
    root, files = mpath.parent, []
    for key in ("heights_npy", "heights_png"):
        p = inside_bundle(root, getattr(f, key))
        if p is None:
            raise BundleError(
                f"{mpath}: frames[{k}].{key} {getattr(f, key)!r} points outside the bundle folder"
            )
        files.append(p)
    npy, png = files
    if not npy.is_file():
        raise BundleError(f"{npy}: height file of frame {k} is missing")
    try:  # header only: cheap even for hundreds of frames
        shape = np.load(npy, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as exc:
        raise BundleError(f"{npy}: not a readable .npy height file ({exc})") from None
    if shape != (m.grid.height, m.grid.width):
        raise BundleError(
            f"{npy}: heights have shape {shape}, the manifest grid says "
            f"({m.grid.height}, {m.grid.width})"
        )
    return Frame(
        index=f.index,
        step=f.step,
        epoch=f.epoch,
        train_loss=f.train_loss,
        heights_npy=npy,
        heights_png=png,
        nonfinite=f.nonfinite,
        path=f.path,
        points=f.points,
        bends=f.bends,
        control_points=f.control_points,
    )


# ---------------------------------------------------------------- heights in plane coordinates


def sample_bilinear(
    field: np.ndarray,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    xy: np.ndarray,
) -> np.ndarray:
    """Bilinear values of `field` [H, W] at plane points `xy` [N, 2] (row 0 = smallest y).

    How every bundle `z` of a path sample or named point is defined (docs/bundle.md); points
    outside the window take the value at the nearest edge (clamped).
    """
    field = np.asarray(field, dtype=np.float64)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    h, w = field.shape
    (x0, x1), (y0, y1) = x_range, y_range
    fj = (xy[:, 0] - x0) / (x1 - x0) * (w - 1) if w > 1 else np.zeros(len(xy))
    fi = (xy[:, 1] - y0) / (y1 - y0) * (h - 1) if h > 1 else np.zeros(len(xy))
    fj = np.clip(fj, 0, w - 1)
    fi = np.clip(fi, 0, h - 1)
    j0 = np.minimum(np.floor(fj).astype(np.int64), max(w - 2, 0))
    i0 = np.minimum(np.floor(fi).astype(np.int64), max(h - 2, 0))
    j1 = np.minimum(j0 + 1, w - 1)
    i1 = np.minimum(i0 + 1, h - 1)
    tj = fj - j0
    ti = fi - i0
    top = field[i0, j0] * (1 - tj) + field[i0, j1] * tj
    bottom = field[i1, j0] * (1 - tj) + field[i1, j1] * tj
    return top * (1 - ti) + bottom * ti


def quantize16(z: np.ndarray, z_min: float, z_max: float) -> np.ndarray:
    """Heights to PNG values over [z_min, z_max]: p = round((z - z_min)/(z_max - z_min) * 65535)."""
    scale = 65535.0 / (z_max - z_min)
    p = np.rint((np.asarray(z, dtype=np.float64) - z_min) * scale)
    return np.clip(p, 0, 65535).astype(np.uint16)


def dequantize16(p: np.ndarray, z_min: float, z_max: float) -> np.ndarray:
    """PNG values back to heights: z = z_min + p/65535*(z_max - z_min)."""
    return (z_min + np.asarray(p, dtype=np.float64) / 65535.0 * (z_max - z_min)).astype(np.float32)
