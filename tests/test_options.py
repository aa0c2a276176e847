"""Options declared once (lossart.options): the declaration makes the flags, the validation and
the merge with what a run recorded."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from lossart.options import (
    OptionError,
    add_option_flags,
    check_options,
    option,
    options_from_args,
    resolve_options,
)


@dataclass
class Config:
    count: int | None = option(help="how many", lo=1, hi=10, fallback=3)
    share: float | None = option(help="a share", lo=0.0, hi=1.0, lo_open=True, fallback=0.5)
    mode: str | None = option(help="which", choices=("a", "b"), fallback="a")
    live: bool | None = option(help="kept in the record")
    batch: int | None = option(help="never recorded", lo=1, recorded=False, fallback=8)
    plain: str = "not an option"

    def __post_init__(self) -> None:
        check_options(self)


def test_errors_name_the_field_and_for_cli_the_flag():
    with pytest.raises(OptionError) as exc:
        Config(share=0.0)
    assert str(exc.value) == "share 0.0: expected a number in (0, 1]"
    assert exc.value.for_cli() == "--share 0.0: expected a number in (0, 1]"
    with pytest.raises(OptionError, match=r"^mode 'c': expected one of a, b$"):
        Config(mode="c")
    with pytest.raises(OptionError, match=r"^count nan"):
        Config(count=float("nan"))
    Config(count=None, share=1.0, mode="b")  # None: recorded, else the fallback


def test_flags_come_from_the_declaration_with_the_same_ranges():
    parser = argparse.ArgumentParser(prog="x", exit_on_error=False)
    names = ["count", "share", "mode", "batch"]
    add_option_flags(parser, Config, names)
    args = parser.parse_args(["--count", "4", "--mode", "b"])
    assert options_from_args(Config, args, names) == {
        "count": 4, "share": None, "mode": "b", "batch": None
    }
    with pytest.raises(argparse.ArgumentError, match=r"'11': expected a whole number in \[1, 10\]"):
        parser.parse_args(["--count", "11"])
    assert "a share" in parser.format_help()


def test_the_merge_is_asked_else_recorded_else_fallback():
    recorded = {"count": 7, "share": 0.25, "live": False, "batch": 64}
    got = resolve_options(Config(count=2), recorded)
    assert got == {"count": 2, "share": 0.25, "mode": "a", "live": False, "batch": 8}
    assert resolve_options(Config(), None) == {
        "count": 3, "share": 0.5, "mode": "a", "live": None, "batch": 8
    }
    # pure: neither the config nor the record changes
    assert recorded == {"count": 7, "share": 0.25, "live": False, "batch": 64}


def test_grid_config_merges_with_grid_json_through_the_declaration():
    from lossart.format.kinds import CURVE
    from lossart.grid.files import GridMeta
    from lossart.grid.run_grid import DEFAULT_ASPECT, GridConfig, recorded_options

    old = GridMeta(kind=CURVE.name, resolution=(9, 7), x_range=(0.0, 1.0), y_range=(0.0, 1.0),
                   subset=64, split="test", dtype="float32", tile=2, frames=[0], margin=0.3,
                   aspect=None, compile=False)
    got = resolve_options(GridConfig(resolution=(5, 5)), recorded_options(old))
    assert got["resolution"] == (5, 5) and got["split"] == "test" and got["subset"] == 64
    assert got["aspect"] == 0.0  # recorded "hug the points" stays so
    assert got["compile"] is False and got["tile_rows"] == 2 and got["margin"] == 0.3
    fresh = resolve_options(GridConfig(), None)
    assert fresh["resolution"] == (41, 41) and fresh["aspect"] == DEFAULT_ASPECT
    assert fresh["split"] == "train" and fresh["margin"] == 0.2
    # the precision is chosen once per grid: a recorded grid keeps its own unless another is
    # asked (auto asks for nothing new); a new grid's library default is float32
    assert fresh["dtype"] == "float32" and got["dtype"] == "float32"
    assert resolve_options(GridConfig(dtype="auto"), recorded_options(old))["dtype"] == "float32"
    assert resolve_options(GridConfig(dtype="auto"), None)["dtype"] == "auto"
    assert resolve_options(GridConfig(dtype="bfloat16"), recorded_options(old))["dtype"] == "bfloat16"
    # the adaptive criterion: asked, else grid.json's record where it was adaptive, else picture
    assert fresh["adaptive_criterion"] == "picture"
    adaptive = dataclasses.replace(old, adaptive=0.01, adaptive_criterion={"kind": "log10"})
    assert resolve_options(GridConfig(), recorded_options(adaptive))["adaptive_criterion"] == {
        "kind": "log10"
    }


def test_none_only_where_declared_and_counts_are_whole():
    """A field annotated without `| None` refuses None; an int option refuses 2.0 (it would
    reach range() and tensor shapes)."""

    @dataclass
    class Counts:
        steps: int = option(5, help="steps", lo=1)
        maybe: float | None = option(0.5, help="a share or none", lo=0.0)

        def __post_init__(self) -> None:
            check_options(self)

    with pytest.raises(OptionError, match="^steps None: expected a value"):
        Counts(steps=None)
    with pytest.raises(OptionError, match=r"^steps 2.0: expected a whole number >= 1$"):
        Counts(steps=2.0)
    assert Counts(maybe=None).maybe is None


def test_a_prefix_and_a_command_default_for_another_config_flags():
    parser = argparse.ArgumentParser(prog="x", exit_on_error=False)
    add_option_flags(parser, Config, ["count"], prefix="probe-", defaults={"count": 9})
    args = parser.parse_args([])
    assert args.probe_count == 9
    assert options_from_args(Config, parser.parse_args(["--probe-count", "2"]), ["count"],
                             prefix="probe-") == {"count": 2}  # fmt: skip
    action = parser._option_string_actions["--probe-count"]
    assert action.lossart_option == ("Config", "count")
