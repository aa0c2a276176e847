"""`lossart plane A.pt B.pt C.pt --out RUN`: the loss grid in the plane of three optima.

The run folder is of kind "plane3": the three checkpoints are copied to `endpoints/w1.pt .. w3.pt`,
and run.json's `plane3.points` records their plane coordinates (w1 at the origin, w2 on +x, w3
at y > 0). Its grid is frame 0 in the same `grids/` format as a curve run's (the frame file
carries the three points), so terrain and render work unchanged; the window holds the three
points with `margin` on every side (`lossart.grid.planes.plane3_source`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lossart.atomic import atomic_path
from lossart.errors import LossartError
from lossart.format.kinds import PLANE3
from lossart.geometry.plane import plane_through
from lossart.grid.planes import PLANE3_NAMES, flat_optima, plane3_points
from lossart.grid.run_grid import GridConfig, GridSummary, create_then_grid
from lossart.runs import Run, endpoint_records, now_iso, reuse_or_claim, versions
from lossart.training.checkpoint import load_checkpoint


def create_plane_run(paths: list[str | Path], out: str | Path) -> Run:
    """A plane3 run folder holding copies of the three checkpoints (or the same one, resumed)."""
    if len(paths) != 3:
        raise LossartError(f"plane needs three checkpoints, got {len(paths)}")
    paths = [Path(p).resolve() for p in paths]
    first = load_checkpoint(paths[0])
    ckpts = [first] + [load_checkpoint(p, expect_model=first.model) for p in paths[1:]]
    sources = [str(p) for p in paths]
    run, found = reuse_or_claim(
        out, lambda m: m.get("kind") == PLANE3.name and m.get("plane3", {}).get("sources") == sources
    )
    if found:
        return run
    _model, ws = flat_optima(ckpts)
    plane = plane_through(*ws)
    for name, src in zip(PLANE3_NAMES, paths, strict=True):
        with atomic_path(run.endpoints / f"{name}.pt") as tmp:
            shutil.copyfile(src, tmp)
    run.write(
        {
            "kind": PLANE3.name,
            "created": now_iso(),
            "model": first.model.to_dict(),
            "data": first.data.to_dict(),
            "plane3": {"sources": [str(p) for p in paths], "points": plane3_points(plane, ws)},
            "endpoints": endpoint_records(run, PLANE3_NAMES),
            "versions": versions(),
        }
    )
    run.record_command("plane")
    return run


def plane_run(paths: list[str | Path], out: str | Path, cfg: GridConfig) -> GridSummary:
    """Create (or resume) the plane3 run and compute its grid; returns the `GridSummary`."""
    return create_then_grid(out, cfg, lambda: create_plane_run(paths, out))
