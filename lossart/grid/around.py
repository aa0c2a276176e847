"""`lossart plane --around A.pt --out RUN`: the loss grid in a plane around one network.

Li et al. 2018 (the default, `directions="random"`): two seeded filter-normalized Gaussian
directions (`lossart.geometry.directions`) span the plane through the checkpoint, and the window
is [-span, span]² in units of them. `directions="hessian"`: the top two eigenvectors of the
training loss's Hessian there (lossart.curvature); `"hessian-min"`: the top one against the most
negative one. Eigenvectors are scaled to the length every filter-normalized direction has (|w|
over the moved parameters), so a span means the same distance in weight space in both kinds
(docs/curvature.md). The Hessian result is computed once into RUN/hessian/ (or copied from a
matching `lossart hessian A.pt` result beside the checkpoint) and the grid stage reads it there.

The run folder is of kind "around": the checkpoint is copied to `endpoints/w.pt`, and run.json's
`around` records its source (path and sha256), the seed, the span and `ignore` ("biasbn": bias
and BN directions zeroed; None: kept), and for Hessian planes `directions` and `hessian` (the
settings and eigenvalues; runs without them are random planes, as before). Its grid is frame 0 in the usual `grids/` format with one named
point, `w` at (0, 0), so resume, shards, terrain and render work as for `lossart plane`.
The window is not stretched to 16:9 unless `--aspect` is given (then it is widened to it).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from lossart.atomic import atomic_path
from lossart.curvature import HessianConfig, hessian_at
from lossart.curvature.files import file_sha256, find_result, write_result
from lossart.errors import LossartError
from lossart.format.kinds import AROUND
from lossart.geometry.directions import IGNORE, centred_window
from lossart.grid.config import DIRECTIONS, MAX_SPAN, AroundPlane  # noqa: F401  (importable here)
from lossart.grid.planes import AROUND_NAME
from lossart.grid.run_grid import GridConfig, GridSummary, create_then_grid
from lossart.runs import Run, endpoint_records, now_iso, reuse_or_claim, versions
from lossart.training.checkpoint import load_checkpoint


def create_around_run(
    checkpoint: str | Path,
    out: str | Path,
    seed: int = 0,
    span: float = 1.0,
    ignore: str | None = "biasbn",
    directions: str = "random",
    hessian: HessianConfig | None = None,
) -> Run:
    """An around run folder holding a copy of the checkpoint (or the same run, resumed).

    Hessian directions: `hessian` gives the subset and Lanczos settings (its `ignore` follows
    `ignore`; k = 2, and the smallest eigenvalue for "hessian-min").
    """
    if ignore not in IGNORE:
        raise LossartError(f"ignore={ignore!r}: expected 'biasbn' or None")
    if span is None or directions is None:
        raise LossartError("span and directions: expected values, not None")
    AroundPlane(seed, span, directions)
    centred_window(span)
    path = Path(checkpoint).resolve()
    ckpt = load_checkpoint(path)
    sha = file_sha256(path)
    record = {
        "source": str(path),
        "sha256": sha,
        "seed": int(seed),
        "span": float(span),
        "ignore": ignore,
    }
    cfg = None
    if directions != "random":  # random runs keep the record they always had (old runs resume)
        # the plane needs the eigenpairs only: a stored result with a trace (etc.) serves too
        cfg = dataclasses.replace(hessian or HessianConfig(), k=2, ignore=ignore,
                                  smallest=directions == "hessian-min", trace_samples=0,
                                  per_layer=False, density=False).check()  # fmt: skip
        record["directions"] = directions
        record["hessian"] = cfg.key()

    def same(meta: dict) -> bool:
        have = dict(meta.get("around") or {})
        have.pop("eigenvalues", None)
        return meta.get("kind") == AROUND.name and have == record

    run, found = reuse_or_claim(out, same, "checkpoint, --seed, --span, --keep-bn or --directions")
    if found:
        return run
    with atomic_path(run.endpoints / f"{AROUND_NAME}.pt") as tmp:
        shutil.copyfile(path, tmp)
    if cfg is not None:
        result = find_result(path, cfg, sha256=sha) or hessian_at(path, cfg)
        write_result(result, run.endpoints / f"{AROUND_NAME}.pt", run.root / "hessian")
        record["eigenvalues"] = {"top": result.eigenvalues, "smallest": result.smallest,
                                 "trace": result.trace}  # fmt: skip
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
    directions: str = "random",
    hessian: HessianConfig | None = None,
) -> GridSummary:
    """Create (or resume) the around run and compute its grid; returns the `GridSummary`.

    `cfg.aspect` None means no stretching here (the window stays [-span, span]²).
    """
    if cfg.aspect is None:
        cfg = dataclasses.replace(cfg, aspect=0.0)
    return create_then_grid(
        out, cfg, lambda: create_around_run(checkpoint, out, seed, span, ignore, directions, hessian)
    )
