"""Curve training (Garipov et al. 2018) with recorded frames, resumable step by step.

For every minibatch a t ~ U(0, 1) is drawn and one SGD step is taken on
Loss(φθ(t)) + wd/2·|φθ(t)|² with respect to the bends θ only; the endpoints stay fixed. The model
is evaluated functionally at φ(t) (`torch.func.functional_call`) with BN in training mode and
private buffers, so any `nn.Module` works unchanged. The weight decay acts on φ(t)'s weights, so
its gradient reaches θ scaled by θ's coefficient at t, as in the original.

Frames: `frames` snapshots of the bends at steps spaced uniformly or logarithmically, the first
at initialization (step 0) and the last at the end. Each records its step, epoch (step / steps per
epoch) and `train_loss`: the mean task loss (without the weight-decay term) of the last
`loss_window` minibatches, each measured at its own random t with the bends before that step's
update; frame 0 records the first minibatch's loss at the initial bends.

Resume: the state (bends, momentum, step, recent losses, frame records) is saved atomically after
every epoch and on Ctrl-C (at the next step boundary). Because t is drawn from a per-run seeded
sequence indexed by step, and data order and augmentation are seeded by epoch, a resumed run
replays exactly what an uninterrupted one does: frames recorded after the saved state are
recomputed bit-identically, never duplicated or dropped.
"""

from __future__ import annotations

import math
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from lossart.atomic import atomic_path, torch_save, write_json
from lossart.errors import LossartError
from lossart.evaluation import private_buffers, task_loss
from lossart.geometry.curves import CurveSpec, curve_point, init_bends
from lossart.geometry.weights import ParamLayout
from lossart.progress import progress
from lossart.runs import Run, now_iso, versions
from lossart.training.curve_run import CurveRun, FrameRecord, frames_json, load_curve_run

SPACINGS = ("uniform", "log")
STATE_VERSION = 1


@dataclass
class CurveConfig:
    """What `lossart curve` was asked for. Defaults follow Garipov et al. (lr 0.015, wd 5e-4)."""

    w1: str
    w2: str
    out: str
    kind: str = "bezier"
    bends: int = 1
    epochs: int = 10
    lr: float = 0.015
    wd: float = 5e-4
    momentum: float = 0.9
    batch_size: int = 128
    seed: int = 1
    frames: int = 50
    frame_spacing: str = "uniform"
    init_noise: float = 0.0
    schedule: str = "garipov"
    augment: bool = True
    loss_window: int = 50
    data: str | None = None  # default: the endpoints' dataset
    device: str = "cpu"
    threads: int | None = None  # CPU threads; None: 1 for the built-in data on CPU, else torch's

    def settings(self) -> dict[str, Any]:
        """The fields that decide the result (a rerun must match them to resume)."""
        d = asdict(self)
        for key in ("w1", "w2", "out", "device", "data", "threads"):
            d.pop(key)
        return d

    def check(self) -> None:
        for name in ("epochs", "batch_size", "frames", "loss_window"):
            if int(getattr(self, name)) < 1:
                flag = "--" + name.replace("_", "-")
                raise LossartError(
                    f"{flag}: expected a whole number >= 1, got {getattr(self, name)}"
                )
        if self.frames < 2:
            raise LossartError(
                f"--frames: expected at least 2 (initial and final), got {self.frames}"
            )
        if self.frame_spacing not in SPACINGS:
            raise LossartError(
                f"--frame-spacing: expected uniform or log, got {self.frame_spacing!r}"
            )
        if not self.lr > 0:
            raise LossartError(f"--lr: expected a positive number, got {self.lr}")
        if self.wd < 0 or not 0 <= self.momentum < 1:
            raise LossartError(
                f"--wd must be >= 0 and --momentum in [0, 1), got {self.wd}, {self.momentum}"
            )
        CurveSpec(self.kind, self.bends)


def frame_steps(total_steps: int, frames: int, spacing: str = "uniform") -> list[int]:
    """`frames` distinct steps from 0 to `total_steps`, evenly or log-spaced (0 and the end always).

    Log spacing puts frames 1.. on a geometric sequence from step 1 to the end (rounded, then
    nudged apart), so the fast early motion of the bends gets as many frames as the slow rest.
    """
    if frames > total_steps + 1:
        raise LossartError(
            f"--frames {frames}: more than the {total_steps + 1} steps of this training "
            f"(steps + 1); use --frames <= {total_steps + 1} or more --epochs"
        )
    if frames < 2:
        raise LossartError(f"--frames: expected at least 2, got {frames}")
    if spacing == "uniform":
        return [round(i * total_steps / (frames - 1)) for i in range(frames)]
    if spacing != "log":
        raise LossartError(f"--frame-spacing: expected uniform or log, got {spacing!r}")
    raw = [0] + [int(round(s)) for s in np.geomspace(1, total_steps, frames - 1)]
    raw[-1] = total_steps
    for i in range(1, frames):
        raw[i] = max(raw[i], raw[i - 1] + 1)
    for i in range(frames - 2, 0, -1):
        raw[i] = min(raw[i], raw[i + 1] - 1)
    return raw


