"""Tiles and assembled frame grids on disk: the unit of resumable, shareable grid work.

```
RUN/grids/grid.json                          the grid spec (resolution, window, subset, tiles...)
RUN/grids/tiles/frame_00000/tile_00003.npz   loss, accuracy [rows, W] of rows start..stop-1
RUN/grids/frame_00000.npz                    loss, accuracy [H, W] float32, xs [W], ys [H] float64
```

A tile is a band of consecutive grid rows. Every file is written atomically, so a file that exists
is complete: a rerun after any interruption (kill -9 included) skips the tiles present and
computes the rest, and the assembled grid is the same array an uninterrupted run writes (each
point's value depends on nothing but its coordinates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lossart.atomic import np_savez
from lossart.errors import LossartError
from lossart.runs import Run


@dataclass(frozen=True)
class TileLayout:
    """A W×H grid cut into bands of `rows` rows (the last band may be shorter)."""

    width: int
    height: int
    rows: int

    @property
    def count(self) -> int:
        return -(-self.height // self.rows)

    def rows_of(self, tile: int) -> tuple[int, int]:
        start = tile * self.rows
        return start, min(self.height, start + self.rows)

    def points_of(self, tile: int) -> int:
        start, stop = self.rows_of(tile)
        return (stop - start) * self.width


def default_tile_rows(width: int, height: int, target_points: int = 256) -> int:
    """Rows per tile so that a tile holds about `target_points` points (at least one row).

    Small enough that an interruption loses little, large enough that a GPU launch block fits.
    """
    return max(1, min(height, -(-target_points // width)))


def frame_grid_path(grids: Path, index: int) -> Path:
    return grids / f"frame_{index:05d}.npz"


def tile_dir(grids: Path, index: int) -> Path:
    return grids / "tiles" / f"frame_{index:05d}"


def tile_path(grids: Path, index: int, tile: int) -> Path:
    return tile_dir(grids, index) / f"tile_{tile:05d}.npz"


def write_tile(path: Path, loss: np.ndarray, accuracy: np.ndarray, rows: tuple[int, int]) -> None:
    np_savez(
        path,
        loss=np.asarray(loss, dtype=np.float32),
        accuracy=np.asarray(accuracy, dtype=np.float32),
        rows=np.asarray(rows, dtype=np.int64),
    )


def read_tile(path: Path, layout: TileLayout, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """A tile's loss and accuracy bands, checked against the layout."""
    start, stop = layout.rows_of(tile)
    shape = (stop - start, layout.width)
    try:
        with np.load(path) as z:
            loss, acc, rows = z["loss"], z["accuracy"], tuple(int(r) for r in z["rows"])
    except (OSError, KeyError, ValueError) as exc:
        raise LossartError(
            f"{path}: unreadable grid tile ({type(exc).__name__}); delete it and rerun"
        ) from None
    if loss.shape != shape or acc.shape != shape or rows != (start, stop):
        raise LossartError(
            f"{path}: tile holds rows {rows} shape {loss.shape}, "
            f"expected rows {(start, stop)} shape {shape}"
        )
    return loss, acc


def assemble_frame(
    grids: Path, index: int, layout: TileLayout, xs: np.ndarray, ys: np.ndarray
) -> Path | None:
    """Write `frame_XXXXX.npz` from its tiles if all are present; None if some are missing."""
    paths = [tile_path(grids, index, k) for k in range(layout.count)]
    if not all(p.is_file() for p in paths):
        return None
    loss = np.empty((layout.height, layout.width), dtype=np.float32)
    acc = np.empty((layout.height, layout.width), dtype=np.float32)
    for k, p in enumerate(paths):
        start, stop = layout.rows_of(k)
        loss[start:stop], acc[start:stop] = read_tile(p, layout, k)
    out = frame_grid_path(grids, index)
    np_savez(
        out, loss=loss, accuracy=acc, xs=np.asarray(xs, np.float64), ys=np.asarray(ys, np.float64)
    )
    return out


@dataclass(frozen=True)
class FrameGrid:
    """One frame's assembled grid: row i <-> ys[i] (ascending), column j <-> xs[j]."""

    index: int
    loss: np.ndarray  # float32 [H, W]
    accuracy: np.ndarray  # float32 [H, W]
    xs: np.ndarray  # float64 [W]
    ys: np.ndarray  # float64 [H]


def load_frame_grid(run: Run, index: int) -> FrameGrid:
    """The assembled grid of frame `index` (what the terrain area reads)."""
    path = frame_grid_path(run.grids, index)
    if not path.is_file():
        have = list_frame_grids(run)
        hint = f"frames with grids: {have[:10]}" if have else "no frame has a grid yet"
        raise LossartError(f"{path}: no grid for frame {index} ({hint}; run `lossart grid`)")
    try:
        with np.load(path) as z:
            grid = FrameGrid(index, z["loss"], z["accuracy"], z["xs"], z["ys"])
    except (OSError, KeyError, ValueError) as exc:
        raise LossartError(f"{path}: not a lossart frame grid ({type(exc).__name__})") from None
    h, w = len(grid.ys), len(grid.xs)
    if grid.loss.shape != (h, w) or grid.accuracy.shape != (h, w):
        raise LossartError(f"{path}: loss shape {grid.loss.shape} does not match ys×xs {(h, w)}")
    return grid


def list_frame_grids(run: Run) -> list[int]:
    """Indices of the frames whose grid is assembled, ascending."""
    out = []
    for p in run.grids.glob("frame_*.npz"):
        m = re.fullmatch(r"frame_(\d+)\.npz", p.name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)
