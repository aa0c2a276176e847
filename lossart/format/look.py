"""The look options: one bpy-free type for every knob of a lossart picture.

Each option is one field of `Look`, with its default, label, help text, group and allowed values
in the field's metadata. Everything else is derived from these fields: `lossart render`'s flags
(lossart/render/options.py), the render job lossart writes and headless.py reads
(`to_dict`/`from_dict`), the scene properties `scene.lossart.*` (props.py), the import
operator's options and the panel (ui.py), and the copy onto the scene (`apply_to`).
`validate()` is the one check; the CLI, the job reader and the add-on all call it, so a bad
value is refused with the same one-line message everywhere.

Names: a field's name is its job key and its Blender property. Its CLI flag is the name with
dashes, except three spellings kept from the first release (metadata "flag"): `camera_preset` is
`--camera` (`scene.lossart.camera` is the camera object), `path_glow` is `--glow` and
`playback_speed` is `--speed` (the names saved .blend files already hold).

Groups: "look" changes what the scene shows (refreshed at once), "timeline" which scene frame
shows which bundle frame (timeline.py), "render" Blender's render settings (engine, device,
samples, size, denoising).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .presets import (
    CAMERA_PRESETS,
    DEFAULT_PALETTE,
    DEFAULT_STYLE,
    ENGINES,
    PALETTES,
    RENDER_DEVICES,
    STYLES,
)
from .timeline import Timeline

GROUPS = ("look", "timeline", "render")
SIZE_LIMITS = (16, 16384)
_F32 = 1e-6  # relative slack for float32 round trips through Blender


class LookError(ValueError):
    """A look option with a value it cannot take; the message is one line naming the option."""


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H), the text form of `Look.size` on the command line."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise LookError(
            f"{describe('size')} {text!r}: expected WIDTHxHEIGHT, e.g. 960x540"
        ) from None
    return w, h


def format_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _option(default, label: str, help: str, group: str, **meta) -> Any:
    assert group in GROUPS
    return field(default=default, metadata={"label": label, "help": help, "group": group, **meta})


@dataclass(frozen=True)
class Look:
    """How a bundle is shown and rendered: the add-on's panel and `lossart render`'s flags."""

    # what the scene shows
    style: str = _option(
        DEFAULT_STYLE, "Style",
        "the whole look: light, material, world, camera framing (the palette is one part)",
        "look", choices=STYLES,
    )  # fmt: skip
    height_scale: float = _option(
        1.0, "Height scale", "multiplies the bundle's relief (lossart terrain --relief)", "look",
        min=0.0, soft_max=4.0,
    )
    palette: str = _option(
        DEFAULT_PALETTE, "Palette", "colour map from low loss (valleys) to high loss (ridges)",
        "look", choices={k: v[3] for k, v in PALETTES.items()},
    )  # fmt: skip
    path_glow: float = _option(
        4.0, "Path glow", "emission strength of the path", "look", min=0.0, soft_max=30.0,
        flag="--glow",
    )  # fmt: skip
    show_bends: bool = _option(
        False, "Show bends", "show the curve's bend points as small spheres", "look"
    )
    contours: bool = _option(
        True, "Contour lines",
        "faint contour lines over the surface (the classic style; the hero draws none)", "look",
    )  # fmt: skip
    camera_preset: str = _option(
        "overview", "Camera", "camera move", "look", choices=CAMERA_PRESETS, flag="--camera"
    )
    slab: bool = _option(
        False, "Slab",
        "the terrain as a solid slab with dark sides (off: its edges fade into the background)",
        "look",
    )  # fmt: skip
    # which scene frame shows which bundle frame
    frame_start: int = _option(
        1, "Start frame", "the scene frame that shows bundle frame 0", "timeline",
        min=0, max=1_000_000,
    )  # fmt: skip
    playback_speed: float = _option(
        1.0, "Playback speed",
        "bundle frames per scene frame; below 1 interpolates heights for slow motion",
        "timeline", min=0.001, soft_max=4.0, flag="--speed",
    )  # fmt: skip
    # Blender's render settings
    engine: str = _option("cycles", "Engine", "render engine", "render", choices=ENGINES)
    render_device: str = _option(
        "auto", "Device", "where Cycles renders", "render", choices=RENDER_DEVICES
    )
    samples: int = _option(
        32, "Samples", "Cycles samples per pixel", "render", min=1, max=1 << 20, soft_max=512
    )
    size: tuple[int, int] = _option(
        (960, 540), "Size", "picture width and height in pixels", "render",
        min=SIZE_LIMITS[0], max=SIZE_LIMITS[1], parse=parse_size, format=format_size,
    )  # fmt: skip
    denoise: bool = _option(True, "Denoise", "denoise with OpenImageDenoise", "render")
    transparent: bool = _option(
        False, "Transparent",
        "an alpha channel where no terrain, path or marker is (for compositing; a video's MP4 "
        "keeps the background colour, its frames folder the alpha)", "render",
    )  # fmt: skip

    @classmethod
    def names(cls, *groups: str) -> list[str]:
        """Field names (of the given groups, default all), in panel and help order."""
        return [f.name for f in fields(cls) if not groups or f.metadata["group"] in groups]

    def validate(self) -> Look:
        """Raise LookError (one line naming the option) unless every value is allowed."""
        for f in fields(self):
            problem = _problem(f, getattr(self, f.name))
            if problem:
                raise LookError(f"{describe(f.name)} {_show(f, getattr(self, f.name))}: {problem}")
        return self

    def to_dict(self) -> dict:
        """Plain JSON data: the look part of a render job (keys = field names)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict, what: str = "look") -> Look:
        """The inverse of `to_dict` (missing keys take their defaults), validated."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise LookError(f"{what}: unknown option(s) {', '.join(unknown)}")
        return cls(**{k: _coerce(known[k], v) for k, v in data.items()}).validate()

    @classmethod
    def from_settings(
        cls, settings, base: Look | None = None, names: list[str] | None = None
    ) -> Look:
        """The look an object with these attributes holds (`scene.lossart`, an operator), for
        the options `names` (default all); the others come from `base` (default: the
        defaults). Not validated."""
        values = (base or cls()).__dict__.copy()
        for f in fields(cls):
            if names is None or f.name in names:
                values[f.name] = _coerce(f, getattr(settings, f.name))
        return cls(**values)

    def apply_to(self, settings) -> None:
        """Copy every option onto `settings` (`scene.lossart`): the scene holds the look."""
        for k, v in self.to_dict().items():
            setattr(settings, k, v)

    def timeline(self, frames: int) -> Timeline:
        """Which scene frame shows which of the bundle's `frames` recorded frames."""
        return Timeline(frames=frames, speed=self.playback_speed, frame_start=self.frame_start)


