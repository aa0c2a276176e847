"""Options declared once: a config dataclass's field says its range, help and flag, the way the
look options do (lossart.format.look), and everything else is generated from that declaration.

- `check_options(cfg)`: the one validation, run by the config itself (`__post_init__`); its
  `OptionError` names the field (`margin inf: expected ...`), as a notebook user wrote it;
- `add_option_flags(parser, Config)`: the command line's flags, typed and range-checked at parse
  time with the same ranges, and `options_from_args(Config, args)` back;
- `OptionError.for_cli()`: the CLI's one line names the flag instead (`--margin inf: ...`);
- `resolve_options(cfg, recorded)`: the one pure merge of what was asked with what a run
  recorded (grid.json) and the declared fallbacks: asked, else recorded, else the fallback;
- `check_value(Config, name, value)`: code below a config (a schedule, a tolerance) checks a
  value against the declaration, and `option_error` words a check across fields, so no range is
  written twice (tests/test_architecture.py refuses a range checked under a flag's name);
- `threads_option()` / `Threads`: the one declaration of `threads` (the one thread policy
  itself is lossart.devices.cpu_threads).

The configs live in torch-free modules, so the command line builds without torch.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lossart.checks import integer, range_problem, real
from lossart.errors import LossartError

OPTION = "lossart_option"  # the field-metadata key


@dataclass(frozen=True)
class Option:
    """What one config field accepts and how the command line spells it."""

    help: str
    flag: str | None = None  # default: --field-name
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # the flag's text -> the field's value
    fallback: Any = None  # the value when neither asked nor recorded (resolve_options)
    recorded: bool = True  # merged with what the run recorded (resolve_options)
    defers: tuple[Any, ...] = ()  # asked values that still take the recorded one (dtype auto)
    cli: bool = True  # has a flag (False: a library-only knob, still range-checked)


def option(default: Any = None, *, setting: bool = True, **spec: Any) -> Any:
    """A dataclass field declared as an option (see `Option` for the keywords). `setting=False`:
    it changes how a training runs, not its result (lossart.training.loop.settings_of)."""
    metadata: dict[str, Any] = {OPTION: Option(**spec)}
    if not setting:
        metadata["setting"] = False
    return dataclasses.field(default=default, metadata=metadata)


def run_option(**kw: Any) -> Any:
    """A config field that changes how a training runs, not its result (kept out of the
    settings a rerun must match: lossart.training.loop.settings_of)."""
    return dataclasses.field(metadata={"setting": False}, **kw)


def declared(cls_or_obj: Any) -> list[tuple[dataclasses.Field, Option]]:
    """The declared options of a config class (or instance), in field order."""
    return [(f, f.metadata[OPTION]) for f in dataclasses.fields(cls_or_obj) if OPTION in f.metadata]


def flag_of(name: str, opt: Option, prefix: str = "") -> str:
    """The flag of option `name`: its declared one, else --field-name; `prefix` (e.g. "hessian-")
    where a command offers another config's options beside its own."""
    return "--" + prefix + (opt.flag or "--" + name.replace("_", "-")).removeprefix("--")


def _kind(f: dataclasses.Field) -> str:
    """The field's annotation as text ("int | None"), with or without postponed annotations."""
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")


def _none_allowed(f: dataclasses.Field) -> bool:
    """None is a value only where the field's annotation says `| None` (then it means: the
    recorded value, else the fallback, or the field's own meaning of none)."""
    return f.default is None or "None" in _kind(f)


class OptionError(LossartError):
    """A config value out of its declared range: one line naming the field; `for_cli()` names
    the flag instead."""

    def __init__(self, name: str, value: Any, problem: str, flag: str) -> None:
        self.name, self.value, self.problem, self.flag = name, value, problem, flag
        super().__init__(f"{name} {value!r}: {problem}")

    def for_cli(self) -> str:
        return f"{self.flag} {self.value!r}: {self.problem}"


def check_value(cls_or_obj: Any, name: str, value: Any) -> None:
    """`value` checked against the declaration of option `name` of `cls_or_obj`: for the code
    below a config (a schedule, a tolerance) that takes one of its values on its own, so the
    range stays written once."""
    f, opt = next((f, o) for f, o in declared(cls_or_obj) if f.name == name)
    problem = problem_of(opt, value, whole=_kind(f).startswith("int"))
    if problem:
        raise OptionError(name, value, problem, flag_of(name, opt))


def option_error(cls_or_obj: Any, name: str, problem: str, value: Any = None) -> OptionError:
    """An OptionError for a check beyond the option's own range (a cap above the floor, a subset
    larger than the data), with the declared flag; `value`: default the object's field."""
    opt = dict((f.name, o) for f, o in declared(cls_or_obj))[name]
    value = getattr(cls_or_obj, name, None) if value is None else value
    return OptionError(name, value, problem, flag_of(name, opt))


