"""Curve training end to end on the built-in `shapes` data: barrier, frames, resume, refusals."""

from __future__ import annotations

import json
import os
import signal
from itertools import pairwise

import pytest
import torch

from lossart.analyses.eval_curve import evaluate_curve_run
from lossart.cli import main
from lossart.data import load_dataset, num_batches
from lossart.errors import LossartError
from lossart.geometry.curves import CurveSpec, coefficients, curve_point, init_bends
from lossart.geometry.plane import control_points_2d
from lossart.geometry.weights import ParamLayout, flat_params
from lossart.grid.planes import curve_window, frame_plane
from lossart.training.checkpoint import load_checkpoint, save_checkpoint
from lossart.training.curve import CurveConfig, curve_objective, frame_steps, train_curve
from lossart.training.endpoints import TrainConfig, train_endpoint

TINY = {"width": 8}  # smallcnn on 16x16 shapes: endpoints train in about a second


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory, one_thread):
    """Two independently trained small nets (different seeds) on the built-in shapes data."""
    root = tmp_path_factory.mktemp("endpoints")
    paths = []
    for seed in (5, 6):
        out = root / f"w{seed}.pt"
        train_endpoint(
            TrainConfig(
                data="shapes",
                model="smallcnn",
                model_kwargs=TINY,
                epochs=3,
                seed=seed,
                out=out,
                progress=False,
                train_eval_size=500,
            )
        )
        paths.append(str(out))
    return paths


def _cfg(endpoints, out, **kw):
    base = dict(
        w1=endpoints[0], w2=endpoints[1], out=str(out), epochs=1, lr=0.05, batch_size=256, frames=5
    )
    base.update(kw)
    return CurveConfig(**base)


