"""A curve run folder built by hand per the contract (docs/architecture.md), for grid tests.

Tiny on purpose: `smallcnn` of width 4 on the built-in 16×16 `shapes` images, three frames.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lossart.atomic import torch_save, write_json
from lossart.runs import Run

MODEL = {"name": "smallcnn", "num_classes": 6, "input_shape": [3, 16, 16], "kwargs": {"width": 4}}


def make_curve_run(root: Path, frames: int = 3, seed: int = 0) -> Run:
    """w1, w2 checkpoints, `frames` bends around the midpoint, frames.json and run.json."""
    from lossart.data import DataSpec
    from lossart.geometry.weights import ParamLayout
    from lossart.models import ModelSpec, create_model
    from lossart.training.checkpoint import Checkpoint, save_checkpoint

    spec = ModelSpec.from_dict(MODEL)
    data = DataSpec("shapes")
    run = Run(root)
    flats = []
    for k, name in enumerate(("w1", "w2")):
        torch.manual_seed(seed + k)
        model = create_model(spec)
        save_checkpoint(
            Checkpoint(spec, data, model.state_dict(), seed=seed + k), run.endpoints / f"{name}.pt"
        )
        flats.append(ParamLayout.of(model).flatten(dict(model.named_parameters())))
    w1, w2 = flats
    g = torch.Generator().manual_seed(seed + 7)
    records = []
    for i in range(frames):
        bend = (w1 + w2) / 2 + (0.2 + 0.1 * i) * torch.randn(w1.shape, generator=g) * (
            w2 - w1
        ).norm() / w1.numel() ** 0.5
        rel = f"frames/frame_{i:05d}.pt"
        torch_save({"bends": bend.unsqueeze(0)}, run.curve / rel)
        records.append(
            {"index": i, "step": 10 * i, "epoch": float(i), "train_loss": 1.0, "file": rel}
        )
    write_json(
        run.curve / "frames.json",
        {
            "curve": {"kind": "bezier", "bends": 1},
            "total_steps": 10 * frames,
            "frames_requested": frames,
            "frames": records,
        },
    )
    run.write({"kind": "curve", "model": spec.to_dict(), "data": data.to_dict()})
    return run
