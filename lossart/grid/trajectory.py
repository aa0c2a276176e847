"""`lossart trajectory CKPT --out RUN`: the loss grid in the plane of a training trajectory.

Li et al. 2018's trajectory plot for any checkpoint trained with `lossart train --snapshots N`:
the first two principal directions of the snapshots relative to the final weights
(`lossart.geometry.trajectory`) span a plane through the final weights, every snapshot is drawn
at its projection, and the grid is evaluated there with exact BN like any other run. The run
folder is of kind "trajectory": the final checkpoint is copied to `endpoints/w.pt`, the plane to
`trajectory/plane.pt` (`lossart.grid.trajectory_files`), and run.json's `trajectory` records the
source (path, sha256), the PCA settings, the variance share of each direction and every
snapshot's coordinates. Its grid is frame 0 in the usual `grids/` format, the projected
snapshots as its control points, so `lossart grid`, `terrain` and `render` work on it unchanged;
the window holds the whole trajectory plus `--margin`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lossart.atomic import atomic_path
from lossart.errors import LossartError
from lossart.format.kinds import TRAJECTORY
from lossart.geometry.trajectory import filter_mask, trajectory_plane
from lossart.geometry.weights import ParamLayout
from lossart.grid.around import file_sha256
from lossart.grid.config import TrajectoryConfig  # noqa: F401  (importable from here)
from lossart.grid.planes import flat_optima
from lossart.grid.run_grid import GridConfig, GridSummary, create_then_grid
from lossart.grid.trajectory_files import FINAL_NAME, write_plane_file
from lossart.runs import Run, now_iso, reuse_or_claim, versions
from lossart.training.checkpoint import load_checkpoint
from lossart.training.snapshots import load_snapshots


def trajectory_record(run: Run) -> dict[str, Any]:
    """run.json's `trajectory` section of an existing trajectory run."""
    meta = run.read()
    if meta.get("kind") != TRAJECTORY.name:
        raise LossartError(f"{run.root}: not a trajectory run (kind {meta.get('kind')!r})")
    return meta["trajectory"]


def create_trajectory_run(
    checkpoint: str | Path, out: str | Path, config: TrajectoryConfig | None = None
) -> Run:
    """The trajectory run folder for a checkpoint with snapshots (or the same run, resumed)."""
    config = config or TrajectoryConfig()
    path = Path(checkpoint).resolve()
    ckpt = load_checkpoint(path)
    wanted = {
        "source": str(path),
        "sha256": file_sha256(path),
        "components": int(config.components),
        "ignore": config.ignore,
        "centred": bool(config.centre),
    }
    def same(meta: dict) -> bool:
        record = meta.get("trajectory") or {}
        return meta.get("kind") == TRAJECTORY.name and all(record.get(k) == v
                                                         for k, v in wanted.items())

    run, found = reuse_or_claim(out, same, "checkpoint, --components, --keep-bn or --no-centre")
    if found:
        return run
    snaps = load_snapshots(path, ckpt)
    model, (final,) = flat_optima([ckpt])
    if snaps.params.shape[1] != final.numel():
        raise LossartError(
            f"{snaps.folder}: snapshots have {snaps.params.shape[1]} parameters, the checkpoint "
            f"{final.numel()}"
        )
    mask = filter_mask(ParamLayout.of(model), config.ignore)
    tp = trajectory_plane(snaps.params, final, config.components, mask, config.centre)
    records = [r.to_dict() for r in snaps.records]
    with atomic_path(run.endpoints / f"{FINAL_NAME}.pt") as tmp:
        shutil.copyfile(path, tmp)
    write_plane_file(run, tp, records)
    run.write(
        {
            "kind": TRAJECTORY.name,
            "created": now_iso(),
            "model": ckpt.model.to_dict(),
            "data": ckpt.data.to_dict(),
            "trajectory": {
                **wanted,
                "snapshots": len(records),
                "explained": [float(v) for v in tp.explained],
                "explained_plane": tp.explained_plane,
                "points": [[float(x), float(y)] for x, y in tp.coords],
                "distance": [float(d) for d in tp.distance],
                "records": records,
            },
            "versions": versions(),
        }
    )
    run.record_command("trajectory")
    return run


@dataclass
class TrajectoryResult:
    """What `trajectory_run` made: the run's PCA summary and the grid it computed."""

    run: Run
    explained: list[float]
    points: list[list[float]]
    grid: GridSummary

    def summary(self) -> str:
        shares = ", ".join(f"PC{k + 1} {v:.1%}" for k, v in enumerate(self.explained))
        return (
            f"{self.run.root}: {len(self.points)} snapshots; variance explained: {shares} "
            f"(the plane: {sum(self.explained[:2]):.1%})"
        )


def trajectory_run(
    checkpoint: str | Path,
    out: str | Path,
    cfg: GridConfig,
    config: TrajectoryConfig | None = None,
) -> TrajectoryResult:
    """Create (or resume) the trajectory run and compute its grid (torchrun- and shard-aware)."""
    summary = create_then_grid(out, cfg, lambda: create_trajectory_run(checkpoint, out, config))
    record = trajectory_record(Run(Path(out)))
    return TrajectoryResult(Run(Path(out)), record["explained"], record["points"], summary)
