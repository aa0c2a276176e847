"""`lossart plane --around A.pt --out RUN`: the loss grid in a random plane around one network.

Li et al. 2018: two seeded filter-normalized Gaussian directions (`lossart.geometry.directions`)
span the plane through the checkpoint, and the window is [-span, span]² in units of them. The run
folder is of kind "around": the checkpoint is copied to `endpoints/w.pt`, and run.json's `around`
records its source (path and sha256), the seed, the span and `ignore` ("biasbn": bias and BN
directions zeroed; None: kept). Its grid is frame 0 in the usual `grids/` format with one named
point, `w` at (0, 0), so resume, shards, terrain and render work as for `lossart plane`.
The window is not stretched to 16:9 unless `--aspect` is given (then it is widened to it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

from lossart.atomic import atomic_path
from lossart.checks import check_number
from lossart.errors import LossartError
from lossart.format.kinds import AROUND
from lossart.geometry.directions import IGNORE, centred_window
from lossart.grid.planes import AROUND_NAME
from lossart.grid.run_grid import GridConfig, GridSummary, create_then_grid
from lossart.runs import Run, endpoint_records, now_iso, reuse_or_claim, versions
from lossart.training.checkpoint import load_checkpoint


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


MAX_SPAN = 1000.0

def create_around_run(
    checkpoint: str | Path,
    out: str | Path,
    seed: int = 0,
    span: float = 1.0,
    ignore: str | None = "biasbn",
) -> Run:
    """An around run folder holding a copy of the checkpoint (or the same run, resumed)."""
    if ignore not in IGNORE:
        raise LossartError(f"ignore={ignore!r}: expected 'biasbn' or None")
    # beyond this many direction units the weights are noise (Li et al. draw span 1), and at
    # 1e30 they overflow float32: NaN losses everywhere, silently
    check_number("--span", span, 0.0, MAX_SPAN, lo_open=True, optional=False)
    centred_window(span)
    path = Path(checkpoint).resolve()
    ckpt = load_checkpoint(path)
    record = {
        "source": str(path),
        "sha256": file_sha256(path),
        "seed": int(seed),
        "span": float(span),
        "ignore": ignore,
    }
    run, found = reuse_or_claim(
        out, lambda m: m.get("kind") == AROUND.name and m.get("around") == record,
        "checkpoint, --seed, --span or --keep-bn",
    )
    if found:
        return run
    with atomic_path(run.endpoints / f"{AROUND_NAME}.pt") as tmp:
        shutil.copyfile(path, tmp)
    run.write(
        {
            "kind": AROUND.name,
            "created": now_iso(),
            "model": ckpt.model.to_dict(),
            "data": ckpt.data.to_dict(),
            "around": record,
            "endpoints": endpoint_records(run, (AROUND_NAME,)),
            "versions": versions(),
        }
    )
    run.record_command("plane")
    return run


def around_run(
    checkpoint: str | Path,
    out: str | Path,
    cfg: GridConfig,
    seed: int = 0,
    span: float = 1.0,
    ignore: str | None = "biasbn",
) -> GridSummary:
    """Create (or resume) the around run and compute its grid; returns the `GridSummary`.

    `cfg.aspect` None means no stretching here (the window stays [-span, span]²).
    """
    if cfg.aspect is None:
        cfg = dataclasses.replace(cfg, aspect=0.0)
    return create_then_grid(out, cfg, lambda: create_around_run(checkpoint, out, seed, span, ignore))
