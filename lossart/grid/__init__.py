"""The grid engine: loss grids in planes of weight space, exact BN, tiled, resumable, many workers.

- `engine`: `GridEngine` evaluates loss and accuracy at points of a plane (per-point on CPU,
  vmap blocks on CUDA), FLOP counting.
- `tiles`: tiles and assembled frame grids on disk; `load_frame_grid` (what terrain reads).
- `run_grid`: `grid_run(RUN, GridConfig)`, the `lossart grid` command's library function.
- `plane3`: `plane_run(A, B, C, OUT, GridConfig)`, the `lossart plane` command's.
- `lock`, `workers`: the lock file, torchrun/shard task division (exact BN, chunked or not:
  `lossart.evaluation.ExactBN`).
"""

from lossart.grid.tiles import FrameGrid, list_frame_grids, load_frame_grid

__all__ = ["FrameGrid", "list_frame_grids", "load_frame_grid"]
