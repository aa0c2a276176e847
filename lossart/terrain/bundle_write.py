"""Write the terrain bundle (docs/bundle.md): the writer `lossart terrain` uses, numpy + json only.

The writer streams frames: each frame's float32 heights go to `heights/frame_XXXXX.npy` as they
arrive (only a running min/max is kept), then a second pass quantizes every frame over the one
shared range into 16-bit PNGs, and `manifest.json` is written last. The new bundle is built in a
sibling staging folder and swapped in only when complete (`swap.swap_in`), so a failed or
killed rebuild leaves the old bundle as it was; the next build sweeps what a crash left.

It writes what the reader (`lossart.format.bundle`, the format's one home) reads; Blender never
writes bundles, so it stays out of the extension zip.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import lossart
from lossart.atomic import atomic_path
from lossart.format.bundle import (
    DEFAULT_RELIEF,
    FORMAT,
    HEIGHTS_DIR,
    KINDS,
    PNG_BITS,
    SCHEMA_VERSION,
    BundleError,
    quantize16,
    sample_bilinear,
)
from lossart.format.kinds import AS_RECORDED, SAMPLED, bundle_row
from lossart.format.manifest import (
    CurveInfo,
    Directions,
    FrameEntry,
    GridInfo,
    HeightInfo,
    Manifest,
    MappingInfo,
    PointEntry,
    Relief,
)
from lossart.format.png16 import write_png16
from lossart.format.schema import FieldProblem, parse_record, to_json
from lossart.swap import staging_dir, swap_in, sweep
from lossart.terrain.curve2d import curve_polyline

#: What `lossart_version` records: the release this writer ships in (the add-on's manifest
#: carries the same version; tests/test_addon_package.py keeps them equal).
WRITER_VERSION = lossart.__version__


class HeightConfig(Protocol):
    """How heights were made, as the manifest's `height` section records it (lossart's
    `TerrainConfig` is one). A config without `relief` (a share of the window's width) is
    drawn at DEFAULT_RELIEF."""

    transform: str
    loss_floor: float
    loss_cap: float | None
    cap_quantile: float | None
    sigma: float
    frame_sigma: float
    upsample: int
    path_samples: int


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...
    def close(self) -> Any: ...


#: `progress(total, desc=..., unit=...)` -> a bar with update/close (lossart.progress.progress).
ProgressFactory = Callable[..., Progress]


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _no_progress(total: int | None = None, desc: str = "", unit: str = "it") -> _NoBar:
    return _NoBar()


@dataclass
class NamedPoint:
    """An endpoint or optimum in the frame's plane, with the loss the grid gives there."""

    name: str
    xy: tuple[float, float]
    loss: float


@dataclass
class BundleFrame:
    """One frame for the writer: final heights plus what the manifest says about the frame.

    `control_points` is [k+2, 2] (w1 first, w2 last) for a curve, [0, 2] for a plane of three
    optima, or the [n, 2] points of a trajectory (its path as it is); the writer derives the path
    and bends from it and samples heights for them.
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

    kind: str  # a bundle kind (lossart.format.kinds: curve, plane3, trajectory)
    curve: dict | None  # {"kind": "bezier"|"polychain", "bends": k}; None for plane3, trajectory
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    source_shape: tuple[int, int]  # (H, W) of the loss grids before upsampling
    config: HeightConfig
    loss_cap: float  # the resolved cap (config.loss_cap or the quantile's value)
    source_run: str | None = None
    loss_min: float | None = None  # the run's lowest loss (clipped), the bottom of the mapping
    offset: float = 0.0  # log10-excess: z = log10(loss - loss_min + offset)
    dtype: str | None = None  # the grids' evaluation precision (grid.json's); None: not known
    directions: dict | None = None  # a plane around one network: its axes (docs/bundle.md)


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


def _np_save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def height_range(z_min: float, z_max: float) -> tuple[float, float]:
    """The manifest's range: a flat terrain gets a small non-empty range so quantizing works."""
    if not (math.isfinite(z_min) and math.isfinite(z_max)):
        raise BundleError(f"heights: range [{z_min}, {z_max}] is not finite")
    if z_max <= z_min:
        pad = max(1e-6, abs(z_min) * 1e-6)
        return float(z_min - pad), float(z_max + pad)
    return float(z_min), float(z_max)


def _path_kind(kind: str) -> str:
    """How a bundle of `kind` draws its path (the kinds table); a BundleError for unknown kinds."""
    row = bundle_row(kind)
    if row is None:
        raise BundleError(f"bundle kind {kind!r}: expected one of {KINDS}")
    return row.path


def _frame_entry(frame: BundleFrame, spec: BundleSpec) -> FrameEntry:
    name = frame_name(frame.index)
    z = frame.heights
    xr, yr = spec.x_range, spec.y_range
    cp = np.asarray(frame.control_points, dtype=np.float64).reshape(-1, 2)
    path_kind = _path_kind(spec.kind)
    if path_kind == SAMPLED:
        xy = _round7(curve_polyline(cp, spec.curve["kind"], spec.config.path_samples))
        path = np.column_stack([xy, sample_bilinear(z, xr, yr, xy)])
        bends = cp[1:-1]
    elif path_kind == AS_RECORDED:  # a trajectory: the path is the projected snapshots themselves
        cp = _round7(cp)
        path = np.column_stack([cp, sample_bilinear(z, xr, yr, cp)])
        bends = np.zeros((0, 2))
    else:
        path = np.zeros((0, 3))
        bends = np.zeros((0, 2))
    points = []
    for p in frame.points:
        pxy = _round7(np.array([p.xy]))
        pz = sample_bilinear(z, xr, yr, pxy)[0]
        xy = (float(pxy[0, 0]), float(pxy[0, 1]))
        points.append(PointEntry(p.name, xy, _num(pz), _num(p.loss)))
    return FrameEntry(
        index=int(frame.index),
        step=int(frame.step),
        epoch=_num(frame.epoch),
        train_loss=None if frame.train_loss is None else _num(frame.train_loss),
        heights_npy=f"{HEIGHTS_DIR}/{name}.npy",
        heights_png=f"{HEIGHTS_DIR}/{name}.png",
        nonfinite=int(frame.nonfinite),
        control_points=_round7(cp),
        path=_round7(path),
        points=tuple(points),
        bends=_round7(bends),
    )


def write_bundle(
    root: str | os.PathLike,
    spec: BundleSpec,
    frames: Iterable[BundleFrame],
    total: int | None = None,
    *,
    progress: ProgressFactory | None = None,
    lossart_version: str = WRITER_VERSION,
) -> dict[str, Any]:
    """Write a bundle from a stream of frames; returns the manifest (also on disk, written last).

    Frames must come in increasing `index` with one heights shape. The bundle is built beside
    `root` and replaces the one there (files and all) only once complete.
    `progress` makes the bars (`lossart.progress.progress`); none without it.
    """
    progress = progress or _no_progress
    if spec.config.transform == "log10-excess" and not (
        spec.loss_min is not None and spec.loss_min > 0 and spec.offset > 0
    ):
        raise BundleError(
            f"{root}: transform 'log10-excess' needs the run's lowest loss and the offset "
            f"(BundleSpec.loss_min, .offset), got {spec.loss_min} and {spec.offset}"
        )
    root = Path(root)
    _check_replaceable(root)
    sweep(root, complete=lambda p: (p / "manifest.json").is_file())
    staging = staging_dir(root)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        manifest = _write_into(staging, spec, frames, total, progress, lossart_version)
        swap_in(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _check_replaceable(root: Path) -> None:
    """Only a bundle (or an empty folder) is replaced: never a folder of other files."""
    if root.exists() and not root.is_dir():
        raise BundleError(f"{root}: exists and is not a folder (a bundle is a folder)")
    if root.is_dir() and any(root.iterdir()):
        if not ((root / "manifest.json").is_file() or (root / HEIGHTS_DIR).is_dir()):
            raise BundleError(
                f"{root}: a folder of other files, not a terrain bundle; refusing to replace "
                f"it (choose a new or empty folder)"
            )


def _write_into(
    root: Path,
    spec: BundleSpec,
    frames: Iterable[BundleFrame],
    total: int | None,
    progress: ProgressFactory,
    lossart_version: str,
) -> dict[str, Any]:
    """Write the whole bundle into the (new) folder `root`, manifest last."""
    manifest_path = root / "manifest.json"
    (root / HEIGHTS_DIR).mkdir(parents=True, exist_ok=True)

    entries: list[FrameEntry] = []
    shape: tuple[int, int] | None = None
    z_lo, z_hi = math.inf, -math.inf
    bar = progress(total, desc="terrain heights", unit="frame")
    try:
        for frame in frames:
            z = np.asarray(frame.heights, dtype=np.float32)
            if z.ndim != 2:
                raise BundleError(f"frame {frame.index}: heights must be 2-D, got shape {z.shape}")
            if shape is None:
                shape = z.shape
            elif z.shape != shape:
                raise BundleError(
                    f"frame {frame.index}: heights shape {z.shape} differs from frame "
                    f"{entries[0].index}'s {shape}"
                )
            if entries and frame.index <= entries[-1].index:
                raise BundleError(
                    f"frame {frame.index}: frames must come in increasing index "
                    f"(after {entries[-1].index})"
                )
            if not np.isfinite(z).all():
                raise BundleError(f"frame {frame.index}: heights contain NaN or inf")
            _np_save(root / HEIGHTS_DIR / f"{frame_name(frame.index)}.npy", z)
            z_lo, z_hi = min(z_lo, float(z.min())), max(z_hi, float(z.max()))
            entries.append(_frame_entry(frame, spec))
            bar.update(1)
    finally:
        bar.close()
    if not entries:
        raise BundleError(f"{root}: no frames to write")

    z_min, z_max = height_range(z_lo, z_hi)
    for entry in _bar(entries, progress):
        z = np.load(root / entry.heights_npy)
        write_png16(root / entry.heights_png, quantize16(z, z_min, z_max))

    manifest = to_json(_manifest(spec, shape, z_min, z_max, entries, lossart_version))
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(dumps_manifest(manifest))
    return manifest


def _manifest(
    spec: BundleSpec,
    shape: tuple[int, int],
    z_min: float,
    z_max: float,
    entries: list[FrameEntry],
    lossart_version: str,
) -> Manifest:
    """The declared manifest (lossart.format.manifest) of what was written."""
    cfg = spec.config
    relief = float(getattr(cfg, "relief", DEFAULT_RELIEF))
    width = float(spec.x_range[1]) - float(spec.x_range[0])
    directions = None
    if spec.directions is not None:  # the run's own record, checked against the declaration
        try:
            directions = parse_record(Directions, spec.directions, "directions")
        except FieldProblem as exc:
            raise BundleError(f"bundle: {exc}") from None
    return Manifest(
        format=FORMAT,
        schema_version=SCHEMA_VERSION,
        lossart_version=lossart_version,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        source_run=spec.source_run,
        kind=spec.kind,
        curve=None if spec.curve is None else CurveInfo(**spec.curve),
        grid=GridInfo(
            width=int(shape[1]),
            height=int(shape[0]),
            x_range=(float(spec.x_range[0]), float(spec.x_range[1])),
            y_range=(float(spec.y_range[0]), float(spec.y_range[1])),
            source_width=int(spec.source_shape[1]),
            source_height=int(spec.source_shape[0]),
            dtype=spec.dtype,
        ),
        height=HeightInfo(
            transform=cfg.transform,
            loss_floor=float(cfg.loss_floor),
            loss_cap=float(spec.loss_cap),
            cap_quantile=None if cfg.loss_cap is not None else cfg.cap_quantile,
            sigma=float(cfg.sigma),
            frame_sigma=float(cfg.frame_sigma),
            upsample=int(cfg.upsample),
            interpolation="cubic" if cfg.upsample > 1 else "none",
            z_min=z_min,
            z_max=z_max,
            png_bits=PNG_BITS,
            mapping=MappingInfo(
                loss_min=None if spec.loss_min is None else float(spec.loss_min),
                offset=float(spec.offset),
            ),
            relief=Relief(share=relief, exaggeration=relief * width / (z_max - z_min)),
        ),
        path_samples=int(cfg.path_samples) if _path_kind(spec.kind) == SAMPLED else 0,
        frames=tuple(entries),
        directions=directions,  # only planes around one network: other bundles stay as they were
    )


def _bar(entries: list, progress: ProgressFactory) -> Iterator[dict]:
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
