"""SIGTERM is Ctrl-C, and a full disk is one line (docs/reliability.md, "Signals" and "A full disk").

SIGTERM is what a scheduler sends before it pre-empts a job. Each long command, stopped by it
mid-way, leaves a state the rerun resumes from, with the very result an uninterrupted run gives:
endpoint training and curve training (in-process through `lossart.cli.main`, the signal sent at a
chosen step). The two-rank `torchrun` grid's case sits with the other torchrun tests in
tests/test_grid_run.py, the render's with the other Blender tests in tests/test_reliability.py.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from grid_fixtures import make_curve_run

from lossart.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]
SIGTERM_EXIT = 128 + signal.SIGTERM


def _sigterm_at(monkeypatch, module, name: str, call: int) -> None:
    """`module.name` sends this process SIGTERM on its `call`-th use (as a scheduler would)."""
    real = getattr(module, name)
    count = {"n": 0}

    def wrapped(*args, **kwargs):
        count["n"] += 1
        if count["n"] == call:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)


def test_sigterm_during_endpoint_training_resumes_to_the_same_weights(tmp_path, monkeypatch, capsys):
    import lossart.training.endpoints as endpoints

    args = ["train", "--model-arg", "width=4", "--epochs", "1", "--batch-size", "128"]
    assert main([*args, "--out", str(tmp_path / "ref.pt")]) == 0
    out = tmp_path / "a.pt"
    with monkeypatch.context() as m:
        _sigterm_at(m, endpoints, "task_loss", 5)
        assert main([*args, "--out", str(out)]) == SIGTERM_EXIT
    err = capsys.readouterr().err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert endpoints.partial_path(out).is_file() and not out.exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers put back
    assert main([*args, "--out", str(out)]) == 0
    ref = torch.load(tmp_path / "ref.pt", weights_only=True)["state_dict"]
    got = torch.load(out, weights_only=True)["state_dict"]
    assert all(torch.equal(got[k], v) for k, v in ref.items())
    assert not endpoints.partial_path(out).exists()


def test_sigterm_during_curve_training_resumes_to_the_same_curve(tmp_path, monkeypatch, capsys):
    import lossart.training.curve as curve

    run = make_curve_run(tmp_path / "ends")
    a, b = str(run.endpoints / "w1.pt"), str(run.endpoints / "w2.pt")
    args = ["curve", a, b, "--epochs", "2", "--frames", "4", "--batch-size", "128"]
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "c"
    with monkeypatch.context() as m:
        _sigterm_at(m, curve, "curve_objective", 4)
        assert main([*args, "--out", str(out)]) == SIGTERM_EXIT
    assert "terminated (SIGTERM)" in capsys.readouterr().err
    assert (out / "curve" / "state.pt").is_file() and not (out / "curve" / "final.pt").exists()
    assert main([*args, "--out", str(out)]) == 0
    for rel in ["final.pt", *(f"frames/frame_{i:05d}.pt" for i in range(4))]:
        want = torch.load(tmp_path / "ref" / "curve" / rel, weights_only=True)["bends"]
        assert torch.equal(torch.load(out / "curve" / rel, weights_only=True)["bends"], want), rel


# ---------------------------------------------------------------- a full disk


def _fill_disk_after(monkeypatch, calls: int, exc: BaseException) -> None:
    """torch.save fails like a full disk from its `calls`-th use on, after writing some bytes."""
    real = torch.save
    count = {"n": 0}

    def save(obj, f, *args, **kwargs):
        count["n"] += 1
        if count["n"] >= calls:
            Path(f).write_bytes(b"PK\x03\x04 partial")
            raise exc
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize("how", ["enospc", "torch-runtime"])
def test_a_full_disk_mid_training_is_one_line_and_keeps_the_last_state(tmp_path, monkeypatch,
                                                                        capsys, how):
    """The first epoch's state is saved; saving the second fails for lack of space: one line
    naming the file, the first epoch's state intact, no temp file, and the rerun (space freed)
    finishes with the weights of an uninterrupted run."""
    import lossart.format.atomic as atomic
    import lossart.training.endpoints as endpoints

    args = ["train", "--model-arg", "width=4", "--epochs", "2", "--batch-size", "256"]
    assert main([*args, "--out", str(tmp_path / "ref.pt")]) == 0
    out = tmp_path / "a.pt"
    partial = endpoints.partial_path(out)
    exc = OSError(errno.ENOSPC, "No space left on device") if how == "enospc" else RuntimeError(
        "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    with monkeypatch.context() as m:
        _fill_disk_after(m, 2, exc)
        if how != "enospc":  # torch says nothing of space: the free space says it
            m.setattr(atomic.shutil, "disk_usage", lambda p: type("U", (), {"free": 4096})())
        assert main([*args, "--out", str(out)]) == 2
        saved = partial.read_bytes()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(partial) in err and "stays as it was" in err, err
    assert torch.load(partial, weights_only=True)["epoch"] == 1  # the last complete state
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert saved == partial.read_bytes()
    assert main([*args, "--out", str(out)]) == 0
    ref = torch.load(tmp_path / "ref.pt", weights_only=True)["state_dict"]
    got = torch.load(out, weights_only=True)["state_dict"]
    assert all(torch.equal(got[k], v) for k, v in ref.items())


def test_a_real_full_file_system_is_one_line(tmp_path, capsys):
    """A 64 KiB tmpfs (root only): a grid whose tiles do not fit stops with one line, and the
    tiles that fit stay; elsewhere the monkeypatched cases above stand in for it."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True,
                       capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        run = make_curve_run(tmp_path / "run")
        run.grids.symlink_to(mnt)  # the grids land on the small disk
        code = main(["grid", str(run.root), "--resolution", "40", "--subset", "16",
                     "--tile-rows", "2"])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert "No space left on device" in err or "no space left" in err, err
        assert not list(mnt.rglob("*.tmp"))
        tiles = list(mnt.rglob("tile_*.npz"))
        assert tiles and all(np.load(t)["loss"].size for t in tiles)  # every tile whole
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_disk_full_is_not_claimed_for_other_errors(tmp_path):
    from lossart.atomic import write_json
    from lossart.format.atomic import disk_full

    with pytest.raises(TypeError):
        write_json(tmp_path / "a.json", {"x": object()})  # a bug stays a bug, with its traceback
    assert not list(tmp_path.iterdir())
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert disk_full(RuntimeError("unexpected pos"), tmp_path) is None  # space is left here


def test_a_grid_on_a_read_only_run_is_one_line_before_any_lock(tmp_path, capsys):
    """A run on a read-only file system (root ignores chmod 555, so a read-only tmpfs stands in):
    `grid` refuses it in one line naming the place in RUN it cannot write, before any grid lock
    (was a traceback from the lock's mkdir)."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True,
                       capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        make_curve_run(mnt / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True, capture_output=True)
        code = main(["grid", str(mnt / "run"), "--resolution", "5", "--subset", "16"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert f"{mnt / 'run'}" in err and "Read-only file system" in err, err
        assert not (mnt / "run" / "grids").exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
