"""Endpoint training: one optimum per call, SGD with momentum and weight decay, resumable.

Resuming is exact: the data order and augmentation are a pure function of (seed, epoch, batch)
(`lossart.data.train_loader`), and the state file `<out>.partial` holds the weights, buffers,
optimizer momentum and position. It is written atomically after every epoch, every few minutes,
and on Ctrl-C (the signal only sets a flag, so a step is never cut in half); rerunning the same
command continues from it and ends bitwise-equal to an uninterrupted run.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lossart.atomic import torch_save
from lossart.data import Dataset, DataSpec, load_dataset, num_batches, parse_data_spec, train_loader
from lossart.data.batches import normalize
from lossart.errors import LossartError
from lossart.evaluation import task_loss
from lossart.models import ModelSpec, create_model
from lossart.progress import progress, tqdm
from lossart.runs import versions
from lossart.training.checkpoint import (
    Checkpoint,
    load_checkpoint,
    read_torch_file,
    save_checkpoint,
)

SCHEDULES = ("garipov", "cosine", "constant")
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
    raise LossartError(f"--schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")


@dataclass
class TrainConfig:
    """One endpoint's training. `None` fields take the dataset's defaults (`train_defaults`)."""

    data: str | DataSpec = "shapes"
    model: str | ModelSpec | None = None  # registry name, "pkg.mod:factory", or a full spec
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float = 0.9
    wd: float | None = None
    schedule: str = "garipov"
    seed: int = 0
    augment: bool = True
    device: str = "cpu"
    channels_last: bool = False
    out: str | Path = "endpoint.pt"
    train_eval_size: int = 10000  # train metrics on a fixed subset this large (un-augmented)
    save_every_s: float = 120.0
    progress: bool = True
    threads: int | None = None  # CPU threads; None: 1 for the built-in data, else torch's default


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


def resolve(cfg: TrainConfig, ds: Dataset) -> tuple[ModelSpec, dict[str, Any]]:
    """The model spec and the complete settings (defaults filled) that define this training."""
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
    settings = {
        "model": spec.to_dict(),
        "data": ds.spec.to_dict(),
        "epochs": int(cfg.epochs if cfg.epochs is not None else epochs),
        "batch_size": int(cfg.batch_size if cfg.batch_size is not None else batch_size),
        "lr": float(cfg.lr if cfg.lr is not None else lr),
        "momentum": float(cfg.momentum),
        "wd": float(cfg.wd if cfg.wd is not None else wd),
        "schedule": cfg.schedule,
        "seed": int(cfg.seed),
        "augment": bool(cfg.augment),
    }
    learning_rate(cfg.schedule, 1.0, 0.0)  # validates the name
    for key in ("epochs", "batch_size"):
        if settings[key] < 1:
            raise LossartError(
                f"--{key.replace('_', '-')} {settings[key]}: expected a positive integer"
            )
    if settings["lr"] <= 0:
        raise LossartError(f"--lr {settings['lr']}: expected a positive number")
    return spec, settings


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


class _StopFlag:
    """SIGINT sets a flag the loop checks between steps; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.set = False
        self._old = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


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
    one trained with other settings is an error (nothing is overwritten). One CPU thread is much
    faster for small models on a busy CPU (measured 15 vs 110-300 ms per smallcnn step on 2 shared
    cores), so the built-in datasets default to it; resume is bitwise exact on the same device and
    thread count.
    """
    old_threads = torch.get_num_threads()
    threads = cfg.threads
    if threads is None and _is_builtin(cfg.data) and str(cfg.device).startswith("cpu"):
        threads = 1
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train(cfg)
    finally:
        torch.set_num_threads(old_threads)


def _is_builtin(data: str | DataSpec) -> bool:
    from lossart.data.spec import BUILTIN

    name = data if isinstance(data, str) else data.name
    return name.lower() in BUILTIN


def _train(cfg: TrainConfig) -> Checkpoint:
    data_spec = parse_data_spec(cfg.data) if isinstance(cfg.data, str) else cfg.data
    ds = load_dataset(data_spec)
    spec, settings = resolve(cfg, ds)
    out, partial = Path(cfg.out), partial_path(cfg.out)
    if out.exists():
        done = load_checkpoint(out)
        if done.extra.get("train_config") == settings:
            return done
        raise LossartError(
            f"{out}: exists and was trained with other settings; remove it or choose another --out"
        )

    device = torch.device(cfg.device)
    torch.manual_seed(settings["seed"])
    model = create_model(spec).to(device)
    if cfg.channels_last and ds.is_image:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.SGD(
        model.parameters(),
        lr=settings["lr"],
        momentum=settings["momentum"],
        weight_decay=settings["wd"],
    )
    epoch, batch, history, wall = 0, 0, [], 0.0
    sums = {"loss": 0.0, "correct": 0, "n": 0}
    if partial.exists():
        st = read_torch_file(partial, "lossart training state")
        if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
            raise LossartError(f"{partial}: not a lossart training state; remove it to start over")
        if st["settings"] != settings:
            raise LossartError(
                f"{partial}: was started with other settings; "
                "rerun with those or remove it to start over"
            )
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        epoch, batch, history = st["epoch"], st["batch"], list(st["history"])
        sums, wall = dict(st["sums"]), float(st["wall_s"])

    epochs, bs = settings["epochs"], settings["batch_size"]
    nb = num_batches(ds, bs)
    total = epochs * nb
    t0 = time.perf_counter()
    last_save = t0

    def save_state(e: int, b: int) -> None:
        nonlocal last_save
        torch_save(
            {
                "format": STATE_FORMAT,
                "settings": settings,
                "epoch": e,
                "batch": b,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(),
                "history": history,
                "sums": sums,
                "wall_s": wall + time.perf_counter() - t0,
            },
            partial,
        )
        last_save = time.perf_counter()

    desc = f"train {spec.name} on {ds.spec.name.split('/')[-1]} seed {settings['seed']}"
    bar = progress(
        total,
        desc=desc,
        unit="step",
        initial=epoch * nb + batch,
        disable=None if cfg.progress else True,
    )
    with bar, _StopFlag() as stop:
        while epoch < epochs:
            loader = train_loader(
                ds, bs, settings["seed"], epoch, settings["augment"], device, batch
            )
            for x, y in loader:
                if cfg.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                lr = learning_rate(
                    settings["schedule"], settings["lr"], (epoch * nb + batch) / total
                )
                for group in opt.param_groups:
                    group["lr"] = lr
                out_b = model(x)
                loss = task_loss(out_b, y, ds.task)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                batch += 1
                lv = loss.item()
                if not math.isfinite(lv):
                    raise LossartError(
                        f"training diverged (loss {lv}) at epoch {epoch} step {batch}; "
                        "try a smaller --lr"
                    )
                sums["loss"] += lv * y.shape[0]
                sums["n"] += y.shape[0]
                if ds.task == "classification":
                    sums["correct"] += (out_b.argmax(1) == y).sum().item()
                bar.update()
                post = {
                    "ep": epoch + 1,
                    "loss": f"{sums['loss'] / sums['n']:.3f}",
                    "lr": f"{lr:.3g}",
                }
                if ds.task == "classification":
                    post["acc"] = f"{sums['correct'] / sums['n']:.3f}"
                bar.set_postfix(post, refresh=False)
                if stop.set:
                    save_state(epoch, batch)
                    raise KeyboardInterrupt
                if time.perf_counter() - last_save > cfg.save_every_s:
                    save_state(epoch, batch)
            n = max(sums["n"], 1)
            history.append(
                {
                    "epoch": epoch + 1,
                    "lr": lr,
                    "train_loss": sums["loss"] / n,
                    "train_accuracy": sums["correct"] / n
                    if ds.task == "classification"
                    else float("nan"),
                }
            )
            epoch, batch = epoch + 1, 0
            sums = {"loss": 0.0, "correct": 0, "n": 0}
            save_state(epoch, batch)

    metrics = final_metrics(model, ds, device, cfg.train_eval_size, cfg.progress)
    wall += time.perf_counter() - t0
    ckpt = Checkpoint(
        model=spec,
        data=ds.spec,
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        seed=settings["seed"],
        metrics=metrics,
        versions=versions(),
        extra={"train_config": settings, "history": history, "wall_s": wall},
    )
    save_checkpoint(ckpt, out)
    partial.unlink(missing_ok=True)
    return ckpt


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as plain data (for run.json)."""
    d = asdict(cfg)
    d["out"] = str(d["out"])
    for key in ("model", "data"):
        v = getattr(cfg, key)
        if hasattr(v, "to_dict"):
            d[key] = v.to_dict()
    return d
