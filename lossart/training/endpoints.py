"""Endpoint training: one optimum per call, SGD with momentum and weight decay, resumable.

The loop (threads, Ctrl-C, resume state, settings checks, progress) is `lossart.training.loop`'s;
this module brings the SGD step and what it keeps. Resuming is exact: the data order and
augmentation are a pure function of (seed, epoch, batch) (`lossart.data.train_loader`), and the
state file `<out>.partial` holds the weights, buffers, optimizer momentum, epoch sums and position
(`{"format": "lossart-train-state", "settings", "epoch", "batch", "model", "optimizer", "history",
"sums", "wall_s", "snapshots"}`). It is written atomically after every epoch, every
`save_every_s` and on Ctrl-C; rerunning the same command continues from it and ends
bitwise-equal to an uninterrupted run. With `snapshots` N, N copies of the weights evenly spaced
along training (the initial and the final ones included) go to `<out>.snapshots/` as they are
reached (`lossart.training.snapshots`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lossart.checks import output_file
from lossart.data import Dataset, load_dataset, num_batches, parse_data_spec, train_loader
from lossart.data.batches import normalize
from lossart.devices import cpu_threads, pick_device, resolve_device
from lossart.errors import LossartError
from lossart.evaluation import task_loss
from lossart.geometry.weights import flat_params
from lossart.locks import working_on
from lossart.models import ModelSpec
from lossart.models.fit import build_for_data
from lossart.options import check_value
from lossart.precision import precision, resolve_dtype
from lossart.progress import progress, tqdm
from lossart.runs import versions
from lossart.training.checkpoint import (
    Checkpoint,
    check_finite_weights,
    load_checkpoint,
    save_checkpoint,
)
from lossart.training.config import SCHEDULES, TrainConfig  # noqa: F401  (importable here)
from lossart.training.loop import (
    LoopPlan,
    ResumeState,
    check_finite,
    check_settings,
    run_loop,
    settings_of,
)
from lossart.training.snapshots import (
    SnapshotRecord,
    check_count,
    snapshot_dir,
    snapshot_meta,
    snapshot_steps,
    write_snapshot,
)

STATE_FORMAT = "lossart-train-state"


def learning_rate(schedule: str, base_lr: float, progress: float) -> float:
    """Learning rate at `progress` in [0, 1] of training.

    "garipov" (the original mode-connectivity code): `base_lr` for the first half, then linear
    decay to 1% of it at 90%, 1% after. "cosine": half a cosine from `base_lr` to 0.
    "constant": `base_lr` throughout.
    """
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "garipov":
        if p <= 0.5:
            return base_lr
        if p <= 0.9:
            return base_lr * (1.0 - 0.99 * (p - 0.5) / 0.4)
        return base_lr * 0.01
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "constant":
        return base_lr
    check_value(TrainConfig, "schedule", schedule)
    raise AssertionError(schedule)  # every declared schedule is handled above


# Per-dataset defaults: (model, epochs, batch size, lr, weight decay). CIFAR-like numbers follow
# the mode-connectivity papers; the small ones are tuned to train in seconds on a CPU.
DEFAULTS = {
    "shapes": ("smallcnn", 12, 64, 0.05, 5e-4),
    "blobs2d": ("mlp", 40, 64, 0.05, 1e-4),
    "wave1d": ("mlp", 400, 20, 0.02, 1e-4),
    "mnist": ("smallcnn", 10, 128, 0.05, 5e-4),
    "fashion-mnist": ("smallcnn", 20, 128, 0.05, 5e-4),
    "images": ("resnet20", 200, 128, 0.1, 3e-4),
    "features": ("mlp", 100, 128, 0.05, 1e-4),
}


def train_defaults(ds: Dataset) -> tuple[str, int, int, float, float]:
    """(model, epochs, batch size, lr, weight decay) suited to this dataset."""
    if ds.spec.name in DEFAULTS:
        return DEFAULTS[ds.spec.name]
    return DEFAULTS["images" if ds.is_image else "features"]


def resolve(cfg: TrainConfig, ds: Dataset) -> TrainConfig:
    """The config with every default filled in: model a `ModelSpec`, data the dataset's spec."""
    model, epochs, batch_size, lr, wd = train_defaults(ds)
    if isinstance(cfg.model, ModelSpec):
        spec = cfg.model
    else:
        spec = ModelSpec(cfg.model or model, ds.num_classes, ds.input_shape, dict(cfg.model_kwargs))
    if spec.input_shape != tuple(ds.input_shape) or spec.num_classes != ds.num_classes:
        raise LossartError(
            f"--model {spec.name!r}: spec has {spec.num_classes} classes, "
            f"input {spec.input_shape}; "
            f"data {ds.spec.name!r} has {ds.num_classes}, input {ds.input_shape}"
        )
    resolved = replace(
        cfg,
        model=spec,
        data=ds.spec,
        epochs=int(cfg.epochs if cfg.epochs is not None else epochs),
        batch_size=int(cfg.batch_size if cfg.batch_size is not None else batch_size),
        lr=float(cfg.lr if cfg.lr is not None else lr),
        momentum=float(cfg.momentum),
        wd=float(cfg.wd if cfg.wd is not None else wd),
        seed=int(cfg.seed),
        augment=bool(cfg.augment),
    )
    check_count(resolved.snapshots)
    learning_rate(cfg.schedule, 1.0, 0.0)  # validates the name
    return resolved  # `replace` checked the filled-in values against the declarations


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    ds: Dataset,
    x: torch.Tensor,
    y: torch.Tensor,
    device: str,
    chunk: int = 500,
    bar: tqdm | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy in eval mode (stored BN statistics: the endpoint as trained)."""
    was = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, x.shape[0], chunk):
        xb = normalize(ds, x[i : i + chunk].to(device))
        yb = y[i : i + chunk].to(device)
        out = model(xb)
        loss_sum += task_loss(out, yb, ds.task).item() * yb.shape[0]
        if ds.task == "classification":
            correct += (out.argmax(1) == yb).sum().item()
        if bar is not None:
            bar.update(yb.shape[0])
    model.train(was)
    n = max(x.shape[0], 1)
    acc = correct / n if ds.task == "classification" else float("nan")
    return loss_sum / n, acc


def final_metrics(
    model: nn.Module, ds: Dataset, device: str, train_eval_size: int, show: bool = True
) -> dict[str, float]:
    """Train (fixed subset of `train_eval_size`) and test loss and accuracy, with a progress bar."""
    xtr, ytr = ds.x_train, ds.y_train
    if xtr.shape[0] > train_eval_size:
        idx = torch.randperm(xtr.shape[0], generator=torch.Generator().manual_seed(0))[
            :train_eval_size
        ]
        xtr, ytr = xtr[idx.sort().values], ytr[idx.sort().values]
    total = xtr.shape[0] + ds.x_test.shape[0]
    with progress(total, desc="evaluate", unit="ex", disable=None if show else True) as bar:
        train_loss, train_acc = evaluate_model(model, ds, xtr, ytr, device, bar=bar)
        test_loss, test_acc = evaluate_model(model, ds, ds.x_test, ds.y_test, device, bar=bar)
    return {
        "train_loss": train_loss,
        "train_accuracy": train_acc,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "train_eval_size": int(xtr.shape[0]),
    }


def train_endpoint(cfg: TrainConfig) -> Checkpoint:
    """Train one optimum and write its checkpoint to `cfg.out`, resuming from `<out>.partial`.

    If `cfg.out` already holds a checkpoint trained with the same settings it is returned as is;
    one trained with other settings is an error (nothing is overwritten). The built-in datasets
    train on one CPU thread unless `threads` says otherwise (`lossart.devices.cpu_threads`).
    """
    output_file(cfg.out)
    data = parse_data_spec(cfg.data) if isinstance(cfg.data, str) else cfg.data
    device = pick_device(cfg.device)
    with cpu_threads(cfg.threads, device, data.kind == "builtin"):
        if cfg.out is None:
            return _train(replace(cfg, data=data, device=device))
        with working_on(cfg.out, "`lossart train`"):
            return _train(replace(cfg, data=data, device=device))


class _EndpointTrainer:
    """One endpoint's SGD steps for `run_loop`: weights, momentum, running epoch sums, history."""

    def __init__(self, cfg: TrainConfig, ds: Dataset, model: nn.Module, device: torch.device):
        self.cfg, self.ds, self.model, self.device = cfg, ds, model, device
        self.opt = torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.wd
        )
        self.nb = num_batches(ds, cfg.batch_size)
        self.total = cfg.epochs * self.nb
        self.history: list[dict[str, Any]] = []
        self.sums = _fresh_sums()
        self.lr = cfg.lr
        self.wall = 0.0
        self.t0 = time.perf_counter()
        self.snap_steps = snapshot_steps(cfg.snapshots, self.total) if cfg.snapshots else []
        self.snap_dir = snapshot_dir(cfg.out)
        self.snapshots: list[SnapshotRecord] = []
        self.snap_sums = [0.0, 0]  # minibatch loss sum and count since the last snapshot
        self.dtype = "float32"  # the training's precision, set once (`_train`) or by `resume`

    def snapshot(self, steps: int) -> None:
        """Write the snapshot due after `steps` steps (if one is), replacing a redone one."""
        if steps not in self.snap_steps:
            return
        k = self.snap_steps.index(steps)
        loss = self.snap_sums[0] / self.snap_sums[1] if self.snap_sums[1] else None
        record = SnapshotRecord(k, steps, steps / self.nb, loss)
        write_snapshot(self.snap_dir, record, flat_params(self.model))
        self.snapshots = [r for r in self.snapshots if r.index < k] + [record]
        self.snap_sums = [0.0, 0]

    def resume(self, st: dict[str, Any]) -> int:
        """Load a saved state; returns the step to continue from."""
        check_finite_weights(st["model"], partial_path(self.cfg.out))
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        epoch, batch = int(st["epoch"]), int(st["batch"])
        self.history, self.sums = list(st["history"]), dict(st["sums"])
        self.wall = float(st["wall_s"])
        snaps = st.get("snapshots") or {}
        self.snapshots = [SnapshotRecord.from_dict(r) for r in snaps.get("records", [])]
        self.snap_sums = list(snaps.get("sums", [0.0, 0]))
        if batch >= self.nb:  # earlier versions saved an epoch's last step before closing it
            self.lr = learning_rate(self.cfg.schedule, self.cfg.lr, ((epoch + 1) * self.nb - 1)
                                    / self.total)  # fmt: skip
            self.end_epoch(epoch)
            epoch, batch = epoch + 1, 0
        return epoch * self.nb + batch

    def batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        cfg = self.cfg
        return train_loader(self.ds, cfg.batch_size, cfg.seed, epoch, cfg.augment, self.device,
                            start)  # fmt: skip

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor) -> float:
        cfg = self.cfg
        if cfg.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        self.lr = learning_rate(cfg.schedule, cfg.lr, step / self.total)
        for group in self.opt.param_groups:
            group["lr"] = self.lr
        with precision(self.dtype, self.device):
            out = self.model(x)
        loss = task_loss(out.float(), y, self.ds.task)  # the loss in float32 whatever the pass
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        lv = check_finite(loss.item(), step, cfg.lr)
        self.snap_sums[0] += lv
        self.snap_sums[1] += 1
        self.sums["loss"] += lv * y.shape[0]
        self.sums["n"] += y.shape[0]
        if self.ds.task == "classification":
            self.sums["correct"] += (out.argmax(1) == y).sum().item()
        return lv

    def after_step(self, steps: int, loss: float) -> dict[str, str]:
        self.snapshot(steps)
        n = self.sums["n"]
        post = {"ep": str((steps - 1) // self.nb + 1), "loss": f"{self.sums['loss'] / n:.3f}",
                "lr": f"{self.lr:.3g}"}  # fmt: skip
        if self.ds.task == "classification":
            post["acc"] = f"{self.sums['correct'] / n:.3f}"
        return post

    def end_epoch(self, epoch: int) -> None:
        n = max(self.sums["n"], 1)
        classification = self.ds.task == "classification"
        self.history.append(
            {
                "epoch": epoch + 1,
                "lr": self.lr,
                "train_loss": self.sums["loss"] / n,
                "train_accuracy": self.sums["correct"] / n if classification else float("nan"),
            }
        )
        self.sums = _fresh_sums()

    def elapsed(self) -> float:
        return self.wall + time.perf_counter() - self.t0

    def state(self, steps: int) -> dict[str, Any]:
        return {
            "epoch": steps // self.nb,
            "batch": steps % self.nb,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "history": self.history,
            "sums": self.sums,
            "wall_s": self.elapsed(),
            "dtype": self.dtype,
            "snapshots": {"records": [r.to_dict() for r in self.snapshots],
                          "sums": list(self.snap_sums)},
        }


def _fresh_sums() -> dict[str, float]:
    return {"loss": 0.0, "correct": 0, "n": 0}


def _train(cfg: TrainConfig) -> Checkpoint:
    ds = load_dataset(cfg.data)
    cfg = resolve(cfg, ds)
    settings = settings_of(cfg)
    out, partial = Path(cfg.out), partial_path(cfg.out)
    if out.exists():
        done = load_checkpoint(out)
        check_settings(done.extra.get("train_config"), settings, f"{out}: exists and was trained",
                       "remove it or choose another --out")  # fmt: skip
        return done

    device = resolve_device(cfg.device)
    state = ResumeState(partial, {"format": STATE_FORMAT}, settings, "remove it to start over")
    saved = state.load()
    # The precision is chosen once: a resumed training keeps the one it started with.
    dtype = str(saved.get("dtype", "float32")) if saved else resolve_dtype(cfg.dtype, device)
    # bfloat16 convolutions want channels-last (measured 1.25x on a resnet20-noskip step).
    channels_last = cfg.channels_last or dtype == "bfloat16"
    cfg = replace(cfg, channels_last=channels_last)
    torch.manual_seed(cfg.seed)
    model = build_for_data(cfg.model, ds).to(device)
    if channels_last and ds.is_image:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    trainer = _EndpointTrainer(cfg, ds, model, device)
    trainer.dtype = dtype
    start = 0 if saved is None else trainer.resume(saved)
    if start == 0:
        trainer.snapshot(0)  # the initial weights
    plan = LoopPlan(
        epochs=cfg.epochs,
        steps_per_epoch=trainer.nb,
        desc=f"train {cfg.model.name} on {ds.spec.name.split('/')[-1]} seed {cfg.seed}",
        save_every_s=cfg.save_every_s,
        progress=cfg.progress,
    )
    run_loop(trainer, plan, state, start)

    metrics = final_metrics(model, ds, device, cfg.train_eval_size, cfg.progress)
    ckpt = Checkpoint(
        model=cfg.model,
        data=ds.spec,
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        seed=cfg.seed,
        metrics=metrics,
        versions=versions(),
        extra={"train_config": settings, "history": trainer.history, "wall_s": trainer.elapsed(),
               "dtype": trainer.dtype},  # fmt: skip
    )
    if cfg.snapshots:
        if [r.step for r in trainer.snapshots] != trainer.snap_steps:
            raise LossartError(
                f"{trainer.snap_dir}: snapshots at steps {[r.step for r in trainer.snapshots]}, "
                f"expected {trainer.snap_steps}; remove {partial} and the folder to start over"
            )
        ckpt.extra["snapshots"] = snapshot_meta(out, trainer.snapshots)
    save_checkpoint(ckpt, out)
    partial.unlink(missing_ok=True)
    return ckpt
