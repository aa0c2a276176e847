"""Several `lossart line` results on one plot: e.g. A→B beside A→B-aligned (`line --beside`).

Reads each folder's line.json (what `evaluate_line` wrote) and draws train loss (solid) and test
loss (dashed) against t, one colour per line, its barriers in the legend. Nothing is evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path

from lossart.atomic import atomic_path
from lossart.checks import require_mapping
from lossart.errors import LossartError


def read_line(folder: str | Path) -> dict:
    """A folder's line.json, checked for the fields the plot needs."""
    path = Path(folder) / "line.json"
    try:
        data = require_mapping(json.loads(path.read_text()), path)
    except FileNotFoundError:
        raise LossartError(
            f"--beside {folder}: no line.json (run lossart line --out {folder})"
        ) from None
    except ValueError as exc:
        raise LossartError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data.get("line"), list) or not data["line"]:
        raise LossartError(f"{path}: field 'line' is missing or empty")
    return data


def label_of(data: dict) -> str:
    names = [Path(s).stem for s in data.get("sources", [])]
    return " → ".join(names) if len(names) == 2 else "line"


def plot_lines(folders: list[str | Path], path: str | Path, title: str = "") -> Path:
    """Train and test loss along every folder's line on one plot; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [read_line(f) for f in folders]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, data in enumerate(lines):
        colour = f"C{i}"
        ts = [p["t"] for p in data["line"]]
        ax.plot(ts, [p["train_loss"] for p in data["line"]], "-o", ms=3, color=colour,
                label=f"{label_of(data)}: train, barrier {data['barrier']:.3f}")  # fmt: skip
        ax.plot(ts, [p["test_loss"] for p in data["line"]], "--", color=colour,
                label=f"{label_of(data)}: test, barrier {data['test_barrier']:.3f}")  # fmt: skip
    ax.set(xlabel="t  ((1 − t)·A + t·B)", ylabel="loss (exact BN at every t)",
           title=title or "loss along the straight lines")  # fmt: skip
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
