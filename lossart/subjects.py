"""`lossart demo --subject NAME`: a real network's landscape, every stage of the chain in one call.

The seed's subject (ResNet-20 without skips on CIFAR-10) at a size the machine can do: two
endpoints, a Bézier curve with log-spaced frames, video grids of every frame (adaptive), a
finer still grid of the final frame (adaptive on a CPU) in a second run folder that shares the
endpoints and the curve (hard links, no retraining), eval-curve and ensembles, both terrain bundles, a
still (with its comparison sheet), the video and a GIF preview.

Layout of OUT: `endpoints/` (w1.pt, w2.pt), `video/` (the curve run: video grids, bundle),
`still/` (the still run), `subject.png`, `compare-subject.png`, `subject.mp4`, `subject.gif`,
`demo.json`. The stages run on the demo's one driver (lossart.pipeline): demo.json is written
atomically after every stage with its wall time and its command (derived from the stage's
config), so a rerun skips finished stages; the stage that was running when the process died
resumes through its own command's resume (endpoint and curve training states, grid tiles,
cached video frames).
Endpoints or a whole curve run can be seeded (`endpoints=`, `curve=`), or placed in the layout.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lossart.commands import EnsembleOptions, EvalCurveOptions, RenderOptions
from lossart.errors import LossartError
from lossart.pipeline import run_stages, times_table
from lossart.stages import gif_filter, make_gif, share_run


@dataclass(frozen=True)
class Subject:
    """Sizes of every stage of one subject on one kind of device."""

    model: str
    model_kwargs: dict = field(default_factory=dict)
    endpoint_epochs: int = 20
    curve_epochs: int = 20
    frames: int = 25
    frame_spacing: str = "log"  # the curve moves most early on
    video_resolution: tuple[int, int] = (109, 61)  # 16:9 window, >= 61 points per side
    # Video grids: refine where log10 loss is off by more. At 109x61 the adaptive plan has few
    # levels to skip: measured on the real run's frames, 0.01 kept ~2400 of 6649 points per
    # frame, 0.03 kept 1450-1800; at 25 frames only the latter fits a 2-core CPU's budget.
    adaptive: float | None = 0.03  # both tolerances in log10 loss (ADAPTIVE_CRITERION)
    video_subset: int = 64  # video grids: training images per point (half the still's cost)
    subset: int = 128  # still grid: training images per grid point (exact BN over them)
    # The still grid: 401x401 refined adaptively. On the real run's last frame tol 0.01 matched
    # the fully evaluated 201x201 grid to max 0.0061 in log10 loss from 35x fewer points
    # (benchmarks/RESULTS.md), so a finer picture costs minutes instead of most of an hour.
    still_resolution: tuple[int, int] = (401, 401)
    still_adaptive: float | None = 0.01  # None: every point evaluated
    aspect: float = 16 / 9
    eval_points: int = 21
    eval_subset: int = 2000
    ensemble_subset: int = 2000
    frame_sigma: float = 1.0
    still_size: tuple[int, int] = (1920, 1080)
    still_samples: int = 32
    # Cycles on a 2-core CPU: ~5 s a frame at this size; 12 s at 12 fps is ~150 frames
    video_size: tuple[int, int] = (640, 360)
    video_samples: int = 8
    fps: int = 12
    # K-times slow motion: every K-th video frame rendered, K-1 blended between (the hero's
    # frames cost 7.0-7.7 s each here at this size; 2 keeps the renders near 12 minutes)
    interpolate: int = 2
    duration: float | None = 12.0  # video seconds (None: one rendered frame per curve frame)
    gif_width: int = 480
    gif_fps: int = 12


# The README recipe's size with a GPU; the same setup at about 1.5 h of compute on a 2-core CPU.
SUBJECTS: dict[str, dict[str, Subject]] = {
    "resnet20-noskip": {
        "cpu": Subject(model="resnet20-noskip"),
        "cuda": Subject(
            model="resnet20-noskip", endpoint_epochs=200, curve_epochs=200, frames=600,
            video_resolution=(300, 300), adaptive=None, subset=1024, video_subset=1024,
            still_resolution=(601, 601), still_adaptive=None, still_samples=128,
            video_size=(1920, 1080), video_samples=64, fps=24, interpolate=1,
        ),
    },
}

#: The preset's tolerances were measured and budgeted in log10 loss (benchmarks/RESULTS.md); the
#: picture criterion (`lossart grid --adaptive`'s default) evaluates 2.5-5x more points on the
#: frames measured, beyond a 2-core CPU's budget for 25 frames, so the preset keeps log10.
ADAPTIVE_CRITERION = "log10"
STAGES = ("endpoints", "curve", "eval-curve", "ensemble", "video-grid", "still-grid",
          "video-terrain", "still-terrain", "still", "video", "gif")


@dataclass
class SubjectConfig:
    """What `lossart demo --subject` was asked for; `settings` replaces the preset (tests)."""

    subject: str = "resnet20-noskip"
    data: str = "cifar10"
    download: bool = False
    data_root: str = "data"  # where cifar10 is (or is downloaded to)
    device: str = "cpu"
    out: Path = Path("renders/resnet20-noskip")
    endpoints: tuple[str, str] | None = None  # seed: existing checkpoints for w1, w2
    curve: str | None = None  # seed: an existing curve run made with these settings
    render: bool = True
    threads: int | None = None  # CPU cores to use (default: all)
    settings: Subject | None = None
    # training and grids: auto (bfloat16 where the hardware has the units), float32, bfloat16;
    # each stage resolves it once and records it (checkpoints, run.json, grid.json)
    dtype: str = "auto"

    def resolve(self) -> Subject:
        """The subject's settings for the device; a one-line error for a bad name or device."""
        if self.settings is not None:
            return self.settings
        if self.subject not in SUBJECTS:
            raise LossartError(f"--subject {self.subject!r}: expected one of {', '.join(SUBJECTS)}")
        device = str(self.device)
        if device == "auto":
            from lossart.devices import pick_device

            device = pick_device(device)
        kind = "cuda" if device.startswith("cuda") else device
        if kind not in SUBJECTS[self.subject]:
            raise LossartError(f"--device {self.device!r}: expected cpu or cuda")
        return SUBJECTS[self.subject][kind]

    def seeds(self) -> list[Path]:
        """The checkpoints that seed w1 and w2 (`endpoints`, else the `curve` run's), if any."""
        if self.endpoints:
            return [Path(p) for p in self.endpoints]
        return [Path(self.curve) / f"endpoints/w{k}.pt" for k in (1, 2)] if self.curve else []