def test_objective_decays_the_curve_point_and_reaches_bends_through_their_coefficient():
    """Garipov's objective: Loss(phi(t)) + wd/2 |phi(t)|^2, d/d(theta_i) = c_i(t) d/d(phi)."""
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 4)
    )
    model.train()
    layout = ParamLayout.of(model)
    w1 = flat_params(model)
    w2 = w1 + torch.randn_like(w1)
    spec = CurveSpec("bezier", 2)
    bends = init_bends(spec, w1, w2, noise=0.3).requires_grad_(True)
    x, y, t, wd = torch.randn(10, 3), torch.randint(0, 4, (10,)), 0.3, 0.1
    before = {n: b.clone() for n, b in model.named_buffers()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    objective, loss = curve_objective(
        model, layout, buffers, spec, w1, bends, w2, t, x, y, "classification", wd
    )
    objective.backward()
    phi = curve_point(spec, w1, bends.detach(), w2, t).requires_grad_(True)
    fresh = {n: b.clone() for n, b in before.items()}
    out = torch.func.functional_call(model, {**fresh, **layout.unflatten(phi)}, (x,))
    ref = torch.nn.functional.cross_entropy(out, y)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    (ref + wd / 2 * phi.square().sum()).backward()
    c = coefficients(spec, torch.tensor(t))
    for i in range(spec.bends):
        assert torch.allclose(bends.grad[i], c[i + 1] * phi.grad, atol=1e-6)
    for n, b in model.named_buffers():  # BN statistics went to the private buffers only
        assert torch.equal(b, before[n])
    assert not torch.equal(buffers["1.running_mean"], before["1.running_mean"])


def test_frame_steps_uniform_and_log():
    assert frame_steps(100, 5) == [0, 25, 50, 75, 100]
    for spacing in ("uniform", "log"):
        for total, frames in ((100, 11), (10, 11), (1000, 30), (7, 2)):
            steps = frame_steps(total, frames, spacing)
            assert len(steps) == frames and steps[0] == 0 and steps[-1] == total
            assert all(a < b for a, b in pairwise(steps))
    log = frame_steps(1000, 10, "log")
    assert log[1] == 1 and log[2] - log[1] < log[-1] - log[-2]  # dense early, sparse late
    with pytest.raises(LossartError, match="^frames 12: more than the 11 steps"):
        frame_steps(10, 12)


def test_trained_curve_has_much_lower_barrier_than_the_segment(endpoints, tmp_path):
    """The seed's central claim. Measured on these settings (3 endpoint pairs x 2 curve seeds):
    segment/curve barrier ratio 12.3-15.3, segment barrier 2.0-3.3; asserted: ratio > 5."""
    cr = train_curve(_cfg(endpoints, tmp_path / "run", epochs=2, batch_size=64, frames=3))
    res = evaluate_curve_run(cr.run, points=11, subset=500)
    assert res.segment.barrier > 1.0
    assert res.segment.barrier > 5 * res.curve.barrier
    assert res.curve.points[0] == res.segment.points[0]  # same endpoints, evaluated once
    for key in ("csv", "json", "png"):
        assert os.path.getsize(res.files[key]) > 0
    data = json.loads((tmp_path / "run" / "analyses" / "eval_curve.json").read_text())
    assert data["barrier"]["segment"] == pytest.approx(res.segment.barrier)
    assert len(data["paths"]["curve"]) == 11
    rows = (tmp_path / "run" / "analyses" / "eval_curve.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 11


def test_frame_records_are_complete_and_ordered(endpoints, tmp_path):
    cfg = _cfg(
        endpoints, tmp_path / "run", frames=6, frame_spacing="log", kind="polychain", bends=2
    )
    cr = train_curve(cfg)
    spe = num_batches(load_dataset("shapes"), cfg.batch_size)
    assert cr.total_steps == spe and cr.complete
    doc = json.loads((tmp_path / "run" / "curve" / "frames.json").read_text())
    assert doc["curve"] == {"kind": "polychain", "bends": 2}
    assert [f["index"] for f in doc["frames"]] == list(range(6))
    assert [f["step"] for f in doc["frames"]] == frame_steps(cr.total_steps, 6, "log")
    for f, rec in zip(doc["frames"], cr.frames, strict=True):
        assert rec.epoch == pytest.approx(rec.step / spe) and rec.train_loss > 0
        assert (tmp_path / "run" / "curve" / f["file"]).is_file()
    # the endpoints are the checkpoints' weights, bit for bit; frame 0 is the straight line
    ck = load_checkpoint(endpoints[0])
    model = cr.build_model()
    w1 = torch.cat([ck.state_dict[n].reshape(-1) for n, _ in model.named_parameters()])
    assert torch.equal(cr.w1, w1)
    assert torch.equal(curve_point(cr.spec, cr.w1, cr.frames[0].bends, cr.w2, 0.0), w1)
    assert torch.allclose(cr.frames[0].bends, init_bends(CurveSpec("polychain", 2), cr.w1, cr.w2))
    assert torch.equal(cr.frames[-1].bends, cr.final_bends)
    assert not torch.equal(cr.frames[1].bends, cr.frames[0].bends)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["kind"] == "curve" and meta["model"]["name"] == "smallcnn"
    assert meta["commands"][-1]["command"] == "curve"
    # the plane geometry of a real run: one window holds every frame, endpoints fixed on screen
    win = curve_window(cr)
    length = float((cr.w2 - cr.w1).norm())
    for i, fr in enumerate(cr.frames):
        cp = control_points_2d(frame_plane(cr, i), cr.w1, fr.bends, cr.w2)
        assert win.contains(cp)
        assert cp[0] == pytest.approx((0, 0), abs=1e-3) and cp[-1] == pytest.approx(
            (length, 0), rel=1e-4, abs=1e-3
        )
    # a finished run reruns as a no-op with the same frames
    again = train_curve(cfg)
    assert [f.step for f in again.frames] == [f.step for f in cr.frames]


class _Crash(Exception):
    pass


@pytest.mark.parametrize("how", ["ctrl-c", "crash"])
def test_interrupted_run_resumes_to_identical_frames(endpoints, tmp_path, how):
    cfg = _cfg(endpoints, tmp_path / "ref", epochs=2, frames=7)
    ref = train_curve(cfg)
    spe = ref.total_steps // 2
    stop = spe + spe // 2  # mid second epoch (Ctrl-C), or after the first epoch's save (crash)

    def on_step(step, loss):
        if step == stop:
            if how == "ctrl-c":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise _Crash

    cfg2 = _cfg(endpoints, tmp_path / "int", epochs=2, frames=7)
    with pytest.raises(KeyboardInterrupt if how == "ctrl-c" else _Crash):
        train_curve(cfg2, on_step=on_step)
    partial = json.loads((tmp_path / "int" / "curve" / "frames.json").read_text())["frames"]
    assert 0 < len(partial) < 7
    state = torch.load(tmp_path / "int" / "curve" / "state.pt", weights_only=True)
    assert state["step"] == (stop if how == "ctrl-c" else spe)
    with pytest.raises(LossartError, match="has not finished"):
        evaluate_curve_run(tmp_path / "int", points=3, subset=50)
    resumed = train_curve(cfg2)
    assert [f.step for f in resumed.frames] == [f.step for f in ref.frames]
    assert [f.train_loss for f in resumed.frames] == [f.train_loss for f in ref.frames]
    for a, b in zip(resumed.frames, ref.frames, strict=True):
        assert torch.equal(a.bends, b.bends)
    assert torch.equal(resumed.final_bends, ref.final_bends)


def test_refusals_are_one_line(endpoints, tmp_path, capsys):
    # endpoints of different architectures
    other = tmp_path / "other.pt"
    train_endpoint(
        TrainConfig(
            data="shapes",
            model="smallcnn",
            model_kwargs={"width": 4},
            epochs=1,
            seed=1,
            out=other,
            progress=False,
            train_eval_size=100,
        )
    )
    with pytest.raises(LossartError, match="differs"):
        train_curve(_cfg([endpoints[0], str(other)], tmp_path / "a"))
    # same spec but a tensor of another shape
    ck = load_checkpoint(endpoints[1])
    name = next(iter(ck.state_dict))
    ck.state_dict[name] = torch.zeros(3)
    bad = tmp_path / "bad.pt"
    save_checkpoint(ck, bad)
    with pytest.raises(LossartError, match="has shape"):
        train_curve(_cfg([endpoints[0], str(bad)], tmp_path / "b"))
    # a folder that is not this run
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(LossartError, match="not a lossart run"):
        train_curve(_cfg(endpoints, tmp_path / "c"))
    # data the endpoints' model cannot take
    with pytest.raises(LossartError, match="--data 'blobs2d' has"):
        train_curve(_cfg(endpoints, tmp_path / "g", data="blobs2d"))
    # frames beyond the number of steps
    with pytest.raises(LossartError, match="^frames 1000: more than the"):
        train_curve(_cfg(endpoints, tmp_path / "d", frames=1000))
    assert not (tmp_path / "d").exists()
    # an existing curve run asked with other settings
    train_curve(_cfg(endpoints, tmp_path / "e", frames=2))
    with pytest.raises(LossartError, match="--lr"):
        train_curve(_cfg(endpoints, tmp_path / "e", frames=2, lr=0.1))
    # the CLI prints one line and exits 2
    code = main(["curve", endpoints[0], str(other), "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("lossart: error:") and "\n" not in err
    code = main(["eval-curve", str(tmp_path / "c")])
    assert code == 2 and "not a lossart run" in capsys.readouterr().err
