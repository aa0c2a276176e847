"""Function diversity along a curve (`lossart functions`, the seed's Figure 7).

On a 1-D regression problem (the built-in `wave1d`), points along a trained curve have low loss
on the data, yet they are different functions: they agree where the data are and disagree in the
gap between the two intervals. The figure draws the predictive functions of several points on the
curve over the data, next to the loss plane of the final curve with those points marked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lossart.atomic import atomic_path, np_savez
from lossart.data import eval_subset, load_dataset
from lossart.data.batches import normalize
from lossart.devices import resolve_device
from lossart.errors import LossartError
from lossart.evaluation import ExactBN
from lossart.geometry.curves import curve_points
from lossart.geometry.plane import Plane, control_points_2d
from lossart.geometry.weights import ParamLayout
from lossart.grid import list_frame_grids, load_frame_grid
from lossart.grid.config import GridConfig
from lossart.grid.engine import EngineConfig, GridEngine
from lossart.grid.planes import curve_window, frame_plane
from lossart.options import check_value
from lossart.runs import Run, open_run
from lossart.terrain.curve2d import curve_polyline
from lossart.training.curve_run import CurveRun, load_curve_run

DEFAULT_TS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class FunctionsResult:
    """Predictions along the curve and the loss plane they are marked on."""

    ts: list[float]
    x: np.ndarray  # [M] inputs (original units)
    predictions: np.ndarray  # [len(ts), M]
    train_x: np.ndarray
    train_y: np.ndarray
    train_loss: list[float]  # MSE on the training data at each t
    points_xy: np.ndarray  # [len(ts), 2] plane coordinates of the points
    control_points: np.ndarray  # [k+2, 2]
    plane_xs: np.ndarray
    plane_ys: np.ndarray
    plane_loss: np.ndarray  # [H, W]
    kind: str = "bezier"
    files: dict[str, str] = field(default_factory=dict)

    @property
    def spread(self) -> np.ndarray:
        """Standard deviation of the predictions across t, per input."""
        return self.predictions.std(axis=0)


def _plane_grid(cr: CurveRun, plane: Plane, index: int, resolution: tuple[int, int], train,
                device: torch.device):
    """The final frame's loss grid: from RUN/grids when `lossart grid` made it, else computed."""
    try:
        if index in list_frame_grids(cr.run):
            g = load_frame_grid(cr.run, index)
            return np.asarray(g.xs), np.asarray(g.ys), np.asarray(g.loss)
    except LossartError:
        pass
    window = curve_window(cr)
    w, h = resolution
    xs = np.linspace(*window.x_range, w)
    ys = np.linspace(*window.y_range, h)
    model = cr.build_model()
    engine = GridEngine(model, ParamLayout.of(model), train[0], train[1], "regression",
                        EngineConfig(device=str(device)))
    engine.set_plane(plane.origin, plane.u_hat, plane.v_hat)
    gx, gy = np.meshgrid(xs, ys)
    loss = engine.evaluate(gx.ravel(), gy.ravel()).loss.reshape(h, w)
    return xs, ys, loss