@dataclass
class SubjectResult:
    out: Path
    stage_seconds: dict[str, float]
    ran: list[str]  # stages run by this call (the others were finished before)
    files: dict[str, str]


def check_subject(cfg: SubjectConfig) -> Subject:
    """Every option checked before any work: subject, device, data, seeds."""
    from lossart.data import load_dataset, parse_data_spec
    from lossart.devices import pick_device
    from lossart.models import ModelSpec
    from lossart.models.fit import build_for_data

    s = cfg.resolve()
    try:
        pick_device(cfg.device)
    except LossartError as exc:
        raise LossartError(f"--device {cfg.device!r}: {exc}") from None
    spec = parse_data_spec(cfg.data, root=cfg.data_root, download=cfg.download)
    if spec.name.startswith("npz:") and not Path(spec.name[4:]).is_file():
        raise LossartError(f"--data {cfg.data}: no such file (expected an .npz with x_train, "
                           "y_train, x_test, y_test)")
    ds = load_dataset(spec)
    model = ModelSpec(s.model, ds.num_classes, tuple(ds.input_shape), dict(s.model_kwargs))
    build_for_data(model, ds)
    for path in cfg.endpoints or ():
        if not Path(path).is_file():
            raise LossartError(f"--endpoints {path}: no such checkpoint")
        _check_seed(path, "--endpoints", model, spec)
    if cfg.curve and not (Path(cfg.curve) / "run.json").is_file():
        raise LossartError(f"--curve {cfg.curve}: not a run folder (no run.json)")
    if cfg.curve and not cfg.endpoints:
        for k in (1, 2):
            if not (Path(cfg.curve) / "endpoints" / f"w{k}.pt").is_file():
                raise LossartError(f"--curve {cfg.curve}: no endpoints/w{k}.pt")
            _check_seed(Path(cfg.curve) / "endpoints" / f"w{k}.pt", "--curve", model, spec)
    if cfg.render:
        looks(s)
    return s


def _check_seed(path: str | Path, flag: str, model, data) -> None:
    """A seeding checkpoint must hold the subject's model, trained on --data: otherwise the
    subject would train and record one thing and name another."""
    from lossart.training.checkpoint import load_checkpoint

    try:
        ckpt = load_checkpoint(path, expect_model=model)
    except LossartError as exc:
        raise LossartError(f"{flag} {exc}") from None
    if ckpt.data.name != data.name:
        raise LossartError(f"{flag} {path}: trained on {ckpt.data.name!r}, but --data is "
                           f"{data.name!r}; seed the subject with checkpoints of its own data")


