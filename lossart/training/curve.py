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

Resume: the loop is `lossart.training.loop`'s; the state RUN/curve/state.pt (`{"version": 1,
"settings", "step", "bends", "optimizer", "recent", "frames"}`) is saved atomically after every
epoch, every `save_every_s` and on Ctrl-C (at the next step boundary). Because t is drawn from a
per-run seeded sequence indexed by step, and data order and augmentation are seeded by epoch, a
resumed run replays exactly what an uninterrupted one does: frames recorded after the saved state
are recomputed bit-identically, never duplicated or dropped.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from lossart.atomic import atomic_path, torch_save, write_json
from lossart.data import Dataset, DataSpec, load_dataset, num_batches, parse_data_spec, train_loader
from lossart.devices import cpu_threads, pick_device, resolve_device
from lossart.errors import LossartError
from lossart.evaluation import private_buffers, task_loss
from lossart.format.kinds import CURVE
from lossart.geometry.curves import CurveSpec, curve_point, init_bends
from lossart.geometry.weights import ParamLayout
from lossart.locks import working_on
from lossart.models import ModelSpec, create_model
from lossart.models.fit import build_for_data
from lossart.options import check_value, option_error
from lossart.precision import precision, resolve_dtype
from lossart.runs import Run, endpoint_records, now_iso, versions
from lossart.training.checkpoint import check_finite_weights, load_checkpoint
from lossart.training.config import SPACINGS, CurveConfig  # noqa: F401  (importable here)
from lossart.training.curve_run import CurveRun, FrameRecord, frames_json, load_curve_run
from lossart.training.endpoints import learning_rate
from lossart.training.loop import (
    LoopPlan,
    ResumeState,
    check_finite,
    check_settings,
    run_loop,
    settings_of,
)

STATE_VERSION = 1


def frame_steps(total_steps: int, frames: int, spacing: str = "uniform") -> list[int]:
    """`frames` distinct steps from 0 to `total_steps`, evenly or log-spaced (0 and the end always).

    Log spacing puts frames 1.. on a geometric sequence from step 1 to the end (rounded, then
    nudged apart), so the fast early motion of the bends gets as many frames as the slow rest.
    """
    check_value(CurveConfig, "frames", frames)
    check_value(CurveConfig, "frame_spacing", spacing)
    if frames > total_steps + 1:
        problem = (f"more than the {total_steps + 1} steps of this training (steps + 1); "
                   f"ask for at most {total_steps + 1} frames or more epochs")  # fmt: skip
        raise option_error(CurveConfig, "frames", problem, frames)
    if spacing == "uniform":
        return [round(i * total_steps / (frames - 1)) for i in range(frames)]
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
    model_spec: ModelSpec
    data_spec: DataSpec | None  # None: the two were trained on different data
    layout: ParamLayout
    w1: torch.Tensor
    w2: torch.Tensor
    seeds: tuple[int, int]


def load_endpoints(path1: str | Path, path2: str | Path) -> Endpoints:
    """Both checkpoints as flat vectors; refuses different architectures in one line."""
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


def prepare_run(cfg: CurveConfig, ends: Endpoints) -> Run:
    """Create the run folder, or check that an existing one is this very run (then resume).

    `cfg` is resolved: its `data` is the dataset's spec."""
    run = Run(Path(cfg.out))
    settings = settings_of(cfg)
    if run.root.exists() and not run.root.is_dir():
        raise LossartError(f"--out {run.root}: exists and is not a folder")
    if run.root.is_dir() and any(run.root.iterdir()):
        if not run.manifest.is_file():
            raise LossartError(
                f"--out {run.root}: folder exists, is not empty and is not a lossart run"
            )
        meta = run.read()
        if meta.get("kind") != CURVE.name:
            raise LossartError(
                f"--out {run.root}: an existing {meta.get('kind')!r} run, not a curve run"
            )
        check_settings(meta.get("curve_training"), settings, f"--out {run.root}: existing curve run",
                       "use another --out or the same settings to resume")  # fmt: skip
        for name, w in (("w1", ends.w1), ("w2", ends.w2)):
            ck = load_checkpoint(run.endpoint(name))
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
            "kind": CURVE.name,
            "created": now_iso(),
            "model": ends.model_spec.to_dict(),
            "data": settings["data"],
            "curve": CurveSpec(cfg.kind, cfg.bends).to_dict(),
            "curve_training": settings,
            "seeds": {"curve": cfg.seed, "w1": ends.seeds[0], "w2": ends.seeds[1]},
            "endpoints": {
                n: {**rec, "source": str(Path(getattr(cfg, n)).resolve())}
                for n, rec in endpoint_records(run, ("w1", "w2")).items()
            },
            "versions": versions(),
        }
    )
    run.record_command("curve")
    return run


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
    dtype: str = "float32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective, task loss) of one minibatch at φ(t): objective = loss + wd/2·|φ(t)|².

    The model runs as it is (training mode for curve training) at φ(t) through
    `functional_call`; `buffers` receive the BN running-statistics updates, never the model.
    φ(t) is built in float32; with `dtype` bfloat16 the forward pass runs under autocast and
    the loss is taken on float32 outputs.
    """
    phi = curve_point(spec, w1, bends, w2, t)
    with precision(dtype, x.device):
        out = functional_call(model, {**buffers, **layout.unflatten(phi)}, (x,))
    loss = task_loss(out.float(), y, task)
    return (loss + 0.5 * wd * phi.square().sum() if wd else loss), loss


def train_curve(cfg: CurveConfig, on_step: Callable[[int, float], None] | None = None) -> CurveRun:
    """Train the curve of `cfg` into `cfg.out` (resuming whatever is there) and return it.

    `on_step(step, loss)` is called after every completed step (logging, tests). Built-in data on
    the CPU trains on one thread unless `threads` says otherwise (`loop.cpu_threads`).
    """
    cfg.check()
    device = pick_device(cfg.device)
    ends = load_endpoints(cfg.w1, cfg.w2)
    if cfg.data is not None:
        data_spec = parse_data_spec(cfg.data) if isinstance(cfg.data, str) else cfg.data
    elif ends.data_spec is None:
        raise LossartError(f"{cfg.w1} and {cfg.w2} were trained on different data; pass --data")
    else:
        data_spec = ends.data_spec
    cfg = replace(cfg, data=data_spec, device=device)
    with working_on(cfg.out, "`lossart curve`"), cpu_threads(
        cfg.threads, device, data_spec.kind == "builtin"
    ):
        return _train_curve(cfg, ends, on_step)


class _CurveTrainer:
    """The bends' SGD steps for `run_loop`, recording frames as their steps come."""

    def __init__(
        self,
        cfg: CurveConfig,
        run: Run,
        ds: Dataset,
        ends: Endpoints,
        bends: torch.Tensor,
        on_step: Callable[[int, float], None] | None,
    ) -> None:
        self.cfg, self.run, self.ds, self.on_step = cfg, run, ds, on_step
        self.spec = CurveSpec(cfg.kind, cfg.bends)
        self.device = resolve_device(cfg.device)
        self.model = create_model(ends.model_spec).to(self.device)
        self.model.train()
        self.layout = ends.layout
        self.buffers = private_buffers(self.model)
        self.w1, self.w2 = ends.w1.to(self.device), ends.w2.to(self.device)
        self.spe = num_batches(ds, cfg.batch_size)
        self.total = cfg.epochs * self.spe
        self.frame_at = {s: i for i, s in enumerate(frame_steps(self.total, cfg.frames,
                                                                 cfg.frame_spacing))}  # fmt: skip
        self.ts = torch.rand(
            self.total,
            generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + 17),
            dtype=torch.float64,
        )
        self.bends = bends.to(self.device).requires_grad_(True)
        self.opt = torch.optim.SGD([self.bends], lr=cfg.lr, momentum=cfg.momentum)
        self.recent: list[float] = []
        self.frames: list[dict[str, Any]] = []
        self.dtype = "float32"  # the curve's precision, set once (`_train_curve`) or by `resume`

    def resume(self, st: dict[str, Any]) -> int:
        """Load a saved state (bends given to the constructor); returns the step to go on from."""
        if st["optimizer"]:
            self.opt.load_state_dict(st["optimizer"])
        self.recent, self.frames = list(st["recent"]), list(st["frames"])
        self.dtype = str(st.get("dtype", "float32"))  # a resumed curve keeps its precision
        return int(st["step"])

    def write_frames(self) -> None:
        _write_frames_json(self.run, self.cfg, self.total, self.frames)

    def record(self, index: int, step: int, loss: float) -> None:
        rel = f"frames/frame_{index:05d}.pt"
        torch_save({"bends": self.bends.detach().cpu().clone()}, self.run.curve / rel)
        self.frames.append({"index": index, "step": step, "epoch": step / self.spe,
                            "train_loss": loss, "file": rel})  # fmt: skip
        self.write_frames()

    def batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        cfg = self.cfg
        return train_loader(self.ds, cfg.batch_size, seed=cfg.seed, epoch=epoch,
                            augment=cfg.augment, device=self.device, start_batch=start)  # fmt: skip

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor) -> float:
        cfg = self.cfg
        if self.dtype == "bfloat16" and x.dim() == 4:
            # bfloat16 convolutions want channels-last (a resnet20-noskip step: 1.5x)
            x = x.contiguous(memory_format=torch.channels_last)
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(cfg.schedule, cfg.lr, step / self.total)
        objective, loss = curve_objective(
            self.model, self.layout, self.buffers, self.spec, self.w1, self.bends, self.w2,
            float(self.ts[step]), x, y, self.ds.task, cfg.wd, self.dtype,
        )  # fmt: skip
        lv = check_finite(float(loss.detach()), step, cfg.lr)
        if step == 0 and not self.frames:
            self.record(0, 0, lv)
        self.opt.zero_grad(set_to_none=True)
        objective.backward()
        self.opt.step()
        self.recent = (self.recent + [lv])[-cfg.loss_window :]
        return lv

    def after_step(self, steps: int, loss: float) -> dict[str, str]:
        if steps in self.frame_at:
            self.record(self.frame_at[steps], steps, float(np.mean(self.recent)))
        if self.on_step is not None:
            self.on_step(steps, loss)
        return {"loss": f"{loss:.3f}"}

    def end_epoch(self, epoch: int) -> None:
        pass

    def state(self, steps: int) -> dict[str, Any]:
        return {
            "step": steps,
            "bends": self.bends.detach().cpu().clone(),
            "optimizer": self.opt.state_dict(),
            "recent": list(self.recent),
            "frames": list(self.frames),
            "dtype": self.dtype,
        }


def _train_curve(
    cfg: CurveConfig, ends: Endpoints, on_step: Callable[[int, float], None] | None
) -> CurveRun:
    ds = load_dataset(cfg.data)
    build_for_data(ends.model_spec, ds)  # the endpoints' model fits --data: before the run folder
    spe = num_batches(ds, cfg.batch_size)
    frame_steps(cfg.epochs * spe, cfg.frames, cfg.frame_spacing)  # refuse before writing anything
    run = prepare_run(cfg, ends)
    state = ResumeState(run.curve / "state.pt", {"version": STATE_VERSION}, settings_of(cfg),
                        "use another --out")  # fmt: skip
    saved = state.load()
    if saved is None:
        g = torch.Generator().manual_seed(cfg.seed)
        bends = init_bends(CurveSpec(cfg.kind, cfg.bends), ends.w1, ends.w2, cfg.init_noise,
                           generator=g)  # fmt: skip
    else:
        bends = saved.get("bends")
        if not isinstance(bends, torch.Tensor) or bends.shape != (cfg.bends, ends.w1.numel()):
            raise LossartError(f"{state.path}: its 'bends' do not fit this run; remove it to "
                               "start over")  # fmt: skip
        check_finite_weights({"bends": bends}, state.path)
    trainer = _CurveTrainer(cfg, run, ds, ends, bends, on_step)
    trainer.dtype = resolve_dtype(cfg.dtype, cfg.device)
    start = 0 if saved is None else trainer.resume(saved)
    run.update(curve_dtype=trainer.dtype)
    trainer.write_frames()
    plan = LoopPlan(cfg.epochs, spe, "curve", cfg.save_every_s, cfg.progress)
    run_loop(trainer, plan, state, start)
    if len(trainer.frames) != cfg.frames:
        raise LossartError(
            f"{run.root}: recorded {len(trainer.frames)} frames, expected {cfg.frames}"
        )
    torch_save({"bends": trainer.bends.detach().cpu().clone()}, run.curve / "final.pt")
    run.update(
        curve_status={"complete": True, "steps": trainer.total, "frames": cfg.frames,
                      "time": now_iso()}  # fmt: skip
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
