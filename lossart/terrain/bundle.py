"""Write and read the terrain bundle (docs/bundle.md): the one contract with the Blender add-on.

The writer streams frames: each frame's float32 heights go to `heights/frame_XXXXX.npy` as they
arrive (only a running min/max is kept), then a second pass quantizes every frame over the one
shared range into 16-bit PNGs, and `manifest.json` is written last. Every file is written
atomically and an old manifest is removed first, so a bundle is valid only when complete.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lossart import __version__
from lossart.atomic import atomic_path, np_save
from lossart.errors import LossartError
from lossart.progress import progress
from lossart.runs import now_iso
from lossart.terrain.heightfield import (
    TerrainConfig,
    dequantize16,
    height_range,
    quantize16,
    sample_bilinear,
)
from lossart.terrain.path import curve_polyline

FORMAT = "lossart-terrain"
SCHEMA_VERSION = 1
PNG_BITS = 16
#: zlib level for the 16-bit PNGs: 1 is several times faster than 6 and smooth heights still
#: compress well (the PNG is lossless at any level).
PNG_COMPRESS_LEVEL = 1
HEIGHTS_DIR = "heights"


@dataclass
class NamedPoint:
    """An endpoint or optimum in the frame's plane, with the loss the grid gives there."""

    name: str
    xy: tuple[float, float]
    loss: float


@dataclass
class BundleFrame:
    """One frame for the writer: final heights plus what the manifest says about the frame.

    `control_points` is [k+2, 2] (w1 first, w2 last) for a curve, or [0, 2] for a plane of
    three optima; the writer derives the path and bends from it and samples heights for them.
    """

    index: int
    step: int
    epoch: float
    train_loss: float | None
    heights: np.ndarray
    nonfinite: int
    control_points: np.ndarray
    points: list[NamedPoint] = field(default_factory=list)


@dataclass
class BundleSpec:
    """Everything global in the manifest apart from the frames and the height range."""

    kind: str  # "curve" | "plane3"
    curve: dict | None  # {"kind": "bezier"|"polychain", "bends": k}; None for plane3
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    source_shape: tuple[int, int]  # (H, W) of the loss grids before upsampling
    config: TerrainConfig
    loss_cap: float  # the resolved cap (config.loss_cap or the quantile's value)
    source_run: str | None = None


def frame_name(index: int) -> str:
    return f"frame_{index:05d}"


def _num(v: float) -> float | None:
    """A JSON number with 7 significant digits (float32's precision); None for NaN/inf."""
    v = float(v)
    return float(f"{v:.7g}") if math.isfinite(v) else None


def _round7(a: np.ndarray) -> np.ndarray:
    """Coordinates as the manifest stores them, so heights are sampled where readers look."""
    a = np.asarray(a, dtype=np.float64)
    return np.array([float(f"{v:.7g}") for v in a.ravel()]).reshape(a.shape)


def _nums(a: np.ndarray) -> list:
    return [[_num(v) for v in row] for row in np.asarray(a, dtype=np.float64)]


def write_png16(path: Path, values: np.ndarray) -> None:
    """A 16-bit grayscale PNG, written atomically; row 0 of the array is the image's top row."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(values, dtype=np.uint16))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def read_png16(path: Path) -> np.ndarray:
    """The uint16 values of a 16-bit grayscale PNG; LossartError for any other PNG."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            mode = image.mode
            values = np.asarray(image)
    except (OSError, ValueError) as exc:
        raise LossartError(f"{path}: not a readable PNG ({exc})") from None
    if mode not in ("I;16", "I;16B", "I;16L") or values.ndim != 2:
        raise LossartError(f"{path}: expected a 16-bit grayscale PNG, got mode {mode}")
    return values.astype(np.uint16)


