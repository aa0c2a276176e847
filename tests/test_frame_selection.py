"""A frame selection is one parsed type (lossart.frame_selection): spelled once, checked where it
is typed, picked among the frames a run recorded; "frames" alone is a count."""

from __future__ import annotations

import argparse

import pytest

from lossart.frame_selection import FrameSelection, pick_frames
from lossart.options import OptionError


def test_ranges_and_lists_pick_among_recorded_frames():
    recorded = list(range(30))
    assert FrameSelection.parse("0:600:10").pick(recorded) == [0, 10, 20]
    assert FrameSelection.parse("::7").pick(recorded) == [0, 7, 14, 21, 28]
    assert FrameSelection.parse("25:").pick(recorded) == [25, 26, 27, 28, 29]
    assert FrameSelection.parse("9,3, 3").pick(recorded) == [3, 9]
    assert FrameSelection.parse("4").pick([2, 4, 6]) == [4]
    assert FrameSelection.parse("1:6").pick([0, 2, 4, 6]) == [2, 4]  # only recorded ones
    assert pick_frames([5, 1], None) == [5, 1]  # nothing selected: every recorded frame


@pytest.mark.parametrize("text", ["a", "1:2:3:4", "0:10:0", "0:10:-1", "1,,2", ""])
def test_a_bad_spelling_names_the_field_and_for_the_cli_the_flag(text):
    with pytest.raises(OptionError) as exc:
        FrameSelection.parse(text)
    assert str(exc.value) == f"select_frames {text!r}: expected start:stop:step, i, or i,j,k"
    assert exc.value.for_cli().startswith(f"--select-frames {text!r}: ")


def test_frames_that_are_not_recorded_are_refused_in_one_line():
    with pytest.raises(OptionError, match=r"^select_frames '7': frame 7 is not recorded \(frames 0..2\)$"):
        FrameSelection.parse("7").pick([0, 1, 2])
    with pytest.raises(OptionError, match="^select_frames '50:60': selects none of the recorded frames 0..2$"):
        FrameSelection.parse("50:60").pick([0, 1, 2])


def test_grid_config_parses_text_once_and_the_flag_refuses_bad_text():
    from lossart.cli import build_parser
    from lossart.grid.config import GridConfig

    assert GridConfig(select_frames="0:4:2").select_frames == FrameSelection("0:4:2", 0, 4, 2)
    with pytest.raises(OptionError, match="^select_frames 'x'"):
        GridConfig(select_frames="x")
    parser = build_parser()
    parser.exit_on_error = False
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        parser.parse_args(["grid", "run", "--select-frames", "0:10:0"])
