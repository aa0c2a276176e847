"""Options declared once (lossart.options): the declaration makes the flags, the validation and
the merge with what a run recorded."""

from __future__ import annotations

import argparse
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
    assert fresh["dtype"] is None  # the precision is resolved once per grid, not merged here
