"""The `lossart ...` line a config stands for, derived from the config's fields, so the commands
a pipeline prints and records (demo.json) cannot drift from what it ran.

A field becomes a flag when its value differs from its default:
- fields declared with `lossart.options.option()` (GridConfig): `flag_of()`, the field's default;
- look options (`lossart.format.look.Look`): their "flag" and "format" metadata, `--x`/`--no-x`;
- any other dataclass field: `--field-name`, `--no-field-name` for a switch that is on by
  default, dicts as repeated `--flag KEY=VALUE`, a DataSpec as `--data NAME` (+ root, download).
Configs not yet declared with `option()` need the few spellings in `SPELLINGS`, `CLI_DEFAULTS`
and `POSITIONAL`; once declared, `declared()` supplies them and the entries can go.
`tests/test_commands.py` parses every line a demo records with lossart's own CLI and checks that
it gives back the config that ran.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from lossart.options import OPTION, flag_of

# Fields that are how a run is shown or saved, not what it computes: no command spells them.
NOT_FLAGS = frozenset({"progress", "quiet", "save_every_s", "train_eval_size"})
# Flags not spelled --field-name, by (config class, field), until the config declares them.
SPELLINGS = {
    ("TrainConfig", "model_kwargs"): "--model-arg",
    ("TerrainConfig", "loss_floor"): "--floor",
}
# The CLI's defaults where they differ from the library's (the CLI asks for auto precision).
CLI_DEFAULTS = {"dtype": "auto"}
# Fields given as positional arguments, first, in this order.
POSITIONAL = {"CurveConfig": ("w1", "w2")}
# A None the CLI spells with another flag: a video without a duration plays at the look's speed.
NONE_SPELLINGS = {("RenderOptions", "duration"): ("--speed", "1.0")}


@dataclass(frozen=True)
class Command:
    """One `lossart NAME ARGS... FLAGS...` line: positional arguments, then the flags of each
    config, then `flags` (switches that are no config's field, e.g. `--preview`)."""

    name: str
    args: tuple[Any, ...] = ()
    configs: tuple[Any, ...] = ()
    flags: tuple[Any, ...] = ()

    def line(self, base: Path | None = None) -> str:
        """The command as one shell line; paths under `base` relative to it."""
        tokens = ["lossart", self.name, *(_text(a, base) for a in self.args)]
        for cfg in self.configs:
            tokens += [_text(getattr(cfg, n), base) for n in POSITIONAL.get(type(cfg).__name__, ())]
        for cfg in self.configs:
            tokens += flag_tokens(cfg, base)
        tokens += [_text(f, base) for f in self.flags]
        return shlex.join(tokens)


# Options of commands whose library call takes keywords, with the CLI's defaults.
@dataclass(frozen=True)
class EvalCurveOptions:
    """`lossart eval-curve RUN`: evaluate_curve_run's keywords."""

    points: int = 21
    subset: int = 2000
    device: str = "cpu"
    threads: int | None = None


@dataclass(frozen=True)
class EnsembleOptions:
    """`lossart ensemble RUN`: ensemble_run's keywords."""

    points: int = 21
    subset: int = 2000
    device: str = "cpu"


@dataclass(frozen=True)
class RenderOptions:
    """`lossart render RUN --still|--video`: render_still's and render_video's keywords besides
    the look (duration None: the recorded frames at the look's speed)."""

    out: str | Path | None = None
    fps: int = 24
    interpolate: int = 1
    duration: float | None = 12.0
    hold: float = 1.0
    caption: bool = False
    compare: bool = False


def flag_tokens(cfg: Any, base: Path | None = None) -> list[str]:
    """The flags of every field of `cfg` whose value differs from its default."""
    kind = type(cfg).__name__
    tokens: list[str] = []
    for f in dataclasses.fields(cfg):
        if f.name in NOT_FLAGS or f.name in POSITIONAL.get(kind, ()):
            continue
        value, default = getattr(cfg, f.name), _default(f)
        if value == default:
            continue
        flag = _flag(kind, f)
        if value is None:
            if (kind, f.name) not in NONE_SPELLINGS:
                raise ValueError(f"{kind}.{f.name}: None has no flag (its CLI default is "
                                 f"{default!r}); give the config a value")
            tokens += NONE_SPELLINGS[kind, f.name]
        elif isinstance(value, bool):
            if OPTION in f.metadata and f.metadata[OPTION].parse is not None:
                tokens += [flag, "on" if value else "off"]  # --compile on|off
            else:
                tokens.append(flag if value else "--no-" + flag.removeprefix("--"))
        elif isinstance(value, dict):
            for k, v in value.items():
                tokens += [flag, f"{k}={v}"]
        elif hasattr(value, "download") and hasattr(value, "root"):  # a DataSpec
            tokens += [flag, value.name]
            tokens += ["--data-root", value.root] if value.root != "data" else []
            tokens += ["--download"] if value.download else []
            tokens += ["--image-size", str(value.size)] if value.size else []
        else:
            shown = f.metadata.get("format") or _inverse(f)
            tokens += [flag, shown(value) if shown else _text(value, base)]
    return tokens


def merge_lines(lines: list[str]) -> str:
    """Lines that differ only in some tokens as one line, each differing token as `a|b` (the two
    endpoints' `lossart train`); lines of other shapes joined by " ; ". `split_line` inverts it."""
    split = [shlex.split(line) for line in lines]
    if len(lines) < 2 or len({len(t) for t in split}) != 1 or any("|" in t for s in split for t in s):
        return " ; ".join(lines)
    return " ".join("|".join(shlex.quote(v) for v in column) if len(set(column)) > 1
                    else shlex.quote(column[0]) for column in zip(*split))


def split_line(line: str) -> list[list[str]]:
    """The token lists of the commands in a recorded line (the inverse of `merge_lines`)."""
    out = []
    for part in line.split(" ; "):
        tokens = shlex.split(part)
        n = max(len(t.split("|")) for t in tokens)
        out += [[t.split("|")[k] if "|" in t else t for t in tokens] for k in range(n)]
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.name in CLI_DEFAULTS:
        return CLI_DEFAULTS[f.name]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING  # required: always shown


def _flag(kind: str, f: dataclasses.Field) -> str:
    if OPTION in f.metadata:
        return flag_of(f.name, f.metadata[OPTION])
    if "label" in f.metadata and "group" in f.metadata:  # a look option
        return f.metadata.get("flag") or "--" + f.name.replace("_", "-")
    return SPELLINGS.get((kind, f.name)) or "--" + f.name.replace("_", "-")


def _inverse(f: dataclasses.Field):
    """How a declared option's `parse` reads back its value, where the generic form is not the
    one people type (`--aspect 16:9`, not 1.7777777777777777)."""
    from lossart.grid.config import parse_aspect

    parse = f.metadata[OPTION].parse if OPTION in f.metadata else None
    return {parse_aspect: _ratio}.get(parse)


def _ratio(value: float) -> str:
    """An aspect as W:H when a ratio of small whole numbers is exactly it (0: none)."""
    if value == 0:
        return "none"
    ratio = Fraction(value).limit_denominator(64)
    return f"{ratio.numerator}:{ratio.denominator}" if float(ratio) == value else repr(value)


def _text(value: Any, base: Path | None) -> str:
    """A value as the command line spells it: WxH for pairs, paths under `base` relative to it."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, float):
        return repr(value)
    if base is not None and (isinstance(value, Path) or (isinstance(value, str) and os.sep in value)):
        full, root = Path(os.path.abspath(value)), Path(os.path.abspath(base))
        if full.is_relative_to(root):
            return str(full.relative_to(root))
    return str(value)


__all__ = ["Command", "EnsembleOptions", "EvalCurveOptions", "RenderOptions", "flag_tokens",
           "merge_lines", "split_line"]
