"""The terrain bundle's manifest.json (docs/bundle.md, schema v1), declared once.

Each JSON object is a frozen record below; each field's type says what JSON it takes and its
`rule` whether it is required (no default) and which values it allows. The reader
(`bundle.read_manifest`) parses every manifest through these records, the writer
(`lossart.terrain.bundle_write`) builds them, and `lossart validate` checks only the rules
*between* fields on the parsed records. Fields that older bundles lack (mapping, relief, dtype,
directions) default to None. numpy and the standard library only: it ships in the add-on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kinds import BUNDLE_KINDS
from .schema import rule

FORMAT = "lossart-terrain"
SCHEMA_VERSION = 1
#: `curve.kind`: the family of the curve through the control points (lossart.terrain.curve2d)
CURVE_KINDS = ("bezier", "polychain")
#: `directions.kind` of a plane around one network (optional manifest key)
DIRECTION_KINDS = ("random", "hessian", "hessian-min")
TRANSFORMS = ("log10-excess", "log10")  # how a loss became a height (docs/bundle.md)
#: `grid.dtype`: the precision the loss grids were evaluated in
GRID_DTYPES = ("float32", "tf32", "bfloat16")
INTERPOLATIONS = ("none", "cubic")
PNG_BITS = 16


@dataclass(frozen=True)
class CurveInfo:
    """`curve`: the curve family and its number of bends (curve bundles only)."""

    kind: str = rule(choices=CURVE_KINDS)
    bends: int = rule(ge=1)


@dataclass(frozen=True)
class GridInfo:
    """`grid`: the heights' size and window, and what was measured before upsampling."""

    width: int = rule(ge=2)
    height: int = rule(ge=2)
    x_range: tuple[float, float] = rule(ascending=True)
    y_range: tuple[float, float] = rule(ascending=True)
    source_width: int = rule(ge=2)
    source_height: int = rule(ge=2)
    dtype: str | None = rule(None, choices=GRID_DTYPES)  # absent before it was recorded


@dataclass(frozen=True)
class MappingInfo:
    """`height.mapping`: z = log10(loss - loss_min + offset); offset 0 for log10."""

    loss_min: float | None = rule()
    offset: float = rule(ge=0)


@dataclass(frozen=True)
class Relief:
    """`height.relief`: z_min..z_max is drawn `share` of the window's width high."""

    share: float = rule(gt=0, le=4)
    exaggeration: float = rule(gt=0)


@dataclass(frozen=True)
class HeightInfo:
    """`height`: how losses became heights, and the one height range of all frames."""

    transform: str = rule(choices=TRANSFORMS)
    loss_floor: float = rule(gt=0)
    loss_cap: float = rule()
    cap_quantile: float | None = rule(gt=0, le=1)
    sigma: float = rule(ge=0)
    frame_sigma: float = rule(ge=0)
    upsample: int = rule(ge=1)
    interpolation: str = rule(choices=INTERPOLATIONS)
    z_min: float = rule()
    z_max: float = rule()
    png_bits: int = rule(choices=(PNG_BITS,))
    mapping: MappingInfo | None = rule(None, omit_none=True)  # absent in older (log10) bundles
    relief: Relief | None = rule(None, omit_none=True)  # absent: drawn at the default share


@dataclass(frozen=True)
class DirectionAxis:
    """One axis of a plane around one network, with its Hessian eigenvalue (null: random)."""

    name: str = rule()
    eigenvalue: float | None = rule()
    extra: dict = rule({}, extra=True)


@dataclass(frozen=True)
class Directions:
    """`directions` (planes around one network only); `extra` keeps trace, subset or seed."""

    kind: str = rule(choices=DIRECTION_KINDS)
    scale: float | None = rule(ge=0)
    axes: tuple[DirectionAxis, ...] = rule()
    extra: dict = rule({}, extra=True)


@dataclass(frozen=True)
class PointEntry:
    """A named point of a frame (an optimum, an endpoint) on its surface."""

    name: str = rule()
    xy: tuple[float, float] = rule()
    z: float = rule()
    loss: float = rule(ge=0)


@dataclass(frozen=True, eq=False)
class FrameEntry:
    """One element of `frames`: its height files (relative paths) and what is drawn on it."""

    index: int = rule(ge=0)
    step: int = rule(ge=0)
    epoch: float = rule(ge=0)
    train_loss: float | None = rule()
    heights_npy: str = rule(suffix=".npy")
    heights_png: str = rule(suffix=".png")
    nonfinite: int = rule(ge=0)
    control_points: np.ndarray = rule(cols=2)
    path: np.ndarray = rule(cols=3)
    points: tuple[PointEntry, ...] = rule()
    bends: np.ndarray = rule(cols=2)


@dataclass(frozen=True)
class Manifest:
    """manifest.json as a whole."""

    format: str = rule(choices=(FORMAT,))
    schema_version: int = rule(ge=1, le=SCHEMA_VERSION)
    lossart_version: str = rule()
    created: str = rule()
    source_run: str | None = rule()
    kind: str = rule(choices=BUNDLE_KINDS)
    curve: CurveInfo | None = rule()
    grid: GridInfo = rule()
    height: HeightInfo = rule()
    path_samples: int = rule(ge=0)
    frames: tuple[FrameEntry, ...] = rule(nonempty=True)
    directions: Directions | None = rule(None, omit_none=True)  # planes around one network