def function_diversity(
    curve_run: CurveRun,
    ts: tuple[float, ...] = DEFAULT_TS,
    resolution: int | tuple[int, int] = 41,
    device: str = "cpu",
) -> FunctionsResult:
    """Predictive functions of the curve at `ts`, and the loss plane of the final curve.

    `resolution`: the plane grid's points per side, N or (W, H), where RUN has no grid of the
    final frame (`lossart grid`'s own grid is used where it has one)."""
    if isinstance(resolution, int):
        resolution = (resolution, resolution)
    check_value(GridConfig, "resolution", tuple(resolution))  # the grid's one declaration
    ds = load_dataset(curve_run.data_spec)
    if ds.task != "regression" or tuple(ds.input_shape) != (1,):
        raise LossartError(
            f"{curve_run.run.root}: `lossart functions` needs a curve trained on 1-D regression "
            f"data (e.g. --data wave1d), this run's data is {ds.spec.name!r}"
        )
    if not curve_run.frames:
        raise LossartError(f"{curve_run.run.root}: the curve run has no frames")
    device = resolve_device(device)
    train = eval_subset(ds, "train", None, device=device)
    lo, hi = float(ds.x_train.min()), float(ds.x_train.max())
    pad = 0.15 * (hi - lo)
    x = torch.linspace(lo - pad, hi + pad, 400).reshape(-1, 1)
    x_in = normalize(ds, x.to(device))
    ev = ExactBN(curve_run.build_model(), device=device)
    w1, w2 = curve_run.w1.to(device), curve_run.w2.to(device)
    bends = curve_run.final_bends.to(device)
    weights = curve_points(curve_run.spec, w1, bends, w2, torch.tensor(ts, dtype=torch.float64))
    preds, losses = [], []
    for w in weights:
        train_out, out = ev.reference_outputs(w, train[0], x_in)
        preds.append(out.reshape(-1).cpu().numpy())
        losses.append(torch.nn.functional.mse_loss(train_out.reshape(-1), train[1]).item())
    last = len(curve_run.frames) - 1
    plane = frame_plane(curve_run, last).to(device)
    points_xy = plane.coords_many(weights)[:, :2]
    cps = control_points_2d(plane, w1, bends, w2)
    pxs, pys, ploss = _plane_grid(curve_run, plane, curve_run.frames[last].index, resolution, train, device)
    return FunctionsResult(
        list(ts), x.reshape(-1).numpy(), np.stack(preds), ds.x_train.reshape(-1).numpy(),
        ds.y_train.numpy(), losses, points_xy, cps, pxs, pys, ploss, curve_run.spec.kind,
    )


def functions_run(
    run: Run | str | Path,
    ts: tuple[float, ...] = DEFAULT_TS,
    resolution: int | tuple[int, int] = 41,
    device: str = "cpu",
) -> FunctionsResult:
    """Compute function diversity for a curve run; write RUN/analyses/functions.{png,npz}."""
    run = run if isinstance(run, Run) else open_run(run)
    result = function_diversity(load_curve_run(run), ts, resolution, device)
    out = run.analyses
    files = {"png": out / "functions.png", "npz": out / "functions.npz"}
    np_savez(files["npz"], ts=np.array(result.ts), x=result.x, predictions=result.predictions,
             points_xy=result.points_xy, control_points=result.control_points,
             plane_xs=result.plane_xs, plane_ys=result.plane_ys, plane_loss=result.plane_loss,
             train_loss=np.array(result.train_loss))
    plot_functions(result, files["png"], title=run.root.name)
    result.files = {k: str(v) for k, v in files.items()}
    run.record_command("functions")
    return result


def plot_functions(result: FunctionsResult, path: Path, title: str = "") -> None:
    """Left: the functions over the data; right: log10 loss plane with the points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("plasma")(np.linspace(0.05, 0.85, len(result.ts)))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    ax1.scatter(result.train_x, result.train_y, s=8, color="#444444", alpha=0.6, label="data")
    for t, pred, c in zip(result.ts, result.predictions, colors):
        ax1.plot(result.x, pred, color=c, lw=1.6, label=f"φ({t:g})")
    ax1.set_xlabel("x")
    ax1.set_ylabel("prediction")
    ax1.set_title("functions along the curve", fontsize=10)
    ax1.legend(fontsize=7, loc="best")
    ax1.grid(alpha=0.3)
    z = np.log10(np.clip(np.nan_to_num(result.plane_loss, nan=np.nanmax(result.plane_loss)), 1e-6, None))
    levels = np.linspace(z.min(), np.quantile(z, 0.95), 30)
    cs = ax2.contourf(result.plane_xs, result.plane_ys, np.minimum(z, levels[-1]), levels=levels,
                      cmap="magma_r")
    fig.colorbar(cs, ax=ax2, label="log10 train MSE")
    curve = curve_polyline(result.control_points, result.kind, 200)
    ax2.plot(curve[:, 0], curve[:, 1], color="white", lw=1.5)
    for t, (px, py), c in zip(result.ts, result.points_xy, colors):
        ax2.scatter([px], [py], color=c, edgecolor="white", s=60, zorder=3, label=f"t={t:g}")
    ax2.set_aspect("equal")
    ax2.set_title("loss plane of the trained curve", fontsize=10)
    ax2.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
