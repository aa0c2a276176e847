"""How much of a run goes into one page: which frames and which grid nodes (decimation).

A page must stay small enough to mail and to open on a phone, so the surface is drawn on a
lattice of grid nodes (every s-th node, the last one always kept) and, where the frames still
do not fit the byte budget, on evenly spaced frames (first and last kept). With the run's grids
the lattice is taken on the measured nodes, so the loss shown on hover is a measured value,
never an interpolated one. What was left out is recorded in the page (`ViewPlan.record`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lossart.errors import LossartError
from lossart.format.presets import DEFAULT_PALETTE, PALETTES

#: Bytes per drawn value: float32 in base64 (plotly's typed-array encoding).
BYTES_PER_VALUE = 4 * 4 / 3


@dataclass(frozen=True)
class ViewConfig:
    """What `lossart view` draws and how much of it."""

    palette: str = DEFAULT_PALETTE  # one of lossart.format.presets.PALETTES (the looks')
    max_side: int = 201  # at most this many nodes along either side of the surface
    min_side: int = 61  # the byte budget thins the lattice down to this, then drops frames
    budget_mb: float = 20.0  # the page's data (plotly.js, about 4.7 MB, comes on top)
    max_frames: int | None = None  # at most this many frames (evenly spaced); None: the budget's
    losses: bool = True  # read the losses from the run's grids where there are any
    show_evaluated: bool = False  # an adaptive grid's evaluated points shown at open

    def validate(self) -> ViewConfig:
        if self.palette not in PALETTES:
            raise LossartError(
                f"palette (--palette) {self.palette!r}: choose one of {', '.join(PALETTES)}"
            )
        if not 2 <= self.min_side <= self.max_side:
            raise LossartError(
                f"max_side (--max-side) {self.max_side}: expected at least min_side "
                f"{self.min_side} (and min_side at least 2)"
            )
        if not (math.isfinite(self.budget_mb) and self.budget_mb > 0):
            raise LossartError(f"budget_mb (--budget-mb) {self.budget_mb}: expected > 0")
        if self.max_frames is not None and self.max_frames < 1:
            raise LossartError(f"max_frames (--max-frames) {self.max_frames}: expected >= 1")
        return self


@dataclass(frozen=True)
class ViewPlan:
    """The frames and nodes a page holds, and what they were taken from."""

    positions: list[int]  # bundle frame positions shown, ascending
    total_frames: int
    rows: np.ndarray  # bundle row indices of the lattice
    cols: np.ndarray  # bundle column indices
    base: int  # bundle nodes per measured node (the bundle's upsample with losses, else 1)
    step: int  # measured (or bundle) nodes per lattice node
    nodes: tuple[int, int]  # (W, H) of what the lattice is taken from
    estimate_bytes: int
    budget_bytes: int

    @property
    def shape(self) -> tuple[int, int]:
        """(W, H) of the drawn lattice."""
        return len(self.cols), len(self.rows)

    def record(self) -> dict[str, Any]:
        w, h = self.shape
        return {
            "frames_shown": len(self.positions),
            "frames_total": self.total_frames,
            "positions": list(self.positions),
            "lattice": [w, h],
            "nodes": list(self.nodes),
            "node_step": self.step,
            "data_bytes_estimate": self.estimate_bytes,
            "data_budget_bytes": self.budget_bytes,
        }

    def note(self) -> str:
        w, h = self.shape
        frames = f"{len(self.positions)} of {self.total_frames} frames"
        if len(self.positions) < self.total_frames:
            frames += " (evenly spaced, first and last kept)"
        every = "every node" if self.step == 1 else f"every {self.step}th node, the last kept"
        return f"shown: {frames}; surface {w}x{h} of {self.nodes[0]}x{self.nodes[1]} nodes ({every})"


def lattice(count: int, stride: int) -> np.ndarray:
    """Indices 0, stride, 2*stride, ... of `count`, with the last index always kept."""
    idx = np.arange(0, count, stride)
    if idx[-1] != count - 1:
        idx = np.append(idx, count - 1)
    return idx


def spread(total: int, keep: int) -> list[int]:
    """`keep` evenly spaced positions of `total`, first and last among them."""
    if keep >= total:
        return list(range(total))
    return sorted({int(round(v)) for v in np.linspace(0, total - 1, max(keep, 2))})


def plan_view(
    width: int,
    height: int,
    frames: int,
    config: ViewConfig,
    upsample: int = 1,
    losses: bool = False,
    surfaces_change: bool = True,
    extra_values: int = 0,
) -> ViewPlan:
    """The lattice and frames for a bundle of `frames` frames of `width`x`height` nodes.

    `losses`: the lattice sits on the measured nodes (every `upsample`-th bundle node) and each
    node carries loss and accuracy; `surfaces_change`: every frame has its own heights (False for
    a trajectory, whose frames only grow the path); `extra_values`: values each frame draws
    besides the surface and the map (path, evaluated points)."""
    base = upsample if losses else 1
    nodes = ((width - 1) // base + 1, (height - 1) // base + 1)
    per_node = (2 + (4 if losses else 0)) * BYTES_PER_VALUE  # surface + map z (+ loss, acc each)
    budget = int(config.budget_mb * 1e6)

    def fits_side(step: int) -> int:
        return max(math.ceil((n - 1) / step) + 1 for n in nodes)

    step = 1
    while fits_side(step) > config.max_side:
        step += 1
    positions = spread(frames, config.max_frames or frames)

    def estimate(step: int, shown: int) -> int:
        w = math.ceil((nodes[0] - 1) / step) + 1
        h = math.ceil((nodes[1] - 1) / step) + 1
        surface = w * h * per_node * (shown if surfaces_change else 1)
        return int(surface + extra_values * BYTES_PER_VALUE * shown)

    while estimate(step, len(positions)) > budget:
        if fits_side(step + 1) >= config.min_side and fits_side(step + 1) < fits_side(step):
            step += 1
        elif len(positions) > 2:
            positions = spread(frames, max(2, int(len(positions) * 0.8)))
        else:
            break
    return ViewPlan(
        positions=positions,
        total_frames=frames,
        rows=lattice(nodes[1], step) * base,
        cols=lattice(nodes[0], step) * base,
        base=base,
        step=step,
        nodes=nodes,
        estimate_bytes=estimate(step, len(positions)),
        budget_bytes=budget,
    )
