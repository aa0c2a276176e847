"""Training trajectories: `lossart train --snapshots N` and `lossart trajectory` (Li et al.'s PCA
plane of the snapshots), through grid, terrain and the bundle's path."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

import lossart.training.endpoints as train_mod
from lossart.cli import main
from lossart.data import load_dataset, num_batches
from lossart.errors import LossartError
from lossart.format.bundle import load_bundle
from lossart.geometry.trajectory import filter_mask, trajectory_plane
from lossart.geometry.weights import ParamLayout, flat_params
from lossart.grid import load_frame_grid
from lossart.grid.run_grid import GridConfig, grid_run
from lossart.grid.trajectory import TrajectoryConfig, trajectory_run
from lossart.models import create_model
from lossart.runs import Run
from lossart.terrain.build import build_terrain
from lossart.terrain.bundle_validate import validate_bundle
from lossart.training.checkpoint import load_checkpoint
from lossart.training.endpoints import TrainConfig, partial_path, train_endpoint
from lossart.training.snapshots import load_snapshots, snapshot_dir, snapshot_steps

pytestmark = pytest.mark.usefixtures("one_thread")

SNAPSHOTS = 6
SMALL = dict(resolution=(5, 4), subset=32)


def _cfg(out, **kw) -> TrainConfig:
    base = dict(data="shapes", model="smallcnn", model_kwargs={"width": 4}, epochs=2,
                batch_size=64, snapshots=SNAPSHOTS, out=out, progress=False,
                save_every_s=1e9)  # fmt: skip
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("traj") / "a.pt"
    return out, train_endpoint(_cfg(out))


def test_snapshot_steps_are_even_and_include_both_ends():
    assert snapshot_steps(2, 10) == [0, 10]
    assert snapshot_steps(5, 8) == [0, 2, 4, 6, 8]
    steps = snapshot_steps(6, 157)
    assert steps[0] == 0 and steps[-1] == 157 and steps == sorted(set(steps))
    with pytest.raises(LossartError, match="^snapshots 12: training has only 10 steps"):
        snapshot_steps(12, 10)
    with pytest.raises(LossartError, match="^snapshots 1: expected a whole number >= 2"):
        snapshot_steps(1, 10)


def test_snapshots_are_the_initial_and_final_weights_and_evenly_spaced(trained):
    out, ckpt = trained
    meta = ckpt.extra["snapshots"]
    assert meta["count"] == SNAPSHOTS and meta["folder"] == "a.pt.snapshots"
    snaps = load_snapshots(out, load_checkpoint(out))
    total = ckpt.extra["train_config"]["epochs"] * num_batches(load_dataset("shapes"), 64)
    assert [r.step for r in snaps.records] == snapshot_steps(SNAPSHOTS, total)
    assert snaps.records[0].train_loss is None
    assert all(r.train_loss is not None and r.train_loss > 0 for r in snaps.records[1:])
    assert snaps.records[-1].epoch == 2.0
    model = ckpt.build_model()
    assert torch.equal(snaps.params[-1], flat_params(model))
    torch.manual_seed(0)
    initial = create_model(ckpt.model)
    assert torch.equal(snaps.params[0], flat_params(initial))


@pytest.mark.parametrize("call, how", [(50, "sigint"), (130, "crash")])
def test_resumed_training_gives_the_same_snapshots(trained, tmp_path, monkeypatch, call, how):
    """Ctrl-C mid-epoch, or a crash after a snapshot but before the next state save (so that
    snapshot is taken again on resume): the snapshot files equal an uninterrupted run's."""
    ref_out, _ = trained
    out = tmp_path / "a.pt"
    real, count = train_mod.task_loss, {"n": 0}

    def loss(*args, **kwargs):
        count["n"] += 1
        if count["n"] == call:
            if how == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(train_mod, "task_loss", loss)
        with pytest.raises(KeyboardInterrupt if how == "sigint" else RuntimeError):
            train_endpoint(_cfg(out))
    assert partial_path(out).exists() and not out.exists()
    written = sorted(p.name for p in snapshot_dir(out).iterdir())
    assert 1 < len(written) < SNAPSHOTS
    resumed = train_endpoint(_cfg(out))
    ref = load_snapshots(ref_out, load_checkpoint(ref_out))
    got = load_snapshots(out, resumed)
    assert got.records == ref.records
    assert torch.equal(got.params, ref.params)


def test_other_snapshot_count_is_refused_on_rerun(trained):
    out, _ = trained
    with pytest.raises(LossartError, match="--snapshots"):
        train_endpoint(_cfg(out, snapshots=3))


def _numpy_pca(snaps: np.ndarray, final: np.ndarray, mask: np.ndarray, centre: bool):
    d = (snaps - final) * mask
    m = d - d.mean(axis=0) if centre else d
    _, s, vt = np.linalg.svd(m, full_matrices=False)
    return d @ vt[:2].T, s**2 / (s**2).sum()


