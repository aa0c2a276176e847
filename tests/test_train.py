"""Endpoint training: schedules, loss goes down, exact resume after Ctrl-C or a crash, existing
outputs, and the CLI's one-line errors."""

from __future__ import annotations

import math
import os
import signal

import numpy as np
import pytest
import torch

import lossart.training.endpoints as train_mod
from lossart.cli import main
from lossart.data import load_dataset
from lossart.errors import LossartError
from lossart.models import ModelSpec, create_model
from lossart.training.checkpoint import load_checkpoint
from lossart.training.endpoints import (
    TrainConfig,
    evaluate_model,
    learning_rate,
    partial_path,
    train_endpoint,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_garipov_schedule():
    assert learning_rate("garipov", 0.1, 0.0) == 0.1
    assert learning_rate("garipov", 0.1, 0.5) == 0.1
    assert learning_rate("garipov", 0.1, 0.7) == pytest.approx(0.1 * (1 - 0.99 * 0.5))
    assert learning_rate("garipov", 0.1, 0.9) == pytest.approx(0.001)
    assert learning_rate("garipov", 0.1, 0.95) == pytest.approx(0.001)
    assert learning_rate("garipov", 0.1, 1.0) == pytest.approx(0.001)


def test_cosine_and_constant_schedules():
    assert learning_rate("cosine", 0.2, 0.0) == pytest.approx(0.2)
    assert learning_rate("cosine", 0.2, 0.5) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.2, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate("constant", 0.2, 0.7) == 0.2
    with pytest.raises(LossartError, match="^schedule 'step': expected one of garipov"):
        learning_rate("step", 0.1, 0.5)


def test_training_reduces_the_loss(tmp_path):
    ds = load_dataset("shapes")
    torch.manual_seed(0)
    fresh = create_model(ModelSpec("smallcnn", ds.num_classes, ds.input_shape))
    before, _ = evaluate_model(fresh, ds, ds.x_test, ds.y_test, "cpu")
    ckpt = train_endpoint(
        TrainConfig(data="shapes", epochs=2, out=tmp_path / "a.pt", progress=False)
    )
    assert ckpt.metrics["test_loss"] < 0.7 * before
    assert ckpt.metrics["test_accuracy"] > 0.5  # six classes: chance is 0.17
    assert ckpt.model.name == "smallcnn" and ckpt.data.name == "shapes"
    assert [h["epoch"] for h in ckpt.extra["history"]] == [1, 2]
    assert ckpt.extra["history"][1]["train_loss"] < ckpt.extra["history"][0]["train_loss"]
    assert load_checkpoint(tmp_path / "a.pt").metrics == ckpt.metrics
    assert not partial_path(tmp_path / "a.pt").exists()


def test_regression_training(tmp_path):
    ckpt = train_endpoint(
        TrainConfig(data="wave1d", epochs=30, out=tmp_path / "w.pt", progress=False)
    )
    first = ckpt.extra["history"][0]["train_loss"]
    assert ckpt.metrics["train_loss"] < 0.5 * first
    assert math.isnan(ckpt.metrics["test_accuracy"])


@pytest.fixture
def tiny_images(tmp_path):
    """96 random 8x8 images in 4 classes: smallcnn trains on it in a blink (BN, crop-flip)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (96, 8, 8, 3), dtype=np.uint8),
        y_train=rng.integers(0, 4, 96),
        x_test=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8),
        y_test=rng.integers(0, 4, 20),
    )
    return f"npz:{path}"


def _cfg(data, out, **kw):
    base = dict(data=data, model="smallcnn", model_kwargs={"width": 4}, epochs=3, batch_size=16,
                lr=0.05, out=out, progress=False, save_every_s=1e9)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _fail_at(monkeypatch, call: int, how: str):
    """Make the `call`-th loss evaluation send Ctrl-C to ourselves, or crash."""
    real = train_mod.task_loss
    count = {"n": 0}

    def loss(*args, **kwargs):
        count["n"] += 1
        if count["n"] == call:
            if how == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "task_loss", loss)


@pytest.mark.parametrize(
    "call, how, expected", [(9, "sigint", KeyboardInterrupt), (8, "crash", RuntimeError)]
)
def test_resume_is_bitwise_exact(tmp_path, monkeypatch, tiny_images, call, how, expected):
    """Ctrl-C mid-epoch (state saved after the step) or a crash (state from the last epoch end):
    rerunning the same config ends with weights identical to an uninterrupted run."""
    reference = train_endpoint(_cfg(tiny_images, tmp_path / "ref.pt"))
    out = tmp_path / "a.pt"
    with monkeypatch.context() as m:
        _fail_at(m, call, how)
        with pytest.raises(expected):
            train_endpoint(_cfg(tiny_images, out))
    assert partial_path(out).exists() and not out.exists()
    state = torch.load(partial_path(out), weights_only=True)
    assert (state["epoch"], state["batch"]) == ((1, 3) if how == "sigint" else (1, 0))
    resumed = train_endpoint(_cfg(tiny_images, out))
    assert resumed.state_dict.keys() == reference.state_dict.keys()
    for key, value in reference.state_dict.items():
        assert torch.equal(resumed.state_dict[key], value), key
    assert resumed.extra["history"] == reference.extra["history"]
    assert resumed.metrics == reference.metrics
    assert not partial_path(out).exists()


def test_partial_from_other_settings_is_refused(tmp_path, monkeypatch, tiny_images):
    out = tmp_path / "a.pt"
    with monkeypatch.context() as m:
        _fail_at(m, 2, "sigint")
        with pytest.raises(KeyboardInterrupt):
            train_endpoint(_cfg(tiny_images, out))
    with pytest.raises(LossartError, match="other settings"):
        train_endpoint(_cfg(tiny_images, out, lr=0.01))


def test_existing_output(tmp_path, tiny_images):
    out = tmp_path / "a.pt"
    first = train_endpoint(_cfg(tiny_images, out, epochs=1))
    stamp = out.stat().st_mtime_ns
    again = train_endpoint(_cfg(tiny_images, out, epochs=1))  # same settings: nothing to do
    assert out.stat().st_mtime_ns == stamp and again.metrics == first.metrics
    with pytest.raises(LossartError, match="other settings"):
        train_endpoint(_cfg(tiny_images, out, epochs=2))


def test_seeds_give_different_optima(tmp_path, tiny_images):
    a = train_endpoint(_cfg(tiny_images, tmp_path / "a.pt", epochs=1, seed=0))
    b = train_endpoint(_cfg(tiny_images, tmp_path / "b.pt", epochs=1, seed=1))
    assert not torch.equal(a.state_dict["fc.weight"], b.state_dict["fc.weight"])


def test_cli_models(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet20-noskip" in out and "269,722" in out and "wrn28-10" in out


def test_cli_train(tmp_path, capsys, tiny_images):
    out = tmp_path / "c.pt"
    rc = main(["train", "--data", tiny_images, "--model", "smallcnn", "--model-arg", "width=4",
               "--epochs", "1", "--batch-size", "16", "--out", str(out)])  # fmt: skip
    assert rc == 0 and out.is_file()
    assert "test accuracy" in capsys.readouterr().out
    assert load_checkpoint(out).model.kwargs == {"width": 4}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet21"], "unknown model; known: mlp"),
        (["--data", "imagenet"], "unknown dataset; known: shapes"),
        (["--data", "cifar10", "--data-root", "{tmp}/none"], "--download"),
        (["--data", "npz:{tmp}/absent.npz"], "absent.npz"),
        (["--model", "no_such_pkg_xyz:make"], "cannot import module"),
        (["--model-arg", "width"], "expected KEY=VALUE"),
        (["--epochs", "0"], "--epochs 0"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    rc = main(["train", *args, "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("lossart: error: ") and err.count("\n") == 1 and message in err


def test_channels_last_training(tmp_path, tiny_images):
    ckpt = train_endpoint(_cfg(tiny_images, tmp_path / "cl.pt", epochs=1, channels_last=True))
    assert all(torch.isfinite(v).all() for v in ckpt.state_dict.values())
    assert math.isfinite(ckpt.metrics["test_loss"])
