"""The grid stage: loss grids in planes of weight space, exact BN, tiled, resumable, many workers.

- `files`: everything under RUN/grids/ (grid.json as `GridMeta`, frame files with each frame's
  plane coordinates as `FrameGrid`/`FrameMeta`, tiles, lock paths); numpy + json only, so that
  later stages read grids without torch. This package imports only it.
- `planes`: which plane each frame of a run uses (`grid_source`, `frame_plane`, `curve_window`).
- `engine`: `GridEngine` evaluates loss and accuracy at points of a plane (per-point on CPU,
  vmap blocks on CUDA), FLOP counting.
- `run_grid`: `grid_run(RUN, GridConfig)`, the `lossart grid` command's library function.
- `adaptive`: the refinement plan (numpy only); `adaptive_run`: `--adaptive TOL`, each frame's
  levels in resumable units.
- `plane3`: `plane_run(A, B, C, OUT, GridConfig)`, the `lossart plane` command's.
- `lock`, `workers`: the lock file, torchrun/shard task division (exact BN, chunked or not:
  `lossart.evaluation.ExactBN`).
"""

from lossart.grid.files import FrameGrid, FrameMeta, GridMeta, list_frame_grids, load_frame_grid

__all__ = ["FrameGrid", "FrameMeta", "GridMeta", "list_frame_grids", "load_frame_grid"]
