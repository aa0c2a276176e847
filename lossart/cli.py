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