def flag(name: str) -> str:
    """The command-line flag of option `name`."""
    meta = _field(name).metadata
    return meta.get("flag") or "--" + name.replace("_", "-")


def describe(name: str) -> str:
    """How messages name an option: its property name and its flag."""
    return f"{name} ({flag(name)})"


def _field(name: str):
    for f in fields(Look):
        if f.name == name:
            return f
    raise KeyError(name)


def _show(f, value) -> str:
    if isinstance(value, tuple | list) and "format" in f.metadata and len(value) == 2:
        try:
            return f.metadata["format"](value)
        except (TypeError, IndexError):
            pass
    return repr(value)


def _coerce(f, value):
    """JSON and Blender forms to the field's type (lists to tuples, ints to floats, float32)."""
    kind = type(f.default)
    if kind is tuple and not isinstance(value, str):
        try:
            return tuple(int(v) if float(v).is_integer() else v for v in value)
        except (TypeError, ValueError):
            return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _problem(f, value) -> str | None:
    """What is wrong with `value` for field `f`, or None."""
    meta, kind = f.metadata, type(f.default)
    if kind is bool:
        return None if isinstance(value, bool) else "expected on or off (true or false)"
    if kind is str:
        if not isinstance(value, str):
            return "expected a name"
        choices = meta.get("choices")
        if choices and value not in choices:
            return f"choose one of {', '.join(choices)}"
        return None
    if kind is tuple:
        if (
            not isinstance(value, tuple)
            or len(value) != len(f.default)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            return f"expected {len(f.default)} whole numbers, e.g. {_show(f, f.default)}"
        parts = value
    elif kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            return "expected a whole number"
        parts = (value,)
    else:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            return "expected a number"
        parts = (value,)
    lo, hi = meta.get("min"), meta.get("max")
    slack = 0.0
    if kind is float:  # Blender keeps floats as float32: its own minimum reads back a hair below
        slack = _F32 * max(1.0, abs(lo or 0.0), abs(hi or 0.0))
    low = lo is not None and any(v < lo - slack for v in parts)
    high = hi is not None and any(v > hi + slack for v in parts)
    if (low or high) and lo is not None and hi is not None:
        return f"must be {lo}..{hi}" if kind is not tuple else f"each must be {lo}..{hi}"
    if low:
        return f"must be at least {lo}"
    if high:
        return f"must be at most {hi}"
    return None
