"""The Hessian result files (their one home): what `lossart hessian` writes and planes reuse.

```
A.hessian.json   beside checkpoint A.pt (or DIR/hessian.json with --out DIR):
                 {"format": "lossart-hessian", "format_version": 1, "created", "source":
                  {"path", "sha256"}, **HessianResult.to_dict()}  (eigenvalues, residuals,
                  smallest, trace ± stderr, per_layer, density, seconds, config, ...)
A.hessian.pt     {"format": "lossart-hessian-vectors", "format_version": 1,
                  "vectors": float32 [k (+1: the smallest), P] unit eigenvectors, "sha256"}
A.hessian.png    the spectral density (only with --density)
```

A stored result is reused (`find_result`) when it was computed at the same checkpoint (sha256)
with the same settings (`HessianConfig.key`) and holds what is asked for.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from lossart.atomic import atomic_path, torch_save, write_json
from lossart.checks import output_dir
from lossart.curvature.hessian import HessianConfig, HessianResult, LayerTop, hessian_at
from lossart.curvature.lanczos import Density
from lossart.errors import LossartError
from lossart.runs import now_iso
from lossart.training.checkpoint import read_torch_file

FORMAT = "lossart-hessian"
VECTORS_FORMAT = "lossart-hessian-vectors"
VERSION = 1
#: Settings that make the eigenpairs: a stored result must share them all to be reused.
EIGEN_KEYS = ("subset", "subset_seed", "ignore", "steps", "tol", "dtype", "seed")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def result_paths(checkpoint: str | Path, out: str | Path | None = None) -> dict[str, Path]:
    """json, pt and png paths: beside the checkpoint (A.hessian.*) or inside folder `out`."""
    if out is not None:
        base = Path(out) / "hessian"
    else:
        path = Path(checkpoint)
        base = path.with_name(path.stem + ".hessian")
    return {ext: base.with_name(base.name + "." + ext) for ext in ("json", "pt", "png")}


def write_result(
    result: HessianResult, checkpoint: str | Path, out: str | Path | None = None
) -> dict[str, Path]:
    """Write the result files (atomically; vectors first, so a json always has its vectors)."""
    paths = result_paths(checkpoint, out)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    sha = file_sha256(Path(checkpoint))
    torch_save(
        {"format": VECTORS_FORMAT, "format_version": VERSION, "sha256": sha,
         "vectors": result.vectors.float().cpu().clone()},
        paths["pt"],
    )  # fmt: skip
    record = {
        "format": FORMAT,
        "format_version": VERSION,
        "created": now_iso(),
        "source": {"path": str(Path(checkpoint).resolve()), "sha256": sha},
        **result.to_dict(),
    }
    write_json(paths["json"], record)
    written = {"json": paths["json"], "pt": paths["pt"]}
    if result.density is not None:
        plot_density(result, paths["png"])
        written["png"] = paths["png"]
    return written


def read_result(json_path: Path) -> tuple[dict[str, Any], HessianResult]:
    """The stored record and the result with its vectors (one-line errors)."""
    try:
        record = json.loads(Path(json_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LossartError(f"{json_path}: cannot read a Hessian result ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise LossartError(f"{json_path}: not a lossart Hessian result")
    if int(record.get("format_version", 0)) > VERSION:
        raise LossartError(f"{json_path}: written by a newer lossart; update lossart")
    pt = json_path.with_suffix(".pt")
    blob = read_torch_file(pt, "lossart Hessian vectors")
    if not isinstance(blob, dict) or blob.get("format") != VECTORS_FORMAT:
        raise LossartError(f"{pt}: not lossart Hessian vectors")
    if blob.get("sha256") != record["source"]["sha256"]:
        raise LossartError(f"{pt}: belongs to another result than {json_path.name}")
    fields = {k: record[k] for k in HessianResult.__dataclass_fields__ if k in record}
    fields["per_layer"] = [LayerTop(**d) for d in record.get("per_layer") or []]
    fields["density"] = Density(**record["density"]) if record.get("density") else None
    fields["vectors"] = blob["vectors"].float()
    return record, HessianResult(**fields)


def find_result(
    checkpoint: str | Path,
    config: HessianConfig,
    out: str | Path | None = None,
    sha256: str | None = None,
) -> HessianResult | None:
    """A stored result for this checkpoint and these settings (or one asking for more), else None.

    A result with a larger k, the smallest eigenvalue, per-layer tops or a density that are not
    asked for serves too; what is asked for must have been computed with the same settings.
    """
    paths = result_paths(checkpoint, out)
    if not paths["json"].is_file() or not paths["pt"].is_file():
        return None
    try:
        record, result = read_result(paths["json"])
    except LossartError:
        return None
    sha = sha256 or file_sha256(Path(checkpoint))
    if record["source"].get("sha256") != sha:
        return None
    have, want = dict(result.config), config.key()
    if have.get("k", 0) < want["k"] or (want["smallest"] and not have.get("smallest")):
        return None
    # the eigenpairs' settings must match; extras (trace, per layer, density) only where asked
    for name in EIGEN_KEYS:
        if have.get(name) != want[name]:
            return None
    if want["trace_samples"] and have.get("trace_samples") != want["trace_samples"]:
        return None
    if want["per_layer"] and not (have.get("per_layer")
                                  and have.get("layer_steps") == want["layer_steps"]):
        return None
    if want["density"] and any(have.get(n) != want[n] for n in ("density", "density_probes",
                                                                 "density_steps")):
        return None
    return result


def plot_density(result: HessianResult, path: Path) -> None:
    """The spectral density on a log scale, the top eigenvalues marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dens = result.density
    nodes = np.concatenate([np.asarray(n) for n in dens.nodes])
    lo, hi = float(nodes.min()), float(nodes.max())
    span = max(hi - lo, 1e-12)
    grid = np.linspace(lo - 0.05 * span, hi + 0.05 * span, 2000)
    curve = dens.curve(grid, sigma=0.01 * span)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.semilogy(grid, np.maximum(curve, 1e-12), color="tab:blue")
    for i, lam in enumerate(result.eigenvalues):
        ax.axvline(lam, color="tab:red", lw=0.8, ls="--", label="top eigenvalues" if i == 0 else None)
    ax.set(xlabel="eigenvalue", ylabel="density (log)",
           title=f"Hessian spectral density (SLQ, {len(dens.nodes)} probes)")  # fmt: skip
    ax.set_ylim(max(float(curve.max()) * 1e-8, 1e-12), float(curve.max()) * 3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def hessian_files(
    checkpoint: str | Path,
    config: HessianConfig | None = None,
    out: str | Path | None = None,
    reuse: bool = True,
    show_progress: bool = True,
) -> tuple[HessianResult, dict[str, Path], bool]:
    """`lossart hessian`: the result for a checkpoint, reused if stored (`find_result`), else
    computed (`hessian_at`) and written; returns (result, paths, reused)."""
    cfg = (config or HessianConfig()).check()
    path = Path(checkpoint)
    if not path.is_file():
        raise LossartError(f"{path}: no such checkpoint")
    output_dir(out if out is not None else path.parent)  # before any work: a file, unwritable
    if reuse:
        found = find_result(path, cfg, out)
        if found is not None:
            paths = {k: v for k, v in result_paths(path, out).items() if v.is_file()}
            return found, paths, True
    result = hessian_at(path, cfg, show_progress)
    return result, write_result(result, path, out), False
