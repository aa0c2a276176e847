"""The `lossart` command line: a thin shell over the library.

Each subcommand parses flags and calls one documented library function; no logic lives here.
Errors raised as `LossartError` print as one line (`lossart: error: ...`) with exit status 2;
`--debug` shows the traceback instead.

Layout: one section per pipeline area; each `@command` function adds its subparser and sets
`run` to the handler. Sections are independent of each other.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from lossart import __version__
from lossart.errors import LossartError

_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def command(add: Callable[[argparse._SubParsersAction], None]):
    """Register a function that adds one subcommand to the parser."""
    _COMMANDS.append(add)
    return add


# ---------------------------------------------------------------- foundation: models, train

# ---------------------------------------------------------------- curves: curve, eval-curve

# ---------------------------------------------------------------- grid engine: grid, plane

# ---------------------------------------------------------------- terrain: terrain, validate


@command
def _add_terrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "terrain",
        help="turn a run's loss grids into smoothed log-loss heightfields (RUN/terrain/)",
        description="Write the terrain bundle (docs/bundle.md) that the Blender add-on reads: "
        "log10 of the clipped loss, smoothed, one height range for all frames.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run folder with grids/ (after `lossart grid`)")
    p.add_argument("--sigma", type=float, default=1.0, help="Gaussian smoothing in grid cells (default 1; 0: none)")
    p.add_argument("--frame-sigma", type=float, default=0.0, help="smoothing across frames, in frames (default 0)")
    cap = p.add_mutually_exclusive_group()
    cap.add_argument("--loss-cap", type=float, default=None, help="clip losses above this value")
    cap.add_argument("--cap-quantile", type=float, default=None,
                     help="clip at this quantile of all finite losses of all frames (default 0.99)")
    p.add_argument("--floor", type=float, default=1e-4, help="loss floor before the log (default 1e-4)")
    p.add_argument("--upsample", type=int, default=1, help="cubic interpolation to (n-1)*k+1 samples per axis")
    p.add_argument("--path-samples", type=int, default=200, help="points in each frame's path (default 200)")
    p.add_argument("--out", default=None, help="bundle folder (default RUN/terrain)")
    p.add_argument("--preview", action="store_true", help="also write preview/frame_XXXXX.png maps")
    p.add_argument("--export-mesh", type=int, default=None, metavar="FRAME",
                   help="also write frame FRAME as a mesh (terrain/mesh/)")
    p.add_argument("--mesh-format", choices=("ply", "gltf"), default="ply", help="mesh format (default ply)")
    p.add_argument("--ascii", action="store_true", help="ascii PLY instead of binary")
    p.set_defaults(run=_run_terrain)


def _run_terrain(args: argparse.Namespace) -> int:
    from lossart.runs import open_run
    from lossart.terrain.build import build_terrain
    from lossart.terrain.heightfield import TerrainConfig

    config = TerrainConfig(
        loss_floor=args.floor,
        loss_cap=args.loss_cap,
        cap_quantile=None if args.loss_cap is not None else (args.cap_quantile or 0.99),
        sigma=args.sigma,
        frame_sigma=args.frame_sigma,
        upsample=args.upsample,
        path_samples=args.path_samples,
    )
    result = build_terrain(
        args.run_dir, config, out=args.out, preview=args.preview,
        export_mesh=args.export_mesh, mesh_format=args.mesh_format, mesh_ascii=args.ascii,
    )
    open_run(args.run_dir).record_command("terrain")
    print(result.summary())
    return 0


@command
def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a terrain bundle against docs/bundle.md",
        description="Check every rule of the bundle format; print each problem and exit 1, "
        "or print a one-line summary and exit 0.",
    )
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder (RUN/terrain) or its manifest.json")
    p.set_defaults(run=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from lossart.terrain.validate import validate_bundle

    report = validate_bundle(args.bundle)
    for problem in report.problems:
        print(f"{report.root}: {problem}")
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


# ---------------------------------------------------------------- render: render, addon

# ---------------------------------------------------------------- demo

# ---------------------------------------------------------------- analyses: ensemble, functions


# ---------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lossart",
        description="Train low-loss curves between networks and render their loss landscapes.",
    )
    parser.add_argument("--version", action="version", version=f"lossart {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 1
    try:
        result = args.run(args)
    except LossartError as exc:
        if args.debug or os.environ.get("LOSSART_DEBUG") == "1":
            raise
        print(f"lossart: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lossart: interrupted; progress so far is saved, rerun the same command to resume",
              file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
