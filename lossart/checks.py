"""Checks of user input made once, before any work: numbers, output locations, JSON fields.

Every command's numeric flags are parsed by the `argparse` types built here (`integer`,
`real`), so a bad value is refused at parse time in one line naming the flag; the library's
config dataclasses call `check_number` on the same ranges, so notebook users get the same
one-line `LossartError`. Output locations are checked (`output_file`, `output_dir`) before the
first epoch or frame, metadata fields with `field` / `require` naming the file and the key.
No torch here: this is the core layer.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lossart.errors import LossartError

# Upper bounds that keep a single request's memory and time sane; larger values are mistakes.
MAX_UPSAMPLE = 16
MAX_GRID_SIDE = 20000
MAX_IMAGE_SIDE = 16384


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return "finite"


def range_problem(
    value: float,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> str | None:
    """What is wrong with `value` against the range (finite always), or None when it fits."""
    kind = "a whole number" if isinstance(value, int) and not isinstance(value, bool) else "a number"
    text = _range_text(lo, hi, lo_open, hi_open)
    expected = f"expected {kind} {text}" if text != "finite" else f"expected a finite {kind[2:]}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return expected
    if lo is not None and (value < lo or (lo_open and value == lo)):
        return expected
    if hi is not None and (value > hi or (hi_open and value == hi)):
        return expected
    return None


def check_number(
    name: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    optional: bool = True,
) -> None:
    """A one-line LossartError naming `name` (a flag, e.g. `--margin`) unless `value` is in range.

    None passes when `optional` (a default filled in later)."""
    if value is None and optional:
        return
    problem = range_problem(value, lo, hi, lo_open=lo_open, hi_open=hi_open)
    if problem:
        raise LossartError(f"{name} {value!r}: {problem}")


def _number_type(
    kind: type, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool
) -> Callable[[str], Any]:
    def convert(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            value = None
        problem = range_problem(value, lo, hi, lo_open=lo_open, hi_open=hi_open)
        if value is None or problem:
            kind_text = "a whole number" if kind is int else "a number"
            problem = problem or f"expected {kind_text} {_range_text(lo, hi, lo_open, hi_open)}"
            raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its own messages
    return convert


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse `type=`: a whole number in [lo, hi]."""
    return _number_type(int, lo, hi, False, False)


def real(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[str], float]:
    """An argparse `type=`: a finite number in the range (open ends where asked)."""
    return _number_type(float, lo, hi, lo_open, hi_open)


positive_int = integer(1)
nonneg_int = integer(0)
finite_float = real()
nonneg_float = real(0.0)
positive_float = real(0.0, lo_open=True)
probability_open = real(0.0, 1.0, lo_open=True, hi_open=True)


# ---------------------------------------------------------------- output locations


def _existing_ancestor(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path("/")


def _named(flag: str, target: Path) -> str:
    return f"{flag} {target}" if flag else str(target)


def _writable_dir(folder: Path, flag: str, target: Path) -> None:
    if not folder.is_dir():
        raise LossartError(
            f"{_named(flag, target)}: {folder} is a file, expected a folder to write in"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lossart-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LossartError(f"{_named(flag, target)}: cannot write in {folder} ({reason})") from None


def output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """`path` where a file is to be written: not a folder, its folder writable (or creatable).

    `flag` names what the user typed (`--out`); "" when the path is a run's own sub-folder."""
    path = Path(path)
    if path.is_dir():
        raise LossartError(f"{_named(flag, path)}: is a folder, expected a file name to write")
    parent = path.absolute().parent
    _writable_dir(parent if parent.exists() else _existing_ancestor(parent), flag, path)
    return path


def output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """`path` where a folder is to be written: a folder or absent, and writable (or creatable)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LossartError(f"{_named(flag, path)}: is a file, expected a folder (or a new name)")
    _writable_dir(path if path.exists() else _existing_ancestor(path), flag, path)
    return path


def executable(path: str | os.PathLike, flag: str) -> Path:
    """A program the user named: it must exist and be executable."""
    path = Path(path)
    if not path.is_file() or not os.access(path, os.X_OK):
        what = "not found" if not path.exists() else "not an executable file"
        raise LossartError(f"{flag} {path}: {what}")
    return path


# ---------------------------------------------------------------- metadata fields


def require_mapping(data: Any, where: str | os.PathLike) -> dict:
    """A JSON document that must be an object."""
    if not isinstance(data, dict):
        raise LossartError(f"{where}: expected a JSON object, found a {type(data).__name__}")
    return data


def field(
    data: dict, key: str, where: str | os.PathLike, kind: type | tuple[type, ...], *,
    required: bool = True, default: Any = None,
) -> Any:  # fmt: skip
    """`data[key]` of the expected JSON type, or a one-line error naming the file and field.

    Numbers: `float` accepts ints too; bools are never numbers."""
    if key not in data or data[key] is None:
        if required:
            raise LossartError(f"{where}: field {key!r} is missing")
        return default
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:
        kinds = (*kinds, int)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = " or ".join(_json_name(k) for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise LossartError(
            f"{where}: field {key!r} is {json_repr(value)}, expected {names}"
        )
    return value


def number_list(
    data: dict, key: str, where: str | os.PathLike, length: int | None = None,
    *, integers: bool = False, required: bool = True,
) -> list | None:  # fmt: skip
    """A list of numbers (of `length`), else a one-line error naming the file and field."""
    value = field(data, key, where, list, required=required)
    if value is None:
        return None
    kinds = (int,) if integers else (int, float)
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, kinds)]
    if bad or (length is not None and len(value) != length):
        what = "whole numbers" if integers else "numbers"
        size = f"{length} " if length is not None else ""
        raise LossartError(
            f"{where}: field {key!r} is {json_repr(value)}, expected a list of {size}{what}"
        )
    return value


def _json_name(kind: type) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "a whole number",
            float: "a number", bool: "true or false"}.get(kind, kind.__name__)  # fmt: skip


def json_repr(value: Any, limit: int = 40) -> str:
    """A short one-line rendering of a JSON value for messages."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