# ---------------------------------------------------------------------------- endpoints and run


@dataclass
class Endpoints:
    model_spec: Any
    data_spec: Any
    layout: ParamLayout
    w1: torch.Tensor
    w2: torch.Tensor
    seeds: tuple[int, int]


def load_endpoints(path1: str | Path, path2: str | Path) -> Endpoints:
    """Both checkpoints as flat vectors; refuses different architectures in one line."""
    from lossart.models import create_model
    from lossart.training.checkpoint import load_checkpoint

    ck1 = load_checkpoint(path1)
    ck2 = load_checkpoint(path2)
    if ck1.model != ck2.model:
        raise LossartError(
            f"{path2}: endpoint model {ck2.model.name!r} ({ck2.model.to_dict()}) differs from "
            f"{path1}'s {ck1.model.name!r} ({ck1.model.to_dict()}); a curve needs one architecture"
        )
    layout = ParamLayout.of(create_model(ck1.model))
    flats = []
    for path, ck in ((path1, ck1), (path2, ck2)):
        try:
            flats.append(layout.flatten(ck.state_dict).float().clone())
        except LossartError as exc:
            raise LossartError(f"{path}: {exc}") from None
    if torch.equal(flats[0], flats[1]):
        raise LossartError(f"{path1} and {path2} hold the same weights: there is no curve to train")
    return Endpoints(
        ck1.model,
        ck1.data if ck1.data == ck2.data else None,
        layout,
        flats[0],
        flats[1],
        (int(ck1.seed), int(ck2.seed)),
    )


