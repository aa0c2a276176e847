"""Loss and accuracy along the trained curve and along the straight segment (`lossart eval-curve`).

The seed's central evidence: the straight line between two independently trained optima crosses
a high-loss barrier, while the trained curve does not. Both paths are evaluated at the same evenly
spaced t, with BN statistics recomputed at every point (`lossart.evaluation.ExactBN`):

- train subset: one batch-statistics pass over the whole fixed subset (exact BN, DESIGN.md);
- test set: BN statistics of that same train-subset pass (the running statistics it leaves with
  momentum None, i.e. what Garipov's `update_bn` computes), then the test set in eval mode — so
  test numbers never use test-batch statistics.

The barrier of a path is the largest train loss along it minus the mean of the endpoints' train
losses (reported for test loss too).
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lossart.analyses.sampling import PathSampling
from lossart.atomic import atomic_path, write_json
from lossart.data import eval_subset, load_dataset
from lossart.devices import cpu_threads, resolve_device
from lossart.evaluation import ExactBN
from lossart.geometry.curves import curve_points, segment_points
from lossart.progress import progress
from lossart.runs import Run, now_iso, open_run
from lossart.training.curve_run import CurveRun, load_curve_run


@dataclass(frozen=True)
class PointEval:
    t: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float


@dataclass
class PathEval:
    """One path (\"curve\" or \"segment\") evaluated at evenly spaced t."""

    name: str
    points: list[PointEval]

    @property
    def barrier(self) -> float:
        """Max train loss along the path minus the mean of its endpoints' train losses."""
        return _barrier([p.train_loss for p in self.points])

    @property
    def test_barrier(self) -> float:
        return _barrier([p.test_loss for p in self.points])


def _barrier(losses: list[float]) -> float:
    return max(losses) - (losses[0] + losses[-1]) / 2


@dataclass
class CurveEvaluation:
    """What `evaluate_curve_run` returns: both paths and where the outputs were written."""

    curve: PathEval
    segment: PathEval
    train_subset: int
    test_size: int
    files: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        """A small text table: per t, train/test loss of the curve and of the segment."""
        lines = [
            f"{'t':>5}  {'curve train':>11} {'curve test':>10} {'acc':>6}   "
            f"{'segment train':>13} {'segment test':>12} {'acc':>6}"
        ]
        for c, s in zip(self.curve.points, self.segment.points, strict=True):
            lines.append(
                f"{c.t:5.2f}  {c.train_loss:11.4f} {c.test_loss:10.4f} {_pct(c.test_acc):>6}   "
                f"{s.train_loss:13.4f} {s.test_loss:12.4f} {_pct(s.test_acc):>6}"
            )
        lines.append(
            f"barrier (train loss): curve {self.curve.barrier:.4f}, "
            f"segment {self.segment.barrier:.4f}  (test: curve {self.curve.test_barrier:.4f}, "
            f"segment {self.segment.test_barrier:.4f})"
        )
        return "\n".join(lines)


def _pct(a: float) -> str:
    return "-" if math.isnan(a) else f"{100 * a:.1f}%"


def evaluate_paths(
    curve_run: CurveRun,
    points: int = 21,
    subset: int | None = 2000,
    device: str = "cpu",
    seed: int = 0,
    bends: torch.Tensor | None = None,
) -> CurveEvaluation:
    """Both paths of a curve run at `points` evenly spaced t (no files written)."""
    PathSampling(points, subset)
    ds = load_dataset(curve_run.data_spec)
    device = resolve_device(device)
    train = eval_subset(ds, "train", subset, seed=seed, device=device)
    test = eval_subset(ds, "test", subset, seed=seed, device=device)
    ev = ExactBN(curve_run.build_model(), device=device)
    w1, w2 = curve_run.w1.to(device), curve_run.w2.to(device)
    bends = (curve_run.final_bends if bends is None else bends).to(device)
    ts = torch.linspace(0, 1, points, dtype=torch.float64)
    curve_w = curve_points(curve_run.spec, w1, bends, w2, ts)
    seg_w = segment_points(w1, w2, ts)
    cache: dict[float, tuple[float, float, float, float]] = {}
    results: dict[str, list[PointEval]] = {"curve": [], "segment": []}
    bar = progress(total=2 * points - 2, desc="eval-curve", unit="pt")
    try:
        for name, ws in (("curve", curve_w), ("segment", seg_w)):
            for t, w in zip(ts.tolist(), ws, strict=True):
                if t in (0.0, 1.0) and t in cache:  # endpoints are the same weights on both paths
                    r = cache[t]
                else:
                    on_train, on_test = ev.evaluate_with_reference(w, train, test, ds.task)
                    r = (on_train.loss, on_train.accuracy, on_test.loss, on_test.accuracy)
                    bar.update(1)
                    if t in (0.0, 1.0):
                        cache[t] = r
                results[name].append(PointEval(t, *r))
    finally:
        bar.close()
    return CurveEvaluation(
        PathEval("curve", results["curve"]),
        PathEval("segment", results["segment"]),
        train_subset=int(train[0].shape[0]),
        test_size=int(test[0].shape[0]),
    )


def evaluate_curve_run(
    run: Run | str | Path,
    points: int = 21,
    subset: int | None = 2000,
    device: str = "cpu",
    seed: int = 0,
    threads: int | None = None,
) -> CurveEvaluation:
    """Evaluate a finished curve run and write RUN/analyses/eval_curve.{csv,json,png}.

    `threads`: CPU threads; None means 1 for the built-in data on CPU (measured 17 s against 44 s
    for the default 21 points of a smallcnn run on two shared cores), torch's default otherwise.
    """
    PathSampling(points, subset)
    run = run if isinstance(run, Run) else open_run(run)
    cr = load_curve_run(run)
    with cpu_threads(threads, device, cr.data_spec.kind == "builtin"):
        result = evaluate_paths(cr, points, subset, device, seed)
    out = run.analyses
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": out / "eval_curve.csv",
        "json": out / "eval_curve.json",
        "png": out / "eval_curve.png",
    }
    _write_csv(result, files["csv"])
    write_json(
        files["json"],
        {
            "created": now_iso(),
            "curve": cr.spec.to_dict(),
            "points": points,
            "train_subset": result.train_subset,
            "test_size": result.test_size,
            "subset_seed": seed,
            "bn": "train subset statistics at every point (exact BN); test in eval mode with them",
            "barrier": {"curve": result.curve.barrier, "segment": result.segment.barrier},
            "test_barrier": {
                "curve": result.curve.test_barrier,
                "segment": result.segment.test_barrier,
            },
            "paths": {
                p.name: [asdict(x) for x in p.points] for p in (result.curve, result.segment)
            },
        },
    )
    plot_paths(result, files["png"], title=f"{run.root.name}: {cr.spec.kind} curve vs segment")
    result.files = {k: str(v) for k, v in files.items()}
    run.record_command("eval-curve")
    return result