@pytest.mark.parametrize("centre", [True, False])
def test_projections_match_a_numpy_pca(trained, centre):
    out, ckpt = trained
    snaps = load_snapshots(out, ckpt)
    model = ckpt.build_model()
    final = flat_params(model)
    mask = filter_mask(ParamLayout.of(model))
    tp = trajectory_plane(snaps.params, final, 3, mask, centre)
    ref, shares = _numpy_pca(snaps.params.double().numpy(), final.double().numpy(),
                             mask.double().numpy(), centre)  # fmt: skip
    signs = np.sign(ref[0])
    np.testing.assert_allclose(tp.coords, ref * signs, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    np.testing.assert_allclose(tp.explained, shares[:3], rtol=1e-6)
    np.testing.assert_array_equal(tp.coords[-1], [0.0, 0.0])
    assert tp.explained[0] >= tp.explained[1] >= tp.explained[2]
    assert 0 < tp.explained[1] and tp.explained.sum() <= 1 + 1e-12
    u, v = tp.plane.u_hat.double(), tp.plane.v_hat.double()
    assert abs(float(u @ v)) < 1e-5 and abs(float(u.norm()) - 1) < 1e-5
    one_dim = ~mask
    assert float(u[one_dim].abs().max()) == 0.0  # biases and BN stay put (ignore="biasbn")


def test_a_known_plane_is_recovered():
    """Snapshots moving mostly along a with a smaller wiggle along b: the plane is span(a, b),
    PC1 lies near a, and nothing is left outside the plane."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, generator=g).double(), torch.randn(50, generator=g).double()
    a = a / a.norm()
    b = b - (b @ a) * a
    b = b / b.norm()
    t = torch.linspace(1, 0, 9)
    snaps = 3.0 * t[:, None] * a + 0.3 * torch.sin(6 * t)[:, None] * b
    tp = trajectory_plane(snaps.double(), torch.zeros(50, dtype=torch.float64))
    for axis in (tp.plane.u_hat, tp.plane.v_hat):
        assert abs(float(axis @ a) ** 2 + float(axis @ b) ** 2 - 1) < 1e-9
    assert abs(float(tp.plane.u_hat @ a)) > 0.95
    assert tp.explained_plane > 0.999 and np.abs(tp.distance).max() < 1e-9


def test_too_few_or_degenerate_snapshots_are_refused():
    with pytest.raises(LossartError, match="at least 3 snapshots"):
        trajectory_plane(torch.randn(2, 10), torch.zeros(10))
    line = torch.linspace(0, 1, 5)[:, None] * torch.ones(1, 10)
    with pytest.raises(LossartError, match="fewer than two directions"):
        trajectory_plane(line, torch.zeros(10))


def test_trajectory_grid_terrain_and_bundle_path(trained, tmp_path):
    out, ckpt = trained
    run_dir = tmp_path / "run"
    result = trajectory_run(out, run_dir, GridConfig(**SMALL, margin=0.25), TrajectoryConfig())
    run = Run(run_dir)
    meta = run.read()
    assert meta["kind"] == "trajectory" and meta["trajectory"]["snapshots"] == SNAPSHOTS
    shares = meta["trajectory"]["explained"]
    assert shares == result.explained and shares[0] >= shares[1] > 0 and sum(shares) <= 1
    assert "PC1" in result.summary()
    g = load_frame_grid(run, 0)
    pts = np.array(meta["trajectory"]["points"])
    np.testing.assert_allclose(g.meta.control_points, pts)
    assert g.meta.points["final"] == (0.0, 0.0) and len(g.meta.snapshots) == SNAPSHOTS
    assert g.xs[0] < pts[:, 0].min() and g.xs[-1] > pts[:, 0].max()
    assert g.ys[0] < pts[:, 1].min() and g.ys[-1] > pts[:, 1].max()
    assert np.isfinite(g.loss).all()
    again = grid_run(run_dir, GridConfig())  # `lossart grid RUN`: nothing left to do
    assert again.points_computed == 0

    build_terrain(run_dir)
    bundle = load_bundle(run_dir)
    assert bundle.kind == "trajectory" and len(bundle.frames) == SNAPSHOTS
    last = bundle.frames[-1]
    assert last.path.shape == (SNAPSHOTS, 3)
    np.testing.assert_allclose(last.path[:, :2], pts, rtol=1e-6, atol=1e-9)
    assert [len(f.path) for f in bundle.frames] == list(range(1, SNAPSHOTS + 1))
    assert np.array_equal(bundle.heights(0), bundle.heights(SNAPSHOTS - 1))  # a fixed terrain
    half = bundle.state(2.5)  # a video between snapshots 2 and 3: the next segment grows in
    assert len(half.path) == 4
    np.testing.assert_allclose(half.path[-1, :2], (pts[2] + pts[3]) / 2, atol=1e-6)
    names = {p.name: p for p in last.points}
    assert names["final"].xy == (0.0, 0.0)
    assert [f.step for f in bundle.frames] == [r["step"] for r in meta["trajectory"]["records"]]
    report = validate_bundle(run.terrain)
    assert report.ok, report.problems

    pytest.importorskip("bpy", reason="the bpy module (Blender as a Python module) is missing")
    import imageio.v3 as iio

    still = tmp_path / "still.png"
    assert main(["render", str(run_dir), "--still", "--size", "96x64", "--samples", "2",
                 "--no-denoise", "--render-device", "CPU", "--out", str(still)]) == 0  # fmt: skip
    assert iio.imread(still).std() > 10


def test_cli_train_snapshots_and_trajectory(tmp_path, capsys):
    out = tmp_path / "c.pt"
    assert main(["train", "--model-arg", "width=4", "--epochs", "1", "--snapshots", "4",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "snapshots: 4 in c.pt.snapshots/" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["trajectory", str(out), "--out", str(run), "--resolution", "4",
                 "--subset", "16"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "variance explained: PC1" in text and "grid 4x4" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--snapshots", "1", "--out", "{tmp}/x.pt"], "--snapshots 1"),
        (["trajectory", "{plain}", "--out", "{tmp}/r"], "has no training snapshots"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, trained, args, message):
    plain = tmp_path / "plain.pt"
    ckpt = load_checkpoint(trained[0])
    ckpt.extra = {k: v for k, v in ckpt.extra.items() if k != "snapshots"}
    from lossart.training.checkpoint import save_checkpoint

    save_checkpoint(ckpt, plain)
    argv = [a.format(tmp=tmp_path, plain=plain) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
