"""Compute flags mean one thing in every command: --device, --frames / --select-frames,
--resolution; old spellings still work for one release, with a note on stderr."""

from __future__ import annotations

import pytest
import torch

from lossart.cli import build_parser
from lossart.devices import DEVICE_CHOICES, pick_device, resolve_device
from lossart.errors import LossartError

COMPUTE = {
    "train": ["--out", "a.pt"],
    "curve": ["a.pt", "b.pt", "--out", "run"],
    "eval-curve": ["run"],
    "grid": ["run"],
    "plane": ["a.pt", "b.pt", "c.pt", "--out", "run"],
    "ensemble": ["run"],
    "functions": ["run"],
}


def _help(command: str) -> str:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[command].format_help()


@pytest.mark.parametrize("command", sorted(COMPUTE))
def test_device_help_lists_what_the_engine_accepts(command):
    text = " ".join(_help(command).split())
    assert DEVICE_CHOICES in text and "mps" not in text.lower()
    args = build_parser().parse_args([command, *COMPUTE[command]])
    assert args.device == "cpu"


def test_one_device_meaning():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto").type == pick_device("auto")
    for bad in ("mps", "tpu7"):
        with pytest.raises(LossartError, match=f"--device '{bad}': expected cpu, cuda, cuda:N"):
            pick_device(bad)


@pytest.mark.parametrize("command, args", [("grid", ["run"]), ("terrain", ["run"])])
def test_select_frames_and_the_old_spelling(command, args, capsys):
    from lossart.frame_selection import FrameSelection

    new = build_parser().parse_args([command, *args, "--select-frames", "0:10:2"])
    assert new.select_frames == FrameSelection.parse("0:10:2")  # parsed once, at the flag
    assert capsys.readouterr().err == ""
    old = build_parser().parse_args([command, *args, "--frames", "3,5"])
    assert old.select_frames == FrameSelection.parse("3,5")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--frames is now --select-frames" in err[0]
    assert "--select-frames" in _help(command) and "--frames" not in _help(command)


def test_curve_frames_is_a_count():
    args = build_parser().parse_args(["curve", *COMPUTE["curve"], "--frames", "7"])
    assert args.frames == 7
    with pytest.raises(SystemExit):
        build_parser().parse_args(["curve", *COMPUTE["curve"], "--frames", "0:4"])


@pytest.mark.parametrize("command", ["grid", "plane", "functions"])
def test_resolution_is_n_or_wxh_everywhere(command):
    from lossart.grid.config import parse_resolution
    from lossart.options import OptionError

    for text, expected in (("9", (9, 9)), ("12x7", (12, 7))):
        args = build_parser().parse_args([command, *COMPUTE[command], "--resolution", text])
        assert args.resolution == expected  # parsed by the flag's type, the one parser
    with pytest.raises(OptionError, match="^resolution '1x9': expected at least 2") as exc:
        parse_resolution("1x9")  # the library names the field; the CLI the flag
    assert exc.value.for_cli().startswith("--resolution '1x9'")
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, *COMPUTE[command], "--resolution", "1x9"])
