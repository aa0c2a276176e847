"""What `lossart grid` and `plane` accept: GridConfig, each option declared once
(lossart.options), and the parsers of their flags. No torch: the command line is built from
these declarations, and commands that never touch torch (`lossart terrain`) build it too.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from lossart.frame_selection import FrameSelection
from lossart.geometry.specs import IGNORE
from lossart.options import OptionError, check_options, option, option_error
from lossart.precision import DTYPES

DEFAULT_RESOLUTION = 41
FLAG = "--resolution"
MAX_SIDE = 20000  # grid points per axis, without --force
#: What --adaptive TOL bounds (lossart.grid.adaptive): the picture's heights, or log10 loss
ADAPTIVE_CRITERIA = ("picture", "log10")
#: New grids' window follows a 16:9 picture (the renders' default size), so terrain fills it.
DEFAULT_ASPECT = 16 / 9


def parse_aspect(text: str) -> float:
    """`--aspect 16:9`, `1.5` or `none` (0: no aspect) as width / height."""
    if text.strip().lower() == "none":
        return 0.0
    w, sep, h = text.partition(":")
    try:
        value = float(w) / float(h) if sep else float(w)
    except (ValueError, ZeroDivisionError):
        value = float("nan")
    if not (0 < value < float("inf")):
        raise OptionError("aspect", text, "expected W:H (e.g. 16:9), a ratio > 0, or none", "--aspect")
    return value


def parse_compile(text: str) -> bool | None:
    """`--compile auto|on|off` as None (by job size) / True / False."""
    choice = text.strip().lower()
    if choice not in ("auto", "on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected auto, on or off")
    return {"on": True, "off": False}.get(choice)


def parse_resolution(text: str) -> tuple[int, int]:
    """`--resolution 41` or `WxH` to (W, H)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise OptionError("resolution", text, "expected N or WxH, e.g. 41 or 64x48", FLAG) from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 2:
        raise OptionError("resolution", text, "expected at least 2 points per side (N or WxH)", FLAG)
    return parts[0], parts[1]


