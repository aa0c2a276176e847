"""Function diversity along a curve on the built-in 1-D regression data (seed Figure 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossart.analyses.functions import function_diversity
from lossart.cli import main
from lossart.data import load_dataset
from lossart.data.batches import normalize
from lossart.training.curve import CurveConfig, train_curve
from lossart.training.curve_run import load_curve_run
from lossart.training.endpoints import TrainConfig, train_endpoint


@pytest.fixture(scope="module")
def wave_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("wave")
    ends = []
    for seed in (1, 2):
        out = root / f"w{seed}.pt"
        train_endpoint(TrainConfig(data="wave1d", epochs=40, seed=seed, out=out, progress=False))
        ends.append(str(out))
    train_curve(CurveConfig(w1=ends[0], w2=ends[1], out=str(root / "run"), epochs=20,
                            batch_size=20, lr=0.02, frames=3))
    return root / "run", ends


def test_functions_at_the_ends_are_the_endpoints(wave_run):
    from lossart.training.checkpoint import load_checkpoint

    run_dir, ends = wave_run
    result = function_diversity(load_curve_run(run_dir), ts=(0.0, 0.5, 1.0), resolution=9)
    ds = load_dataset("wave1d")
    x = normalize(ds, torch.from_numpy(result.x).reshape(-1, 1))
    for row, path in ((0, ends[0]), (2, ends[1])):
        model = load_checkpoint(path).build_model().eval()
        with torch.no_grad():
            expected = model(x).reshape(-1).numpy()
        np.testing.assert_allclose(result.predictions[row], expected, rtol=1e-5, atol=1e-6)
    # The middle of a trained curve is a different function from both ends.
    assert np.abs(result.predictions[1] - result.predictions[0]).max() > 1e-3
    # Points sit on the curve drawn in the plane: t=0 at w1 = (0, 0), t=1 on the x axis.
    np.testing.assert_allclose(result.points_xy[0], [0, 0], atol=1e-5)
    assert abs(result.points_xy[2][1]) < 1e-4 * abs(result.points_xy[2][0])
    assert result.plane_loss.shape == (9, 9) and np.isfinite(result.plane_loss).all()


def test_functions_command_writes_the_figure(wave_run, capsys):
    run_dir, _ = wave_run
    assert main(["functions", str(run_dir), "--resolution", "7", "--t", "0", "1"]) == 0
    assert "train MSE" in capsys.readouterr().out
    assert (run_dir / "analyses" / "functions.png").stat().st_size > 10_000


def test_classification_runs_are_refused_in_one_line(tmp_path, capsys):
    from grid_fixtures import make_curve_run

    from lossart.atomic import torch_save

    run = make_curve_run(tmp_path / "run", frames=1)
    torch_save(torch.load(run.curve / "frames" / "frame_00000.pt"), run.curve / "final.pt")
    assert main(["functions", str(run.root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "regression" in err[0]
