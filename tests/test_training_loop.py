"""The shared training loop: settings from typed configs, refusals, resume files, the loop's
epoch bookkeeping and Ctrl-C (both trainers' end-to-end resume tests live in test_train.py and
test_curve_training.py)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

import pytest
import torch

from lossart.data import DataSpec
from lossart.devices import cpu_threads
from lossart.errors import LossartError
from lossart.models import ModelSpec
from lossart.training.curve import CurveConfig
from lossart.training.endpoints import TrainConfig
from lossart.training.loop import (
    LoopPlan,
    ResumeState,
    check_settings,
    run_loop,
    settings_of,
)


def test_settings_leave_run_options_out_and_store_specs_as_dicts():
    cfg = TrainConfig(data=DataSpec("shapes"), model=ModelSpec("mlp", 2, (2,)), epochs=3,
                      batch_size=8, lr=0.1, wd=0.0, device="cuda", out="x.pt", threads=4)  # fmt: skip
    s = settings_of(cfg)
    assert set(s) == {"data", "model", "epochs", "batch_size", "lr", "momentum", "wd",
                      "schedule", "seed", "augment", "snapshots"}  # fmt: skip
    # checkpoints from before --snapshots (no such key) match a training without snapshots
    check_settings({k: v for k, v in s.items() if k != "snapshots"}, s, "a.pt", "")
    assert s["model"] == ModelSpec("mlp", 2, (2,)).to_dict() and s["data"]["name"] == "shapes"
    curve = settings_of(CurveConfig(w1="a", w2="b", out="r", data=DataSpec("shapes")))
    # the keys of run.json "curve_training" and of curve/state.pt, as before the shared loop
    assert set(curve) == {"kind", "bends", "epochs", "lr", "wd", "momentum", "batch_size", "seed",
                          "frames", "frame_spacing", "init_noise", "schedule", "augment",
                          "loss_window", "data"}  # fmt: skip


def test_check_settings_names_the_first_differing_flag():
    check_settings({"lr": 0.1, "batch_size": 8}, {"lr": 0.1, "batch_size": 8}, "x", "hint")
    with pytest.raises(LossartError, match=r"x with other settings \(--batch-size 8, asked 16\); h"):
        check_settings({"lr": 0.1, "batch_size": 8}, {"lr": 0.1, "batch_size": 16}, "x", "h")
    with pytest.raises(LossartError, match="--loss-window None, asked 5"):
        check_settings({}, {"loss_window": 5}, "x", "h")
    with pytest.raises(LossartError, match="--extra 1, asked None"):
        check_settings({"extra": 1}, {}, "x", "h")


def test_resume_state_refuses_foreign_and_other_settings(tmp_path):
    path = tmp_path / "state.pt"
    state = ResumeState(path, {"format": "mine"}, {"lr": 0.1}, "remove it")
    assert state.load() is None
    state.save({"step": 3})
    assert state.load()["step"] == 3
    with pytest.raises(LossartError, match=r"other settings \(--lr 0.1, asked 0.2\)"):
        ResumeState(path, {"format": "mine"}, {"lr": 0.2}, "remove it").load()
    with pytest.raises(LossartError, match="not a resume state this lossart reads; remove it"):
        ResumeState(path, {"format": "other"}, {"lr": 0.1}, "remove it").load()
    path.write_bytes(b"torn")
    with pytest.raises(LossartError, match="not a readable lossart resume state"):
        state.load()


def test_thread_policy():
    old = torch.get_num_threads()
    with cpu_threads(None, "cpu", small=True):
        assert torch.get_num_threads() == 1
    with cpu_threads(None, "cpu", small=False):
        assert torch.get_num_threads() == old
    assert torch.get_num_threads() == old
    with pytest.raises(LossartError, match="^threads 0: "), cpu_threads(0, "cpu", small=True):
        pass


@dataclass
class _Counter:
    """A trainer that sums its step indices: any skipped or repeated step shows in the total."""

    spe: int = 4
    interrupt_at: int | None = None
    short_epoch: bool = False
    total: int = 0
    closed: list = field(default_factory=list)

    def batches(self, epoch, start):
        n = self.spe - 1 if self.short_epoch else self.spe
        return [(torch.zeros(1), torch.zeros(1))] * (n - start)

    def step(self, step, x, y):
        self.total += step
        if step + 1 == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return 0.5

    def after_step(self, steps, loss):
        return {"loss": f"{loss:.1f}"}

    def end_epoch(self, epoch):
        self.closed.append(epoch)

    def state(self, steps):
        return {"steps": steps, "total": self.total, "closed": list(self.closed)}


def _plan():
    return LoopPlan(epochs=3, steps_per_epoch=4, desc="test", progress=False)


@pytest.mark.parametrize("at, saved", [(6, 6), (8, 8)])
def test_ctrl_c_saves_then_a_resume_continues_exactly(tmp_path, at, saved):
    """Mid-epoch (step 6) the state is saved at once; at an epoch's last step (8) the epoch is
    closed and saved first, so the resume starts the next epoch with nothing left open."""
    state = ResumeState(tmp_path / "s.pt", {"format": "t"}, {}, "remove it")
    first = _Counter(interrupt_at=at)
    with pytest.raises(KeyboardInterrupt):
        run_loop(first, _plan(), state)
    st = state.load()
    assert st["steps"] == saved and st["closed"] == list(range(saved // 4))
    again = _Counter(total=st["total"], closed=st["closed"])
    assert run_loop(again, _plan(), state, start=st["steps"]) == 12
    assert again.total == sum(range(12)) and again.closed == [0, 1, 2]


def test_an_epoch_with_missing_batches_is_an_error(tmp_path):
    state = ResumeState(tmp_path / "s.pt", {"format": "t"}, {}, "remove it")
    with pytest.raises(LossartError, match="gave 3 batches in epoch 0, expected 4"):
        run_loop(_Counter(short_epoch=True), _plan(), state)