def _copy_file(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def prepare_run(cfg: CurveConfig, ends: Endpoints, data_spec: Any) -> Run:
    """Create the run folder, or check that an existing one is this very run (then resume)."""
    run = Run(Path(cfg.out))
    settings = {**cfg.settings(), "data": data_spec.to_dict()}
    if run.root.exists() and not run.root.is_dir():
        raise LossartError(f"--out {run.root}: exists and is not a folder")
    if run.root.is_dir() and any(run.root.iterdir()):
        if not run.manifest.is_file():
            raise LossartError(
                f"--out {run.root}: folder exists, is not empty and is not a lossart run"
            )
        meta = run.read()
        if meta.get("kind") != "curve":
            raise LossartError(
                f"--out {run.root}: an existing {meta.get('kind')!r} run, not a curve run"
            )
        old = meta.get("curve_training", {})
        for key, value in settings.items():
            if old.get(key) != value:
                flag = "--" + key.replace("_", "-")
                raise LossartError(
                    f"--out {run.root}: existing curve run has {flag} {old.get(key)!r}, "
                    f"asked {value!r}; use another --out or the same settings to resume"
                )
        from lossart.training.checkpoint import load_checkpoint

        for name, w in (("w1", ends.w1), ("w2", ends.w2)):
            ck = load_checkpoint(run.endpoints / f"{name}.pt")
            if not torch.equal(ends.layout.flatten(ck.state_dict).float(), w):
                raise LossartError(
                    f"--out {run.root}: existing run's endpoint {name} differs from "
                    f"{getattr(cfg, name)}"
                )
        run.record_command("curve")
        return run
    run.root.mkdir(parents=True, exist_ok=True)
    _copy_file(Path(cfg.w1), run.endpoints / "w1.pt")
    _copy_file(Path(cfg.w2), run.endpoints / "w2.pt")
    run.write(
        {
            "kind": "curve",
            "created": now_iso(),
            "model": ends.model_spec.to_dict(),
            "data": data_spec.to_dict(),
            "curve": CurveSpec(cfg.kind, cfg.bends).to_dict(),
            "curve_training": settings,
            "seeds": {"curve": cfg.seed, "w1": ends.seeds[0], "w2": ends.seeds[1]},
            "endpoints": {
                "w1": {"file": "endpoints/w1.pt", "source": str(Path(cfg.w1).resolve())},
                "w2": {"file": "endpoints/w2.pt", "source": str(Path(cfg.w2).resolve())},
            },
            "versions": versions(),
        }
    )
    run.record_command("curve")
    return run


# ---------------------------------------------------------------------------- interruption


class _Interrupt:
    """Ctrl-C sets a flag that the loop honours at the next step boundary (state stays whole);
    a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False

    def handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def _deferred_sigint() -> Iterator[_Interrupt]:
    flag = _Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, flag.handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------- training


@dataclass
class _State:
    step: int
    bends: torch.Tensor
    optimizer: dict
    recent: list[float]
    frames: list[dict[str, Any]]


def _state_path(run: Run) -> Path:
    return run.curve / "state.pt"


def _save_state(run: Run, st: _State, opt: torch.optim.Optimizer, settings: dict) -> None:
    torch_save(
        {
            "version": STATE_VERSION,
            "settings": settings,
            "step": st.step,
            "bends": st.bends.detach().cpu().clone(),
            "optimizer": opt.state_dict(),
            "recent": list(st.recent),
            "frames": list(st.frames),
        },
        _state_path(run),
    )


def _load_state(run: Run, settings: dict) -> dict | None:
    path = _state_path(run)
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LossartError(
            f"{path}: unreadable resume state ({type(exc).__name__}); delete it to restart"
        ) from None
    if data.get("version") != STATE_VERSION or data.get("settings") != settings:
        raise LossartError(f"{path}: resume state of other settings; use another --out")
    return data


def _write_frames_json(run: Run, cfg: CurveConfig, total: int, frames: list[dict]) -> None:
    write_json(
        frames_json(run),
        {
            "curve": CurveSpec(cfg.kind, cfg.bends).to_dict(),
            "total_steps": total,
            "frames_requested": cfg.frames,
            "frame_spacing": cfg.frame_spacing,
            "train_loss": f"mean task loss of the last {cfg.loss_window} minibatches, each at its "
            "own t ~ U(0,1), before that step's update (frame 0: first minibatch at the initial "
            "bends)",
            "frames": frames,
        },
    )


def steps_per_epoch(ds: Any, batch_size: int) -> int:
    """Minibatches per epoch as `train_loader` yields them (see lossart.data)."""
    from lossart.data import num_batches

    return num_batches(ds, batch_size)


def curve_objective(
    model: torch.nn.Module,
    layout: ParamLayout,
    buffers: dict[str, torch.Tensor],
    spec: CurveSpec,
    w1: torch.Tensor,
    bends: torch.Tensor,
    w2: torch.Tensor,
    t: float,
    x: torch.Tensor,
    y: torch.Tensor,
    task: str,
    wd: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective, task loss) of one minibatch at φ(t): objective = loss + wd/2·|φ(t)|².

    The model runs as it is (training mode for curve training) at φ(t) through
    `functional_call`; `buffers` receive the BN running-statistics updates, never the model.
    """
    phi = curve_point(spec, w1, bends, w2, t)
    out = functional_call(model, {**buffers, **layout.unflatten(phi)}, (x,))
    loss = task_loss(out, y, task)
    return (loss + 0.5 * wd * phi.square().sum() if wd else loss), loss


def train_curve(cfg: CurveConfig, on_step: Callable[[int, float], None] | None = None) -> CurveRun:
    """Train the curve of `cfg` into `cfg.out` (resuming whatever is there) and return it.

    `on_step(step, loss)` is called after every completed step (logging, tests). Small models on
    a busy CPU train far faster on one thread (smallcnn steps measured 20 ms on one thread against
    80-700 ms on two shared cores), so built-in data on CPU defaults to one thread.
    """
    from lossart.data import parse_data_spec
    from lossart.training.checkpoint import load_checkpoint

    builtin = (parse_data_spec(cfg.data) if cfg.data else load_checkpoint(cfg.w1).data).kind
    with cpu_threads(cfg.threads, cfg.device, builtin == "builtin"):
        return _train_curve(cfg, on_step)


@contextmanager
def cpu_threads(threads: int | None, device: str, small: bool) -> Iterator[None]:
    """Run with `threads` torch threads; None means 1 for small (built-in) data on CPU."""
    old = torch.get_num_threads()
    if threads is None and small and str(device).startswith("cpu"):
        threads = 1
    if threads is not None and threads < 1:
        raise LossartError(f"--threads: expected a whole number >= 1, got {threads}")
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _train_curve(cfg: CurveConfig, on_step: Callable[[int, float], None] | None) -> CurveRun:
    from lossart.data import load_dataset, parse_data_spec, train_loader
    from lossart.models import create_model
    from lossart.training.endpoints import learning_rate

    cfg.check()
    spec = CurveSpec(cfg.kind, cfg.bends)
    ends = load_endpoints(cfg.w1, cfg.w2)
    if cfg.data is not None:
        data_spec = parse_data_spec(cfg.data)
    elif ends.data_spec is None:
        raise LossartError(f"{cfg.w1} and {cfg.w2} were trained on different data; pass --data")
    else:
        data_spec = ends.data_spec
    ds = load_dataset(data_spec)
    ms = ends.model_spec
    if tuple(ds.input_shape) != tuple(ms.input_shape) or ds.num_classes != ms.num_classes:
        raise LossartError(
            f"--data {data_spec.name}: inputs {tuple(ds.input_shape)} and {ds.num_classes} classes, "
            f"but the endpoints' model takes {tuple(ms.input_shape)} and {ms.num_classes} classes"
        )
    spe = steps_per_epoch(ds, cfg.batch_size)
    total = cfg.epochs * spe
    steps = frame_steps(total, cfg.frames, cfg.frame_spacing)
    run = prepare_run(cfg, ends, data_spec)
    settings = {**cfg.settings(), "data": data_spec.to_dict()}

    device = torch.device(cfg.device)
    model = create_model(ends.model_spec).to(device)
    model.train()
    layout = ends.layout
    buffers = private_buffers(model)
    w1, w2 = ends.w1.to(device), ends.w2.to(device)
    ts = torch.rand(
        total,
        generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + 17),
        dtype=torch.float64,
    )

    saved = _load_state(run, settings)
    if saved is None:
        g = torch.Generator().manual_seed(cfg.seed)
        bends = init_bends(spec, ends.w1, ends.w2, cfg.init_noise, generator=g).to(device)
        st = _State(0, bends, {}, [], [])
    else:
        st = _State(
            saved["step"],
            saved["bends"].to(device),
            saved["optimizer"],
            saved["recent"],
            saved["frames"],
        )
    bends = st.bends.requires_grad_(True)
    opt = torch.optim.SGD([bends], lr=cfg.lr, momentum=cfg.momentum)
    if st.optimizer:
        opt.load_state_dict(st.optimizer)
    frame_at = {s: i for i, s in enumerate(steps)}
    _write_frames_json(run, cfg, total, st.frames)

    def record(index: int, step: int, loss: float, b: torch.Tensor) -> None:
        rel = f"frames/frame_{index:05d}.pt"
        torch_save({"bends": b.detach().cpu().clone()}, run.curve / rel)
        st.frames.append(
            {"index": index, "step": step, "epoch": step / spe, "train_loss": loss, "file": rel}
        )
        _write_frames_json(run, cfg, total, st.frames)

    bar = progress(total=total, desc="curve", unit="step", initial=st.step)
    try:
        with _deferred_sigint() as interrupt:
            for epoch in range(st.step // spe, cfg.epochs):
                skip = st.step - epoch * spe
                batches = train_loader(
                    ds,
                    cfg.batch_size,
                    seed=cfg.seed,
                    epoch=epoch,
                    augment=cfg.augment,
                    device=device,
                    start_batch=skip,
                )
                for x, y in batches:
                    s = st.step
                    for group in opt.param_groups:
                        group["lr"] = learning_rate(cfg.schedule, cfg.lr, s / total)
                    objective, loss = curve_objective(
                        model,
                        layout,
                        buffers,
                        spec,
                        w1,
                        bends,
                        w2,
                        float(ts[s]),
                        x,
                        y,
                        ds.task,
                        cfg.wd,
                    )
                    lv = float(loss.detach())
                    if not math.isfinite(lv):
                        raise LossartError(
                            f"curve training diverged at step {s} (loss {lv}); "
                            f"lower --lr (now {cfg.lr})"
                        )
                    if s == 0 and not st.frames:
                        record(0, 0, lv, bends)
                    opt.zero_grad(set_to_none=True)
                    objective.backward()
                    opt.step()
                    st.step = s + 1
                    st.recent = (st.recent + [lv])[-cfg.loss_window :]
                    if st.step in frame_at:
                        record(frame_at[st.step], st.step, float(np.mean(st.recent)), bends)
                    bar.update(1)
                    bar.set_postfix(loss=f"{lv:.3f}", refresh=False)
                    if on_step is not None:
                        on_step(st.step, lv)
                    if interrupt.requested:
                        _save_state(run, st, opt, settings)
                        raise KeyboardInterrupt
                if st.step != (epoch + 1) * spe:
                    raise LossartError(
                        f"data loader gave {st.step - epoch * spe} batches in epoch {epoch}, "
                        f"expected {spe}"
                    )
                _save_state(run, st, opt, settings)
    finally:
        bar.close()
    if len(st.frames) != cfg.frames:
        raise LossartError(f"{run.root}: recorded {len(st.frames)} frames, expected {cfg.frames}")
    torch_save({"bends": bends.detach().cpu().clone()}, run.curve / "final.pt")
    run.update(
        curve_status={"complete": True, "steps": total, "frames": cfg.frames, "time": now_iso()}
    )
    return load_curve_run(run)


__all__ = [
    "CurveConfig",
    "FrameRecord",
    "frame_steps",
    "load_curve_run",
    "load_endpoints",
    "train_curve",
]