def _frame_entry(frame: BundleFrame, spec: BundleSpec) -> dict[str, Any]:
    name = frame_name(frame.index)
    z = frame.heights
    xr, yr = spec.x_range, spec.y_range
    cp = np.asarray(frame.control_points, dtype=np.float64).reshape(-1, 2)
    if spec.kind == "curve":
        xy = _round7(curve_polyline(cp, spec.curve["kind"], spec.config.path_samples))
        path = np.column_stack([xy, sample_bilinear(z, xr, yr, xy)])
        bends = cp[1:-1]
    else:
        path = np.zeros((0, 3))
        bends = np.zeros((0, 2))
    points = []
    for p in frame.points:
        pxy = _round7(np.array([p.xy]))
        pz = sample_bilinear(z, xr, yr, pxy)[0]
        points.append(
            {
                "name": p.name,
                "xy": [float(pxy[0, 0]), float(pxy[0, 1])],
                "z": _num(pz),
                "loss": _num(p.loss),
            }
        )
    return {
        "index": int(frame.index),
        "step": int(frame.step),
        "epoch": _num(frame.epoch),
        "train_loss": None if frame.train_loss is None else _num(frame.train_loss),
        "heights_npy": f"{HEIGHTS_DIR}/{name}.npy",
        "heights_png": f"{HEIGHTS_DIR}/{name}.png",
        "nonfinite": int(frame.nonfinite),
        "control_points": _nums(cp),
        "path": _nums(path),
        "points": points,
        "bends": _nums(bends),
    }


def write_bundle(
    root: str | os.PathLike,
    spec: BundleSpec,
    frames: Iterable[BundleFrame],
    total: int | None = None,
) -> dict[str, Any]:
    """Write a bundle from a stream of frames; returns the manifest (also on disk, written last).

    Frames must come in increasing `index` with one heights shape. Files of an older bundle in
    the same folder that this one does not name are removed before the manifest is written.
    """
    root = Path(root)
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        manifest_path.unlink()  # an interrupted rewrite must not look like a valid bundle
    (root / HEIGHTS_DIR).mkdir(parents=True, exist_ok=True)

    entries: list[dict[str, Any]] = []
    shape: tuple[int, int] | None = None
    z_lo, z_hi = math.inf, -math.inf
    bar = progress(total, desc="terrain heights", unit="frame")
    try:
        for frame in frames:
            z = np.asarray(frame.heights, dtype=np.float32)
            if z.ndim != 2:
                raise LossartError(f"frame {frame.index}: heights must be 2-D, got shape {z.shape}")
            if shape is None:
                shape = z.shape
            elif z.shape != shape:
                raise LossartError(
                    f"frame {frame.index}: heights shape {z.shape} differs from frame "
                    f"{entries[0]['index']}'s {shape}"
                )
            if entries and frame.index <= entries[-1]["index"]:
                raise LossartError(
                    f"frame {frame.index}: frames must come in increasing index "
                    f"(after {entries[-1]['index']})"
                )
            if not np.isfinite(z).all():
                raise LossartError(f"frame {frame.index}: heights contain NaN or inf")
            np_save(root / HEIGHTS_DIR / f"{frame_name(frame.index)}.npy", z)
            z_lo, z_hi = min(z_lo, float(z.min())), max(z_hi, float(z.max()))
            entries.append(_frame_entry(frame, spec))
            bar.update(1)
    finally:
        bar.close()
    if not entries:
        raise LossartError(f"{root}: no frames to write")

    z_min, z_max = height_range(z_lo, z_hi)
    for entry in _bar(entries):
        z = np.load(root / entry["heights_npy"])
        write_png16(root / entry["heights_png"], quantize16(z, z_min, z_max))

    keep = {entry["heights_npy"] for entry in entries} | {entry["heights_png"] for entry in entries}
    for old in (root / HEIGHTS_DIR).glob("frame_*"):
        if f"{HEIGHTS_DIR}/{old.name}" not in keep:
            old.unlink()

    cfg = spec.config
    manifest = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "lossart_version": __version__,
        "created": now_iso(),
        "source_run": spec.source_run,
        "kind": spec.kind,
        "curve": spec.curve,
        "grid": {
            "width": int(shape[1]),
            "height": int(shape[0]),
            "x_range": [float(spec.x_range[0]), float(spec.x_range[1])],
            "y_range": [float(spec.y_range[0]), float(spec.y_range[1])],
            "source_width": int(spec.source_shape[1]),
            "source_height": int(spec.source_shape[0]),
        },
        "height": {
            "transform": cfg.transform,
            "loss_floor": float(cfg.loss_floor),
            "loss_cap": float(spec.loss_cap),
            "cap_quantile": None if cfg.loss_cap is not None else cfg.cap_quantile,
            "sigma": float(cfg.sigma),
            "frame_sigma": float(cfg.frame_sigma),
            "upsample": int(cfg.upsample),
            "interpolation": "cubic" if cfg.upsample > 1 else "none",
            "z_min": z_min,
            "z_max": z_max,
            "png_bits": PNG_BITS,
        },
        "path_samples": int(cfg.path_samples) if spec.kind == "curve" else 0,
        "frames": entries,
    }
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(dumps_manifest(manifest))
    return manifest


