"""Quick-look maps of a bundle without Blender: one PNG per frame (matplotlib, Agg).

Colormap over the bundle's one height range (frames compare directly), contour lines, the path
drawn, endpoints and bends marked. One figure is reused for every frame (only its artists
change), which makes hundreds of frames affordable.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lossart.atomic import atomic_path
from lossart.format.bundle import Frame, load_bundle
from lossart.format.kinds import AROUND, source_kind
from lossart.format.manifest import Directions
from lossart.progress import progress

CMAP = "magma"
CONTOURS = 14


def _title(frame: Frame, kind: str, directions: Directions | None = None) -> str:
    """What the frame shows, as the kinds table names it (an around run's plane3 bundle is told
    apart by its one point w; its manifest's directions say whether the plane is Hessian)."""
    row = source_kind(kind, [p.name for p in frame.points])
    if row is AROUND and directions and directions.kind in ("hessian", "hessian-min"):
        return "Hessian plane around one network"
    loss = frame.train_loss
    loss_s = f", train loss {loss:.4g}" if loss is not None else ""
    if row is None:
        return f"frame {frame.index}"
    return row.frame_title(frame.index, frame.step, frame.epoch, loss_s)


def axis_labels(directions: Directions | None) -> tuple[str, str]:
    """"plane x/y", or what an around bundle's axes are (with their Hessian eigenvalues)."""
    if directions is None or len(directions.axes) != 2:
        return "plane x", "plane y"
    out = []
    for axis in directions.axes:
        lam = axis.eigenvalue
        out.append(axis.name + ("" if lam is None else f" (λ = {lam:.4g})"))
    scale = directions.scale
    if scale:
        out = [f"{s}, unit = {scale:.3g} in weight space" for s in out]
    return out[0], out[1]


def loss_ticks(bundle, count: int = 7) -> tuple[np.ndarray, list[str]]:
    """Colour-bar ticks at round loss values, placed at the heights they map to: the map is
    read in loss whatever the height mapping."""
    zs = np.linspace(bundle.z_min, bundle.z_max, 512)
    losses = bundle.loss_of(zs)
    picked = []
    for loss in bundle.loss_of(np.linspace(bundle.z_min, bundle.z_max, count)):
        value = float(f"{loss:.2g}")
        if losses[0] <= value <= losses[-1] and value not in picked:
            picked.append(value)
    return np.interp(picked, losses, zs), [f"{v:g}" for v in picked]


def write_previews(
    root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    dpi: int = 100,
    positions: list[int] | None = None,
) -> list[Path]:
    """RUN/terrain/preview/frame_XXXXX.png (or in `out`) for every frame of the bundle at
    `root`, or for the frames at `positions` in the bundle's list."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bundle = load_bundle(root)
    out_dir = Path(out) if out is not None else bundle.root / "preview"
    out_dir.mkdir(parents=True, exist_ok=True)
    h = bundle.manifest.height
    extent = (*bundle.x_range, *bundle.y_range)
    levels = np.linspace(bundle.z_min, bundle.z_max, CONTOURS + 2)[1:-1]
    xs, ys = bundle.xs, bundle.ys

    aspect = (extent[3] - extent[2]) / (extent[1] - extent[0])
    fig, ax = plt.subplots(
        figsize=(8.0, min(9.0, max(3.2, 6.2 * aspect + 1.3))), layout="constrained"
    )
    image = ax.imshow(
        bundle.heights(0),
        origin="lower",
        extent=extent,
        cmap=CMAP,
        vmin=bundle.z_min,
        vmax=bundle.z_max,
        interpolation="bilinear",
        aspect="equal",
    )
    bar = fig.colorbar(
        image,
        ax=ax,
        shrink=0.9,
        label=f"loss\n(height {bundle.height_label()}, sigma {h.sigma:g})",
    )
    ticks, labels = loss_ticks(bundle)
    bar.set_ticks(ticks, labels=labels)
    (path_line,) = ax.plot([], [], color="#7fffd4", lw=2.0, label="curve")
    (bend_marks,) = ax.plot([], [], "x", color="#7fffd4", ms=8, mew=2, label="bend")
    (point_marks,) = ax.plot([], [], "o", color="white", mec="black", ms=8, label="optima")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    directions = bundle.manifest.directions
    xlabel, ylabel = axis_labels(directions)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.6)
    labels: list = []
    contours = None
    written: list[Path] = []
    chosen = range(len(bundle.frames)) if positions is None else positions
    bar = progress(len(chosen), desc="terrain previews", unit="frame")
    try:
        for pos in chosen:
            frame = bundle.frames[pos]
            z = bundle.heights(pos)
            image.set_data(z)
            if contours is not None:
                contours.remove()
            contours = ax.contour(
                xs, ys, z, levels=levels, colors="white", linewidths=0.5, alpha=0.45
            )
            path_line.set_data(frame.path[:, 0], frame.path[:, 1])
            bend_marks.set_data(frame.bends[:, 0], frame.bends[:, 1])
            pts = frame.points
            point_marks.set_data([p.xy[0] for p in pts], [p.xy[1] for p in pts])
            for label in labels:
                label.remove()
            labels = [
                ax.annotate(
                    f"{p.name} ({p.loss:.3g})" if p.loss is not None else p.name,
                    p.xy,
                    xytext=(6, 6),
                    textcoords="offset points",
                    color="white",
                    fontsize=8,
                )
                for p in pts
            ]
            ax.set_title(_title(frame, bundle.kind, directions), fontsize=10)
            target = out_dir / f"frame_{frame.index:05d}.png"
            with atomic_path(target) as tmp:
                fig.savefig(tmp, dpi=dpi, format="png")
            written.append(target)
            bar.update(1)
    finally:
        bar.close()
        plt.close(fig)
    return written
