"""Look options on the command line: argparse flags generated from the add-on's `Look` fields.

One flag per field (name with dashes, or the field's "flag" metadata), its help, default and
allowed values taken from the field, so `lossart render`, `lossart demo` and the add-on's panel
cannot drift apart. Values are checked by `Look.validate`, the add-on's own check, and refused
as a one-line `LossartError` with the same message the add-on gives.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace

from lossart.errors import LossartError
from lossart.format.look import Look, LookError, describe, flag, parse_size

# Old spellings of renamed `lossart render` flags: accepted for one release with a one-line
# warning. `--bends` was an on/off switch here but a count in `lossart curve`; `--device` a
# Blender device here but a torch device in the compute commands.
DEPRECATED_FLAGS = {"--bends": "--show-bends", "--device": "--render-device"}


def check_look(look: Look) -> Look:
    """`look`, validated; a one-line LossartError naming the option otherwise."""
    try:
        return look.validate()
    except LookError as exc:
        raise LossartError(str(exc)) from None


def checked_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H) by the look's own parser, range-checked; a one-line LossartError naming --size otherwise."""
    try:
        size = parse_size(text)
    except LookError as exc:
        raise LossartError(str(exc)) from None
    check_look(Look(size=size))
    return size


GIVEN = "look_given"  # the namespace attribute naming the look options on the command line


def _note_given(namespace, dest: str) -> None:
    given = set(getattr(namespace, GIVEN, None) or ())
    setattr(namespace, GIVEN, given | {dest})


class _Store(argparse._StoreAction):
    """Store the value and note that the option was given (see `given_look_options`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _note_given(namespace, self.dest)


class _Switch(argparse.BooleanOptionalAction):
    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _note_given(namespace, self.dest)


def given_look_options(args: argparse.Namespace) -> set[str]:
    """The Look fields set on the command line (a default left alone is not given): lets a
    command give a flag precedence over one of its own defaults (`render --speed` over the
    video's default duration)."""
    return set(getattr(args, GIVEN, None) or ())


def _deprecated(new: str, boolean: bool) -> type[argparse.Action]:
    """The action of an old spelling of `new`: stores the same, with a one-line note."""
    base = _Switch if boolean else _Store

    class Deprecated(base):
        def __call__(self, parser, namespace, values, option_string=None):
            now = "--no-" + new[2:] if option_string.startswith("--no-") else new
            print(
                f"lossart: warning: {option_string} is deprecated, use {now} "
                "(the old spelling goes away in the next release)",
                file=sys.stderr,
            )
            super().__call__(parser, namespace, values, option_string)

    return Deprecated


def _choice(f):
    """Map a choice to its exact spelling, ignoring case (`--render-device cpu` is CPU)."""
    by_lower = {c.lower(): c for c in f.metadata["choices"]}

    def convert(text: str) -> str:
        return by_lower.get(text.lower(), text)

    convert.__name__ = f.name  # argparse names the type in its messages
    return convert


def add_look_flags(
    parser: argparse.ArgumentParser,
    names: list[str] | None = None,
    *,
    defaults: bool = True,
    deprecated: dict[str, str] | None = None,
    title: str = "look options (the add-on's panel has the same)",
) -> None:
    """Add a flag for every Look field in `names` (default all). With `defaults=False` each
    flag defaults to None (the caller has defaults of its own, e.g. the demo's presets)."""
    group = parser.add_argument_group(title)
    deprecated = deprecated or {}
    for f in fields(Look):
        if names is not None and f.name not in names:
            continue
        meta = f.metadata
        new = flag(f.name)
        old = [o for o, n in deprecated.items() if n == new]
        default = f.default
        text = meta["help"]
        if "choices" in meta:
            text += f": {', '.join(meta['choices'])}"
        if "format" in meta:
            default = meta["format"](default)
        if defaults:
            shown = ("on" if default else "off") if isinstance(default, bool) else default
            text += f" (default {shown})"
        if old:
            text += f"; {', '.join(old)} is its old spelling"
        kw = {"dest": f.name, "help": text.replace("%", "%%")}
        if isinstance(f.default, bool):
            kw["action"] = _Switch
        else:
            kw["action"] = _Store
            kw["type"] = (
                _choice(f) if "choices" in meta
                else str if "parse" in meta
                else type(f.default)
            )  # fmt: skip
            kw["metavar"] = (
                "WxH" if "parse" in meta
                else "NAME" if "choices" in meta
                else "N" if isinstance(f.default, int)
                else "X"
            )  # fmt: skip
        group.add_argument(new, default=default if defaults else None, **kw)
        for spelling in old:  # hidden: the new flag's help names it
            kw.update(action=_deprecated(new, isinstance(f.default, bool)), help=argparse.SUPPRESS)
            group.add_argument(spelling, default=argparse.SUPPRESS, **kw)


def look_values(args: argparse.Namespace, names: list[str] | None = None) -> dict:
    """The Look values given on the command line (None skipped), parsed but not validated."""
    out = {}
    for f in fields(Look):
        if (names is not None and f.name not in names) or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if value is None:
            continue
        if isinstance(value, str) and "parse" in f.metadata:
            try:
                value = f.metadata["parse"](value)
            except LookError as exc:
                raise LossartError(str(exc)) from None
        out[f.name] = value
    return out


def look_from_args(args: argparse.Namespace, base: Look | None = None) -> Look:
    """The Look the command line asks for, validated (a one-line LossartError otherwise)."""
    return check_look(replace(base or Look(), **look_values(args)))


__all__ = [
    "DEPRECATED_FLAGS",
    "add_look_flags",
    "check_look",
    "checked_size",
    "describe",
    "given_look_options",
    "look_from_args",
    "look_values",
]
