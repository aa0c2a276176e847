"""Which recorded frames a stage takes (`lossart grid` and `terrain`, `--select-frames`): one
parsed type, so "frames" can mean a count everywhere else (`lossart curve --frames N`).

`FrameSelection.parse("0:600:10")` checks the spelling once, where it is typed;
`selection.pick(available)` chooses among the frames a run recorded and refuses, in one line,
a frame that is not there or a selection that picks none. Errors name the field
(`select_frames`); the CLI names the flag. No torch, no numpy: this is the core layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from lossart.options import OptionError

FIELD, FLAG = "select_frames", "--select-frames"
SPELLING = "expected start:stop:step, i, or i,j,k"


def _error(text: str, problem: str) -> OptionError:
    return OptionError(FIELD, text, problem, FLAG)


@dataclass(frozen=True)
class FrameSelection:
    """A range of frame indices (`start:stop:step`, any part left out: the first recorded frame,
    past the last, 1), or the listed indices (`i` or `i,j,k`), each of which must be recorded."""

    text: str
    start: int = 0
    stop: int | None = None
    step: int = 1
    listed: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, text: str | FrameSelection) -> FrameSelection:
        """The selection spelled by `text`; an OptionError naming the field if it is not one."""
        if isinstance(text, FrameSelection):
            return text
        try:
            if ":" not in text:
                return cls(text, listed=tuple(int(p) for p in text.split(",")))
            parts = [p.strip() for p in text.split(":")]
            if len(parts) > 3:
                raise ValueError
            numbers = [int(p) if p else None for p in parts] + [None] * (3 - len(parts))
            start, stop, step = numbers
            if step is not None and step <= 0:
                raise ValueError
            return cls(text, start or 0, stop, step or 1)
        except (ValueError, TypeError, AttributeError):
            raise _error(text, SPELLING) from None

    def __str__(self) -> str:
        """As the command line spells it (the flag's text)."""
        return self.text

    def pick(self, available: list[int]) -> list[int]:
        """The selected frames among `available` (the run's recorded ones), sorted."""
        have = set(available)
        span = f"{min(available)}..{max(available)}" if available else "none"
        if self.listed is not None:
            missing = [i for i in self.listed if i not in have]
            if missing:
                raise _error(self.text, f"frame {missing[0]} is not recorded (frames {span})")
            chosen = list(self.listed)
        else:
            stop = self.stop if self.stop is not None else max(available, default=-1) + 1
            chosen = [i for i in range(self.start, stop, self.step) if i in have]
        if not chosen:
            raise _error(self.text, f"selects none of the recorded frames {span}")
        return sorted(set(chosen))


def pick_frames(available: list[int], selection: str | FrameSelection | None) -> list[int]:
    """`available` when nothing is selected, else the selection's pick among them."""
    if selection is None:
        return list(available)
    return FrameSelection.parse(selection).pick(available)