def _write_csv(result: CurveEvaluation, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "t", "train_loss", "train_acc", "test_loss", "test_acc"])
        for p in (result.curve, result.segment):
            for x in p.points:
                w.writerow(
                    [
                        p.name,
                        f"{x.t:.6g}",
                        repr(x.train_loss),
                        repr(x.train_acc),
                        repr(x.test_loss),
                        repr(x.test_acc),
                    ]
                )


def plot_paths(result: CurveEvaluation, path: Path, title: str = "") -> None:
    """Loss (and accuracy, for classification) against t for both paths, as a PNG."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_acc = not math.isnan(result.curve.points[0].train_acc)
    fig, axes = plt.subplots(
        1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4), squeeze=False
    )
    styles = {"curve": "tab:blue", "segment": "tab:red"}
    for p in (result.curve, result.segment):
        ts = [x.t for x in p.points]
        c = styles[p.name]
        label = f"{p.name} (barrier {p.barrier:.3f})"
        axes[0, 0].plot(
            ts, [x.train_loss for x in p.points], "-o", color=c, ms=3, label=f"{label}, train"
        )
        axes[0, 0].plot(ts, [x.test_loss for x in p.points], "--", color=c, label=f"{p.name}, test")
        if has_acc:
            axes[0, 1].plot(
                ts,
                [100 * x.train_acc for x in p.points],
                "-o",
                color=c,
                ms=3,
                label=f"{p.name}, train",
            )
            axes[0, 1].plot(
                ts, [100 * x.test_acc for x in p.points], "--", color=c, label=f"{p.name}, test"
            )
    axes[0, 0].set(xlabel="t", ylabel="loss", title="loss along the path")
    losses = [x.train_loss for p in (result.curve, result.segment) for x in p.points]
    if min(losses) > 0 and max(losses) / min(losses) > 20:  # log only where it is needed
        axes[0, 0].set_yscale("log")
        axes[0, 0].yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes[0, 0].legend(fontsize=8)
    if has_acc:
        axes[0, 1].set(xlabel="t", ylabel="accuracy (%)", title="accuracy along the path")
        axes[0, 1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
