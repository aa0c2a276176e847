"""What a curve is and which parameters a direction moves, as plain data (no torch): the
command line builds its flags from these declarations, and commands that never touch torch
(`lossart terrain`) build it too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lossart.options import check_options, option

KINDS = ("bezier", "polychain")
#: Which parameters a direction leaves at zero: "biasbn" (biases and BN, as Li et al.) or None
IGNORE = ("biasbn", None)


@dataclass(frozen=True)
class CurveSpec:
    """Which family of curve, and how many trainable bends it has."""

    kind: str = option("bezier", choices=KINDS, help="bezier (default) or polychain")
    bends: int = option(1, lo=1, hi=64, help="trainable bends (Bezier degree = bends + 1)")

    def __post_init__(self) -> None:
        check_options(self)

    @property
    def num_points(self) -> int:
        """Control points including both endpoints."""
        return self.bends + 2

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bends": self.bends}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CurveSpec:
        return cls(kind=str(d["kind"]), bends=int(d.get("bends", 1)))
