"""The terrain bundle (docs/bundle.md, schema v1): its constants and its one reader.

The format's single home, with json and numpy only: `lossart addon build` copies it into the
Blender extension (so the add-on reads bundles in a Blender without lossart) and lossart reads
every bundle through it too (previews, meshes, renders, `lossart validate`). Beside it: `png16`
(the height PNGs); in the terrain stage, which only lossart runs: `bundle_write` (the writer),
`bundle_validate` (every rule of the format) and `curve2d` (the path's curve). Every problem with a bundle is one `BundleError` line naming the file and
what was expected, so operators can hand it to `self.report({'ERROR'}, ...)` and the CLI can
print it as is.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BundleError
from .kinds import BUNDLE_KINDS, DEFAULT_BUNDLE_KIND
from .png16 import read_png16

FORMAT = "lossart-terrain"
SCHEMA_VERSION = 1
KINDS = BUNDLE_KINDS  # the kinds table (kinds.py) says which run kinds write which
#: `directions.kind` of a plane around one network (optional manifest key)
DIRECTION_KINDS = ("random", "hessian", "hessian-min")
TRANSFORMS = ("log10-excess", "log10")  # how a loss became a height (docs/bundle.md)
#: How high a bundle is drawn: z_min..z_max rises this share of the window's width (x extent),
#: unless the manifest's `height.relief.share` says otherwise (bundles before it had none).
DEFAULT_RELIEF = 0.2
PNG_BITS = 16
HEIGHTS_DIR = "heights"


@dataclass(frozen=True)
class Point:
    name: str
    xy: tuple[float, float]
    z: float
    loss: float | None


@dataclass(frozen=True)
class Frame:
    """One frame of the bundle: where its heights live and the curve drawn on it."""

    index: int
    step: int | None
    epoch: float | None
    train_loss: float | None
    heights_npy: Path
    heights_png: Path | None
    nonfinite: int  # source grid points that were NaN/inf (filled with the loss cap)
    path: np.ndarray  # [N, 3] plane x, y, z (may be empty for plane3 bundles)
    points: tuple[Point, ...]
    bends: np.ndarray  # [k, 2]
    control_points: np.ndarray  # [k+2, 2]


@dataclass
class Bundle:
    """A checked bundle; heights are read lazily and kept in a small cache."""

    root: Path
    manifest: dict
    kind: str
    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    z_min: float
    z_max: float
    frames: list[Frame]
    cache_frames: int = 48
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)

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
        return str(self.manifest["height"].get("transform", "log10"))

    @property
    def relief(self) -> float:
        """How high z_min..z_max is drawn, as a share of the window's width (`height.relief`)."""
        share = (self.manifest["height"].get("relief") or {}).get("share")
        return float(share) if _positive(share) else DEFAULT_RELIEF

    def loss_of(self, z) -> np.ndarray:
        """The (smoothed) loss a height stands for: the inverse of `height.transform`."""
        z = np.asarray(z, dtype=np.float64)
        if self.transform != "log10-excess":
            return 10.0**z
        mapping = self.manifest["height"].get("mapping") or {}
        return 10.0**z + float(mapping["loss_min"]) - float(mapping["offset"])

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


def read_manifest(path: str | Path) -> tuple[Path, dict]:
    """(manifest.json's path, its JSON) with format and schema version checked; newer: refused."""
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
    return mpath, m


def load_bundle(path: str | Path) -> Bundle:
    """Open and check a bundle; a `BundleError` (one line) for anything the add-on cannot show."""
    mpath, m = read_manifest(path)
    root = mpath.parent
    grid = _need(m, "grid", dict, mpath)
    width = _need(grid, "width", int, mpath, "grid.width")
    height = _need(grid, "height", int, mpath, "grid.height")
    if width < 2 or height < 2:
        raise BundleError(f"{mpath}: grid must be at least 2x2, got {width}x{height}")
    x_range = _range(grid.get("x_range"), mpath, "grid.x_range")
    y_range = _range(grid.get("y_range"), mpath, "grid.y_range")
    hinfo = _need(m, "height", dict, mpath)
    z_min = float(_need(hinfo, "z_min", (int, float), mpath, "height.z_min"))
    z_max = float(_need(hinfo, "z_max", (int, float), mpath, "height.z_max"))
    if not (math.isfinite(z_min) and math.isfinite(z_max)) or z_max < z_min:
        raise BundleError(
            f"{mpath}: height.z_min..z_max must be finite and ascending, got {z_min}..{z_max}"
        )
    if z_max == z_min:
        z_max = z_min + 1.0
    if hinfo.get("transform") == "log10-excess":
        mapping = hinfo.get("mapping")
        if not (
            isinstance(mapping, dict)
            and _positive(mapping.get("loss_min"))
            and _positive(mapping.get("offset"))
        ):
            raise BundleError(
                f"{mpath}: transform 'log10-excess' needs height.mapping with a positive "
                "loss_min and offset"
            )
    raw_frames = _need(m, "frames", list, mpath)
    if not raw_frames:
        raise BundleError(f"{mpath}: the bundle has no frames")
    frames = [_frame(f, k, root, mpath, width, height) for k, f in enumerate(raw_frames)]
    return Bundle(
        root=root,
        manifest=m,
        kind=str(m.get("kind", DEFAULT_BUNDLE_KIND)),
        width=width,
        height=height,
        x_range=x_range,
        y_range=y_range,
        z_min=z_min,
        z_max=z_max,
        frames=frames,
    )


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _need(d: dict, key: str, types, mpath: Path, label: str | None = None):
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, types):
        raise BundleError(f"{mpath}: missing or malformed '{label or key}'")
    return value