def looks(s: Subject):
    """The still's and the video's Look, checked (a bad look is refused before the grids)."""
    from lossart.render import Look, check_look

    return (check_look(Look(samples=s.still_samples, size=s.still_size, camera_preset="overview")),
            check_look(Look(samples=s.video_samples, size=s.video_size, camera_preset="orbit")))


def _cores(cfg: SubjectConfig) -> int:
    return max(1, cfg.threads or os.cpu_count() or 1)


def run_subject(cfg: SubjectConfig,
                on_stage: Callable[[str], None] | None = None) -> SubjectResult:
    """Run (or resume) every stage into cfg.out; stages recorded done in demo.json are skipped
    (lossart.pipeline). Each stage is declared by its config, which also gives its command."""
    from lossart import stages
    from lossart.data import parse_data_spec
    from lossart.grid.run_grid import GridConfig
    from lossart.terrain.heightfield import TerrainConfig
    from lossart.training.curve import CurveConfig
    from lossart.training.endpoints import TrainConfig

    s = check_subject(cfg)
    out, cuda, cores = cfg.out, str(cfg.device).startswith("cuda"), _cores(cfg)
    threads = None if cuda else cores  # torch threads of every stage (the endpoints: per process)
    video, still, ends = out / "video", out / "still", [out / f"endpoints/w{k}.pt" for k in (1, 2)]
    spec = parse_data_spec(cfg.data, root=cfg.data_root, download=cfg.download)
    grid = GridConfig(resolution=s.video_resolution, subset=s.video_subset, aspect=s.aspect,
                      adaptive=s.adaptive, adaptive_criterion=ADAPTIVE_CRITERION,
                      device=cfg.device, dtype=cfg.dtype, quiet=True)
    still_look, video_look = looks(s)
    plan = [
        stages.endpoints([TrainConfig(
            data=spec, model=s.model, model_kwargs=dict(s.model_kwargs), epochs=s.endpoint_epochs,
            seed=k + 1, out=str(p), device=cfg.device, progress=False, dtype=cfg.dtype,
            threads=1 if cuda else max(1, cores // 2)) for k, p in enumerate(ends)],
            parallel=not cuda and cores > 1, seeds=cfg.seeds()),
        stages.curve(CurveConfig(
            w1=str(ends[0]), w2=str(ends[1]), out=str(video), epochs=s.curve_epochs,
            frames=s.frames, frame_spacing=s.frame_spacing, seed=1, device=cfg.device,
            threads=threads, progress=False, dtype=cfg.dtype), seed_run=cfg.curve),
        stages.eval_curve(video, EvalCurveOptions(s.eval_points, s.eval_subset, cfg.device, threads)),
        stages.ensemble(video, EnsembleOptions(s.eval_points, s.ensemble_subset, cfg.device)),
        stages.grid("video-grid", video, grid),
        stages.grid("still-grid", still, replace(
            grid, select_frames=str(s.frames - 1), resolution=s.still_resolution, subset=s.subset,
            adaptive=s.still_adaptive), share_from=video),
        stages.terrain("video-terrain", video, TerrainConfig(frame_sigma=s.frame_sigma)),
        stages.terrain("still-terrain", still, TerrainConfig()),
    ]
    if cfg.render:
        plan += [
            stages.render("still", still, still_look, RenderOptions(
                out=out / "subject.png", compare=True), video=False),
            stages.render("video", video, video_look, RenderOptions(
                out=out / "subject.mp4", fps=s.fps, interpolate=s.interpolate, duration=s.duration,
                caption=True), video=True),
            stages.gif(out / "subject.mp4", out / "subject.gif", s.gif_width, s.gif_fps),
        ]
    done = run_stages(out, "subject", cfg.subject, asdict(s), plan, threads=threads,
                      run={"device": cfg.device, "data": cfg.data, "dtype": cfg.dtype},
                      on_stage=on_stage)
    files = {k: str(out / f) for k, f in (("still", "subject.png"), ("video", "subject.mp4"),
                                          ("gif", "subject.gif"), ("compare", "compare-subject.png"))
             if (out / f).is_file()}
    return SubjectResult(out, done.stage_seconds, done.ran, files)


__all__ = ["SUBJECTS", "STAGES", "Subject", "SubjectConfig", "SubjectResult", "check_subject",
           "gif_filter", "make_gif", "run_subject", "share_run", "times_table"]