def problem_of(opt: Option, value: Any, whole: bool = False) -> str | None:
    """What is wrong with `value` for `opt` (None when it is allowed); None values are allowed
    (they mean: recorded, else the fallback). `whole`: the field holds whole numbers."""
    if value is None:
        return None
    if opt.choices is not None:
        return None if value in opt.choices else f"expected one of {', '.join(map(str, opt.choices))}"
    if opt.lo is None and opt.hi is None:
        return None
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if whole and isinstance(v, float):
            v = float("nan")  # 2.0 is not a count: it would reach range() and tensor shapes
        problem = range_problem(v, opt.lo, opt.hi, lo_open=opt.lo_open, hi_open=opt.hi_open)
        if problem:
            return problem.replace("a number", "a whole number") if whole else problem
    return None


def check_options(obj: Any) -> None:
    """Raise OptionError for the first declared field whose value is not allowed (None only
    where the field is annotated `| None`)."""
    for f, opt in declared(obj):
        value = getattr(obj, f.name)
        if value is None and not _none_allowed(f):
            problem: str | None = "expected a value, not None"
        else:
            problem = problem_of(opt, value, whole=_kind(f).startswith("int"))
        if problem:
            raise OptionError(f.name, value, problem, flag_of(f.name, opt))


def _parsed(parse: Callable[[str], Any], flag: str, name: str) -> Callable[[str], Any]:
    """`parse` as an argparse type: its one-line error becomes argparse's, then the value is
    range-checked against the declaration too."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(f"{exc.value!r}: {exc.problem}") from None
        except LossartError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(flag + " ")) from None

    convert.__name__ = name
    return convert


def _flag_type(f: dataclasses.Field, opt: Option) -> Callable[[str], Any] | None:
    if opt.parse is not None:
        return _parsed(opt.parse, flag_of(f.name, opt), f.name)
    if opt.choices is not None:
        return None
    kind = _kind(f)
    if kind.startswith("int"):
        return integer(opt.lo, opt.hi)
    if kind.startswith("float"):
        return real(opt.lo, opt.hi, lo_open=opt.lo_open, hi_open=opt.hi_open)
    return str


def cli_options(cls: type) -> list[str]:
    """The names of `cls`'s options that have flags, in field order."""
    return [f.name for f, opt in declared(cls) if opt.cli]


def add_option_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    names: list[str] | tuple[str, ...] | None = None,
    prefix: str = "",
    defaults: Mapping[str, Any] | None = None,
    helps: Mapping[str, str] | None = None,
) -> None:
    """A flag for each option in `names` (default: every one with a flag), its default the
    field's (None: recorded, else the fallback). With `prefix` ("hessian-"), `--hessian-subset`
    fills `args.hessian_subset`. Each flag's action remembers its option (`lossart_option`)."""
    by_name = dict((f.name, (f, opt)) for f, opt in declared(cls))
    for name in cli_options(cls) if names is None else names:
        f, opt = by_name[name]
        default = None if f.default is dataclasses.MISSING else f.default
        default = (defaults or {}).get(name, default)  # this command's own (--sharpness-points 5)
        dest = prefix.replace("-", "_") + name
        kwargs: dict[str, Any] = {
            "dest": dest, "default": default, "help": (helps or {}).get(name, opt.help)
        }  # fmt: skip
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        if opt.choices is not None and opt.parse is None:
            kwargs["choices"] = opt.choices
        flag_type = _flag_type(f, opt)
        if flag_type is not None and flag_type is not str:
            kwargs["type"] = flag_type
        action = parser.add_argument(flag_of(name, opt, prefix), **kwargs)
        action.lossart_option = (cls.__name__, name)  # type: ignore[attr-defined]


def options_from_args(
    cls: type, args: argparse.Namespace, names: list[str] | tuple[str, ...] | None = None,
    prefix: str = "",
) -> dict[str, Any]:  # fmt: skip
    """The values of `names` (default: every option with a flag) from parsed flags, by field."""
    names = cli_options(cls) if names is None else names
    return {name: getattr(args, prefix.replace("-", "_") + name) for name in names}


def resolve_options(
    cfg: Any, recorded: Mapping[str, Any] | None, names: list[str] | None = None
) -> dict[str, Any]:
    """The one merge (pure): each option's asked value, else the recorded one (when the option
    is merged with the record and there is one; an asked value among its `defers` asks for
    nothing new either), else its declared fallback."""
    out = {}
    for f, opt in declared(cfg):
        if names is not None and f.name not in names:
            continue
        value = getattr(cfg, f.name)
        if (value is None or value in opt.defers) and opt.recorded and recorded:
            if recorded.get(f.name) is not None:
                value = recorded[f.name]
        out[f.name] = opt.fallback if value is None else value
    return out


#: The most CPU threads a command may ask for (more is a typo, not a machine).
MAX_THREADS = 4096


def threads_option(help: str = "CPU threads (default: 1 for the built-in data on the CPU, "
                   "else torch's choice)") -> Any:  # fmt: skip
    """The one declaration of `threads` that every compute config shares (the thread policy
    itself is lossart.devices.cpu_threads): how a run runs, not its result."""
    return option(None, setting=False, help=help, lo=1, hi=MAX_THREADS, metavar="N")


@dataclass(frozen=True)
class Threads:
    """The `threads` option alone: for commands and functions that take a thread count without
    a config of their own (eval-curve, line, import, align; lossart.devices.cpu_threads)."""

    threads: int | None = threads_option()

    def __post_init__(self) -> None:
        check_options(self)
