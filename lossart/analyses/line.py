"""`lossart line A.pt B.pt --out DIR`: loss and accuracy on the straight line between two networks.

The 1-D view for any two checkpoints of one model (two independent optima, two epochs of one
run, a network and its fine-tuned copy): (1 − t)·A + t·B at evenly spaced t, evaluated as
`lossart eval-curve` evaluates its segment (`lossart.analyses.eval_curve`: exact BN from the
fixed train subset at every point, the test set in eval mode with those statistics). Writes
DIR/line.{csv,json,png}; the barrier is the largest train loss along the line minus the mean of
the endpoints' (test barrier likewise).
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lossart.analyses.eval_curve import PathEval, PointEval
from lossart.analyses.sampling import PathSampling
from lossart.atomic import atomic_path, write_json
from lossart.checks import output_dir
from lossart.data import eval_subset, load_dataset
from lossart.devices import cpu_threads, resolve_device
from lossart.evaluation import ExactBN
from lossart.geometry.curves import segment_points
from lossart.geometry.weights import ParamLayout
from lossart.progress import progress
from lossart.runs import now_iso
from lossart.training.checkpoint import load_checkpoint


@dataclass
class LineEvaluation:
    """What `evaluate_line` returns: the line's points and where the outputs were written."""

    line: PathEval
    sources: list[str]
    train_subset: int
    test_size: int
    files: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        """Per t: train and test loss and accuracy; then the barriers."""
        lines = [f"{'t':>5}  {'train loss':>10} {'acc':>6}  {'test loss':>10} {'acc':>6}"]
        for p in self.line.points:
            lines.append(
                f"{p.t:5.2f}  {p.train_loss:10.4f} {_pct(p.train_acc):>6}  "
                f"{p.test_loss:10.4f} {_pct(p.test_acc):>6}"
            )
        lines.append(
            f"barrier (train loss): {self.line.barrier:.4f}  (test: {self.line.test_barrier:.4f})"
        )
        return "\n".join(lines)


def _pct(a: float) -> str:
    return "-" if math.isnan(a) else f"{100 * a:.1f}%"


def line_points(
    a: str | Path,
    b: str | Path,
    points: int = 21,
    subset: int | None = 2000,
    device: str = "cpu",
    seed: int = 0,
) -> LineEvaluation:
    """The line from checkpoint `a` to checkpoint `b` at `points` evenly spaced t (no files)."""
    PathSampling(points, subset)
    ca = load_checkpoint(a)
    cb = load_checkpoint(b, expect_model=ca.model)
    ds = load_dataset(ca.data)
    device = resolve_device(device)
    train = eval_subset(ds, "train", subset, seed=seed, device=device)
    test = eval_subset(ds, "test", subset, seed=seed, device=device)
    model = ca.build_model()
    layout = ParamLayout.of(model)
    wa, wb = (layout.flatten(c.state_dict).float().to(device) for c in (ca, cb))
    ev = ExactBN(model, layout, device=device)
    ts = torch.linspace(0, 1, points, dtype=torch.float64)
    results = []
    bar = progress(total=points, desc="line", unit="pt")
    try:
        for t, w in zip(ts.tolist(), segment_points(wa, wb, ts), strict=True):
            on_train, on_test = ev.evaluate_with_reference(w, train, test, ds.task)
            results.append(
                PointEval(t, on_train.loss, on_train.accuracy, on_test.loss, on_test.accuracy)
            )
            bar.update(1)
    finally:
        bar.close()
    return LineEvaluation(
        PathEval("line", results),
        sources=[str(Path(a).resolve()), str(Path(b).resolve())],
        train_subset=int(train[0].shape[0]),
        test_size=int(test[0].shape[0]),
    )


def evaluate_line(
    a: str | Path,
    b: str | Path,
    out: str | Path,
    points: int = 21,
    subset: int | None = 2000,
    device: str = "cpu",
    seed: int = 0,
    threads: int | None = None,
) -> LineEvaluation:
    """Evaluate the line from `a` to `b` and write OUT/line.{csv,json,png}.

    `threads` as for `lossart eval-curve`: None means 1 for the built-in data on CPU.
    """
    output_dir(out)
    PathSampling(points, subset)
    builtin = load_checkpoint(a).data.kind == "builtin"
    with cpu_threads(threads, device, builtin):
        result = line_points(a, b, points, subset, device, seed)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    files = {"csv": root / "line.csv", "json": root / "line.json", "png": root / "line.png"}
    _write_csv(result, files["csv"])
    write_json(
        files["json"],
        {
            "created": now_iso(),
            "sources": result.sources,
            "points": points,
            "train_subset": result.train_subset,
            "test_size": result.test_size,
            "subset_seed": seed,
            "bn": "train subset statistics at every point (exact BN); test in eval mode with them",
            "barrier": result.line.barrier,
            "test_barrier": result.line.test_barrier,
            "line": [asdict(p) for p in result.line.points],
        },
    )
    _plot(result, files["png"], title=f"{Path(a).name} → {Path(b).name}")
    result.files = {k: str(v) for k, v in files.items()}
    return result


def _write_csv(result: LineEvaluation, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t", "train_loss", "train_acc", "test_loss", "test_acc"])
        for p in result.line.points:
            w.writerow(
                [f"{p.t:.6g}", repr(p.train_loss), repr(p.train_acc), repr(p.test_loss),
                 repr(p.test_acc)]
            )  # fmt: skip


def _plot(result: LineEvaluation, path: Path, title: str) -> None:
    """Loss (and accuracy, for classification) against t, train and test, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = result.line.points
    has_acc = not math.isnan(pts[0].train_acc)
    fig, axes = plt.subplots(
        1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4), squeeze=False
    )
    ts = [p.t for p in pts]
    ax = axes[0, 0]
    ax.plot(
        ts,
        [p.train_loss for p in pts],
        "-o",
        ms=3,
        label=f"train (barrier {result.line.barrier:.3f})",
    )
    ax.plot(
        ts, [p.test_loss for p in pts], "--", label=f"test (barrier {result.line.test_barrier:.3f})"
    )
    ax.set(xlabel="t  ((1 − t)·A + t·B)", ylabel="loss", title="loss along the line")
    ax.legend(fontsize=8)
    if has_acc:
        ax = axes[0, 1]
        ax.plot(ts, [100 * p.train_acc for p in pts], "-o", ms=3, label="train")
        ax.plot(ts, [100 * p.test_acc for p in pts], "--", label="test")
        ax.set(xlabel="t", ylabel="accuracy (%)", title="accuracy along the line")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