@dataclass
class GridConfig:
    """What `lossart grid` was asked. Each option is declared once (lossart.options): its range,
    help and flag; None means: the value in grid.json, else the declared fallback."""

    select_frames: FrameSelection | None = option(
        help="frame indices: start:stop:step, i, or i,j,k (default: all recorded frames)",
        metavar="A:B:S", parse=FrameSelection.parse, recorded=False,
    )  # fmt: skip  # a string is parsed here (GridConfig(select_frames="0:600:10"))
    resolution: tuple[int, int] | None = option(
        help="grid points per side, square or WxH (default 41, or the run's grid.json)",
        metavar="N|WxH", lo=2, parse=parse_resolution, fallback=(DEFAULT_RESOLUTION,) * 2,
    )  # fmt: skip
    subset: int | None = option(
        help="evaluation samples: a fixed, seeded subset (default min(1024, split size))",
        metavar="N", lo=1,
    )
    split: str | None = option(
        help="which split (default train)", choices=("train", "test"), fallback="train"
    )
    margin: float | None = option(
        help="window margin around the curve or points, as a share of their extent (0.2)",
        lo=0.0, hi=100.0, fallback=0.2,
    )  # fmt: skip
    aspect: float | None = option(
        help="window width:height, grown around the curve to fill the picture (default 16:9 "
        "for a new grid, else grid.json's; none: hug the points)",
        metavar="W:H|none", lo=0.0, parse=parse_aspect, fallback=DEFAULT_ASPECT,
    )  # fmt: skip  # 0 = no aspect: the window hugs the points
    tile_rows: int | None = option(
        help="grid rows per tile, the unit of resumable work (default ~256 points)",
        metavar="R", lo=1,
    )
    device: str = "cpu"
    # The precision is chosen once per grid: a recorded grid keeps its own (`auto` or None ask
    # for nothing new); a new one resolves `auto` by the hardware (lossart.precision, on rank 0).
    # The library's default for a new grid is float32 (exact); the CLI's is auto.
    dtype: str | None = option(
        help="evaluation precision", choices=DTYPES,
        defers=("auto",), fallback="float32",
    )  # fmt: skip
    batch_points: int | None = option(
        help="grid points per launch on CUDA (default: from free memory)",
        metavar="B", lo=1, recorded=False,
    )  # fmt: skip
    shard: str | None = None
    overwrite: bool = False
    force: bool = False
    compile: bool | None = option(
        help="torch.compile the CPU pass (auto: grids of 20000+ points; kept in grid.json)",
        metavar="{auto,on,off}", parse=parse_compile,
    )  # fmt: skip  # None = grid.json's, else by job size
    adaptive: float | None = option(
        help="refine level by level, interpolating where the picture is predicted within TOL: "
        "the terrain's height error as a share of its relief (e.g. 0.01), normals within 1 "
        "degree (kept in grid.json; default: every point)",
        metavar="TOL", lo=0.0, lo_open=True,
    )  # fmt: skip  # refinement tolerance (adaptive_criterion's units); None = off
    #: "picture" (TOL: height error as a share of the relief; normals within 1 degree) or "log10"
    #: (TOL in log10 loss); None = grid.json's (recorded as a dict: lossart.grid.adaptive.
    #: adaptive_plan reads either), else "picture".
    adaptive_criterion: str | None = option(
        help="what --adaptive TOL bounds: picture (default for a new grid) or log10 loss at the "
        "nodes (grids made before the criterion existed)",
        choices=ADAPTIVE_CRITERIA, fallback="picture",
    )  # fmt: skip
    quiet: bool | None = None  # None = LOSSART_QUIET decides

    #: The options `lossart grid` and `plane` offer as flags, in help order.
    FLAGS = ("resolution", "subset", "split", "margin", "aspect", "batch_points",
             "tile_rows", "compile", "adaptive", "adaptive_criterion")  # fmt: skip

    def __post_init__(self) -> None:
        """Ranges and finiteness before any work (a NaN margin made NaN windows, kept in grid.json);
        a frame selection spelled as text is parsed once, here."""
        if self.select_frames is not None:
            self.select_frames = FrameSelection.parse(self.select_frames)
        check_options(self)
        w, h = self.resolution or (0, 0)
        if max(w, h) > MAX_SIDE and not self.force:
            raise option_error(self, "resolution", (
                f"over {MAX_SIDE} points per side; one frame's arrays alone take "
                f"{w * h * 8 / 2**30:.1f} GiB (pass --force to run it anyway)"
            ))  # fmt: skip


#: What spans the plane (`--directions`): random stays the default.
DIRECTIONS = ("random", "hessian", "hessian-min")
#: beyond this many direction units the weights are noise (Li et al. draw span 1), and at 1e30
#: they overflow float32: NaN losses everywhere, silently
MAX_SPAN = 1000.0


@dataclass(frozen=True)
class AroundPlane:
    """What spans an around run's plane (`lossart plane --around`), each option declared once;
    None: the defaults (seed 0, span 1, random)."""

    seed: int | None = option(help="--around: the directions' seed (default 0)", lo=0)
    span: float | None = option(
        help="--around: the window [-span, span]² in units of the directions (default 1)",
        lo=0.0, hi=MAX_SPAN, lo_open=True,
    )  # fmt: skip
    directions: str | None = option(
        choices=DIRECTIONS,
        help="--around: random (default): Li et al.'s pair; hessian: the Hessian's top two "
        "eigenvectors; hessian-min: the top one against the most negative one (scaled to a "
        "filter-normalized direction's length, so --span compares)",
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_options(self)


@dataclass(frozen=True)
class TrajectoryConfig:
    """How the plane is found: principal directions reported, what they may move, centring."""

    components: int = option(
        2, lo=2, help="principal directions whose variance share is reported (default 2; the "
        "plane is the first two)",
    )  # fmt: skip
    #: "biasbn": biases and BN parameters stay at the final values (the CLI's --keep-bn: None)
    ignore: str | None = option("biasbn", choices=IGNORE, cli=False, help="what stays put")
    centre: bool = True  # subtract the rows' mean before the SVD (as Li et al.'s scikit PCA)

    def __post_init__(self) -> None:
        check_options(self)