def _bar(entries: list) -> Iterator[dict]:
    bar = progress(len(entries), desc="terrain png", unit="frame")
    try:
        for entry in entries:
            yield entry
            bar.update(1)
    finally:
        bar.close()


def dumps_manifest(obj: Any, indent: int = 2) -> str:
    """JSON with structure indented and number arrays on one line (paths stay short to read)."""

    def leafy(x: Any) -> bool:
        return isinstance(x, list) and all(
            isinstance(v, (int, float)) or v is None or (isinstance(v, list) and leafy(v))
            for v in x
        )

    def dump(x: Any, level: int) -> str:
        pad, inner = " " * (indent * level), " " * (indent * (level + 1))
        if isinstance(x, dict) and x:
            items = [f"{inner}{json.dumps(k)}: {dump(v, level + 1)}" for k, v in x.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(x, list) and x and not leafy(x):
            return "[\n" + ",\n".join(inner + dump(v, level + 1) for v in x) + "\n" + pad + "]"
        return json.dumps(x, separators=(", ", ": "), allow_nan=False)

    return dump(obj, 0) + "\n"


# ---------------------------------------------------------------- reading


@dataclass
class Bundle:
    """A bundle on disk: its manifest plus loaders for each frame's heights."""

    root: Path
    manifest: dict[str, Any]

    @property
    def frames(self) -> list[dict[str, Any]]:
        return self.manifest["frames"]

    @property
    def grid(self) -> dict[str, Any]:
        return self.manifest["grid"]

    @property
    def height(self) -> dict[str, Any]:
        return self.manifest["height"]

    def heights(self, position: int) -> np.ndarray:
        """Exact float32 heights of the frame at this position in `frames`."""
        return np.load(self.root / self.frames[position]["heights_npy"])

    def png_heights(self, position: int) -> np.ndarray:
        """Heights decoded from the frame's 16-bit PNG (within (z_max-z_min)/65535/2 of exact)."""
        p = read_png16(self.root / self.frames[position]["heights_png"])
        return dequantize16(p, self.height["z_min"], self.height["z_max"])


def load_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The manifest as JSON, with format and schema version checked (newer: refused)."""
    root = Path(root)
    path = root / "manifest.json" if root.is_dir() or not root.name.endswith(".json") else root
    if not path.is_file():
        raise LossartError(f"{path}: no manifest.json (not a terrain bundle, or an unfinished one)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LossartError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise LossartError(f"{path}: not a terrain bundle manifest (format != {FORMAT!r})")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise LossartError(f"{path}: schema_version must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise LossartError(
            f"{path}: schema_version {version} is newer than this lossart knows "
            f"({SCHEMA_VERSION}); upgrade lossart"
        )
    return manifest


def read_bundle(root: str | os.PathLike) -> Bundle:
    """Open a bundle folder (or its manifest.json); refuses other formats and newer schemas."""
    root = Path(root)
    if root.name == "manifest.json":
        root = root.parent
    return Bundle(root=root, manifest=load_manifest(root))
