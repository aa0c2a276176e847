"""Ensembles along the path (`lossart ensemble`, the seed's Figure 8).

For t in [0, 1], the two-network ensemble of w1 and φ(t) (average of predicted probabilities for
classification, of predictions for regression) on the test set, for the trained curve and for the
straight segment. At t = 1 both paths give the ensemble of the two endpoints, the reference line.
BN statistics are recomputed at every point from the fixed train subset (as `eval-curve` does,
`ExactBN.reference_outputs`), so no point borrows the endpoints' stored statistics.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from lossart.analyses.sampling import Matching, PathSampling
from lossart.atomic import atomic_path, write_json
from lossart.data import eval_subset, load_dataset
from lossart.devices import resolve_device
from lossart.evaluation import ExactBN
from lossart.geometry.curves import curve_points, segment_points
from lossart.progress import progress
from lossart.runs import Run, now_iso, open_run
from lossart.training.curve_run import CurveRun, load_curve_run


@dataclass(frozen=True)
class EnsemblePoint:
    """Test metrics at one t: of φ(t) alone and of the ensemble {w1, φ(t)}."""

    t: float
    single_loss: float
    single_acc: float
    ensemble_loss: float
    ensemble_acc: float


@dataclass
class EnsembleResult:
    curve: list[EnsemblePoint]
    segment: list[EnsemblePoint]
    endpoint_ensemble_loss: float
    endpoint_ensemble_acc: float
    task: str
    test_size: int
    files: dict[str, str] = field(default_factory=dict)

    def first_t_matching(self, path: str = "curve", tolerance: float = 0.0) -> float | None:
        """The smallest t > 0 at which the path's ensemble accuracy comes within `tolerance` of the
        endpoint ensemble (the seed: about t = 0.3 for a trained curve); None if it never does."""
        Matching(tolerance)
        for p in getattr(self, path)[1:]:
            if p.ensemble_acc + tolerance >= self.endpoint_ensemble_acc:
                return p.t
        return None

    def table(self) -> str:
        lines = [f"{'t':>5}  {'curve ens acc':>13} {'single':>7}   {'segment ens acc':>15} {'single':>7}"]
        for c, s in zip(self.curve, self.segment):
            lines.append(
                f"{c.t:5.2f}  {100 * c.ensemble_acc:12.1f}% {100 * c.single_acc:6.1f}%   "
                f"{100 * s.ensemble_acc:14.1f}% {100 * s.single_acc:6.1f}%"
            )
        lines.append(f"endpoint ensemble (w1, w2): acc {100 * self.endpoint_ensemble_acc:.1f}%, "
                     f"loss {self.endpoint_ensemble_loss:.4f}")
        return "\n".join(lines)


def combine(outputs_a: torch.Tensor, outputs_b: torch.Tensor, targets: torch.Tensor,
            task: str) -> tuple[float, float]:
    """(loss, accuracy) of the two-member ensemble: mean probabilities (classification, NLL of
    the mean) or mean predictions (regression, MSE; accuracy NaN)."""
    if task == "regression":
        mean = (outputs_a + outputs_b).reshape(targets.shape) / 2
        return F.mse_loss(mean, targets).item(), float("nan")
    probs = (outputs_a.softmax(dim=1) + outputs_b.softmax(dim=1)) / 2
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), targets).item()
    acc = (probs.argmax(dim=1) == targets).float().mean().item()
    return loss, acc


def single(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> tuple[float, float]:
    """(loss, accuracy) of one network, on the same footing as `combine`."""
    return combine(outputs, outputs, targets, task)


def ensemble_along_paths(
    curve_run: CurveRun,
    points: int = 21,
    subset: int | None = 2000,
    device: str = "cpu",
    seed: int = 0,
) -> EnsembleResult:
    """Ensemble of w1 with φ(t) along the trained curve and the segment (no files written)."""
    PathSampling(points, subset)
    ds = load_dataset(curve_run.data_spec)
    device = resolve_device(device)
    train_x, _ = eval_subset(ds, "train", subset, seed=seed, device=device)
    test_x, test_y = eval_subset(ds, "test", None, seed=seed, device=device)
    ev = ExactBN(curve_run.build_model(), device=device)
    w1, w2 = curve_run.w1.to(device), curve_run.w2.to(device)
    ts = torch.linspace(0, 1, points, dtype=torch.float64)
    paths = {
        "curve": curve_points(curve_run.spec, w1, curve_run.final_bends.to(device), w2, ts),
        "segment": segment_points(w1, w2, ts),
    }

    def test_outputs(w: torch.Tensor) -> torch.Tensor:
        return ev.reference_outputs(w, train_x, test_x)[1]

    bar = progress(total=2 * points - 1, desc="ensemble", unit="pt")
    try:
        base = test_outputs(w1)
        bar.update(1)
        results: dict[str, list[EnsemblePoint]] = {}
        for name, ws in paths.items():
            rows = []
            for t, w in zip(ts.tolist(), ws):
                out = base if t == 0.0 else test_outputs(w)
                if t != 0.0:
                    bar.update(1)
                rows.append(EnsemblePoint(t, *single(out, test_y, ds.task), *combine(base, out, test_y, ds.task)))
            results[name] = rows
    finally:
        bar.close()
    end = results["curve"][-1]
    return EnsembleResult(
        results["curve"], results["segment"], end.ensemble_loss, end.ensemble_acc, ds.task,
        int(test_x.shape[0]),
    )


def ensemble_run(
    run: Run | str | Path,
    points: int = 21,
    subset: int | None = 2000,
    device: str = "cpu",
    seed: int = 0,
) -> EnsembleResult:
    """Evaluate ensembles along a finished curve run; write RUN/analyses/ensemble.{csv,json,png}."""
    PathSampling(points, subset)  # a subset of 0 gave a wrong endpoint-ensemble accuracy
    run = run if isinstance(run, Run) else open_run(run)
    result = ensemble_along_paths(load_curve_run(run), points, subset, device, seed)
    out = run.analyses
    files = {"csv": out / "ensemble.csv", "json": out / "ensemble.json", "png": out / "ensemble.png"}
    with atomic_path(files["csv"]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "t", "single_loss", "single_acc", "ensemble_loss", "ensemble_acc"])
        for name in ("curve", "segment"):
            for p in getattr(result, name):
                writer.writerow([name, p.t, p.single_loss, p.single_acc, p.ensemble_loss, p.ensemble_acc])
    write_json(files["json"], {
        "created": now_iso(),
        "test_size": result.test_size,
        "bn": "train subset statistics recomputed at every point; test set in eval mode with them",
        "endpoint_ensemble": {"loss": result.endpoint_ensemble_loss, "acc": result.endpoint_ensemble_acc},
        "first_t_reaching_endpoint_ensemble": {
            "curve": result.first_t_matching("curve"), "segment": result.first_t_matching("segment")},
        "curve": [asdict(p) for p in result.curve],
        "segment": [asdict(p) for p in result.segment],
    })
    plot_ensemble(result, files["png"], title=f"{run.root.name}: ensemble of w1 and a point on the path")
    result.files = {k: str(v) for k, v in files.items()}
    run.record_command("ensemble")
    return result


def plot_ensemble(result: EnsembleResult, path: Path, title: str = "") -> None:
    """The seed's Figure 8: ensemble accuracy (or loss, for regression) along both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regression = result.task == "regression"
    key, ylabel = ("ensemble_loss", "test MSE") if regression else ("ensemble_acc", "test accuracy (%)")
    scale = 1.0 if regression else 100.0
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, color in (("curve", "#d1495b"), ("segment", "#00798c")):
        pts = getattr(result, name)
        ts = [p.t for p in pts]
        ax.plot(ts, [scale * getattr(p, key) for p in pts], "-o", ms=3, color=color,
                label=f"ensemble {{w1, φ(t)}}, {name}")
        ax.plot(ts, [scale * getattr(p, key.replace("ensemble", "single")) for p in pts], "--",
                color=color, alpha=0.6, label=f"φ(t) alone, {name}")
    ref = result.endpoint_ensemble_loss if regression else result.endpoint_ensemble_acc
    ax.axhline(scale * ref, color="#333333", lw=1, ls=":", label="ensemble {w1, w2}")
    ax.set_xlabel("t")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