def _range(value, mpath: Path, label: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise BundleError(f"{mpath}: '{label}' must be two numbers [lo, hi]") from None
    if not (math.isfinite(a) and math.isfinite(b) and b > a):
        raise BundleError(f"{mpath}: '{label}' must be finite and ascending, got [{a}, {b}]")
    return a, b


def _inside(root: Path, rel: str, mpath: Path, label: str) -> Path:
    p = (root / rel).resolve()
    if root.resolve() not in p.parents:
        raise BundleError(f"{mpath}: {label} {rel!r} points outside the bundle folder")
    return p


def _array(value, cols: int, mpath: Path, label: str) -> np.ndarray:
    if value is None:
        return np.zeros((0, cols))
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BundleError(
            f"{mpath}: '{label}' must be a list of [{'x, y, z' if cols == 3 else 'x, y'}]"
        ) from None
    if arr.size == 0:
        return np.zeros((0, cols))
    if arr.ndim != 2 or arr.shape[1] < min(cols, 2) or not np.all(np.isfinite(arr)):
        raise BundleError(
            f"{mpath}: '{label}' must be a list of finite [x, y{', z' if cols == 3 else ''}] rows"
        )
    if arr.shape[1] < cols:
        arr = np.column_stack([arr, np.zeros((len(arr), cols - arr.shape[1]))])
    return arr[:, :cols]


def _frame_number(f: dict, key: str, k: int, mpath: Path, integer: bool = False, default=None):
    """A frame's number field (null allowed): captions and the timeline format them later."""
    value = f.get(key, default)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "a whole number" if integer else "a number"
        raise BundleError(f"{mpath}: frames[{k}].{key} is {value!r}, expected {what} or null")
    return value


def _frame(f, k: int, root: Path, mpath: Path, width: int, height: int) -> Frame:
    if not isinstance(f, dict):
        raise BundleError(f"{mpath}: frames[{k}] must be an object")
    rel = f.get("heights_npy")
    if not isinstance(rel, str):
        raise BundleError(f"{mpath}: frames[{k}].heights_npy is missing")
    npy = _inside(root, rel, mpath, f"frames[{k}].heights_npy")
    if not npy.is_file():
        raise BundleError(f"{npy}: height file of frame {k} is missing")
    try:  # header only: cheap even for hundreds of frames
        shape = np.load(npy, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as exc:
        raise BundleError(f"{npy}: not a readable .npy height file ({exc})") from None
    if shape != (height, width):
        raise BundleError(
            f"{npy}: heights have shape {shape}, the manifest grid says ({height}, {width})"
        )
    png_rel = f.get("heights_png")
    png = (
        _inside(root, png_rel, mpath, f"frames[{k}].heights_png")
        if isinstance(png_rel, str)
        else None
    )
    nonfinite = f.get("nonfinite", 0)
    nonfinite = nonfinite if isinstance(nonfinite, int) and not isinstance(nonfinite, bool) else 0
    points = []
    for q, pt in enumerate(f.get("points") or []):
        try:
            points.append(
                Point(
                    str(pt["name"]),
                    (float(pt["xy"][0]), float(pt["xy"][1])),
                    float(pt.get("z", 0.0)),
                    None if pt.get("loss") is None else float(pt["loss"]),
                )
            )
        except (KeyError, TypeError, ValueError, IndexError):
            raise BundleError(
                f"{mpath}: frames[{k}].points[{q}] needs a name and xy [x, y]"
            ) from None
    return Frame(
        index=_frame_number(f, "index", k, mpath, integer=True, default=k),
        step=_frame_number(f, "step", k, mpath, integer=True),
        epoch=_frame_number(f, "epoch", k, mpath),
        train_loss=_frame_number(f, "train_loss", k, mpath),
        heights_npy=npy,
        heights_png=png,
        nonfinite=nonfinite,
        path=_array(f.get("path"), 3, mpath, f"frames[{k}].path"),
        points=tuple(points),
        bends=_array(f.get("bends"), 2, mpath, f"frames[{k}].bends"),
        control_points=_array(f.get("control_points"), 2, mpath, f"frames[{k}].control_points"),
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
