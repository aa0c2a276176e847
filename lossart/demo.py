"""`lossart demo`: the whole pipeline on the built-in data, from nothing to a still and a video.

Two small conv nets trained independently on the built-in `shapes` images (in parallel, one per
core), a quadratic Bézier curve between them trained with recorded frames, the loss-along-path
plot, per-frame loss grids, the terrain bundle with previews, its page for a browser (`lossart
view`), and Blender renders: a still of the trained curve and an MP4 of the curve being trained.

Every stage resumes: rerunning the same command skips the stages demo.json records done
(lossart.pipeline, the driver the subjects share) and the stage that was cut short resumes from
its own files, so an interrupted demo continues where it stopped. The output folder holds the
still and the video at its top and the run folder (`run/`), which every other command can be
pointed at.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lossart.atomic import atomic_path
from lossart.checks import MAX_GRID_SIDE, output_dir
from lossart.commands import EvalCurveOptions, RenderOptions
from lossart.errors import LossartError
from lossart.options import check_options, option
from lossart.pipeline import run_stages


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of every stage; the presets below trade time for beauty."""

    model_width: int = 8  # smallcnn channels: the FLOPs of every grid point scale with it
    endpoint_epochs: int = 10
    curve_epochs: int = 8
    frames: int = option(20, help="curve frames (video length)", lo=2, hi=100_000)
    frame_spacing: str = "log"  # the curve moves most early on: log spacing shows that
    resolution: int = option(51, help="grid points per side", lo=2, hi=MAX_GRID_SIDE)
    subset: int = option(128, help="training images per grid point", lo=1)
    sigma: float = 1.0
    frame_sigma: float = 0.6
    upsample: int = 3
    size: tuple[int, int] = (640, 360)  # render size (Look.size)
    samples: int = 12  # the still's; the video's frames take at most video_samples (denoised)
    video_samples: int = 3
    video_scale: float = 0.625  # the video's frames at this share of the still's size
    fps: int = 10
    interpolate: int = 5  # 4 blends between rendered frames: 21 Cycles frames for 12 s
    duration: float | None = 12.0  # video seconds (None: one rendered frame per curve frame)
    hold: float = 1.0  # video seconds on the first and the last frame
    camera: str = "orbit"
    still_camera: str = "overview"
    palette: str = "losslandscape"
    style: str = "hero"

    #: the settings `lossart demo` offers as flags (the rest are the preset's)
    FLAGS = ("frames", "resolution", "subset")

    def __post_init__(self) -> None:
        check_options(self)

    def looks(self):
        """The still's and the video's Look (lossart.format.look), checked."""
        from lossart.render import Look, check_look

        base = Look(samples=self.samples, size=self.size, palette=self.palette, style=self.style)
        video_samples = min(self.samples, self.video_samples)
        video_size = tuple(max(16, 2 * round(v * self.video_scale / 2)) for v in self.size)
        return (check_look(replace(base, camera_preset=self.still_camera)),
                check_look(replace(base, camera_preset=self.camera, samples=video_samples,
                                   size=video_size)))


# The demo's settings that are look options, with their flags generated from the Look fields.
DEMO_LOOK_FLAGS = ["size", "samples", "palette", "style"]

# Cost on a 2-core CPU: quick ~20 s, default ~3 min, quality ~3 h (grids: 60 frames x 81^2 points
# x 2.6 GFLOP; renders: 60 frames at 1280x720, 64 samples); with a GPU, quality takes minutes.
PRESETS = {
    "quick": DemoSettings(
        model_width=8, endpoint_epochs=4, curve_epochs=4, frames=6, resolution=21, subset=64,
        upsample=2, size=(320, 180), samples=8, fps=6, interpolate=1, duration=4.0,
    ),
    "default": DemoSettings(),
    "quality": DemoSettings(
        model_width=32, endpoint_epochs=12, curve_epochs=20, frames=60, resolution=81,
        subset=500, upsample=2, size=(1280, 720), samples=64, video_samples=32, video_scale=1.0,
        fps=24, interpolate=2,
    ),
}


@dataclass
class DemoConfig:
    """What `lossart demo` was asked for."""

    out: Path = Path("renders/demo")
    preset: str = "default"
    device: str = "cpu"
    seed: int = option(1, help="seed of the first endpoint (the second: seed + 1) and the curve",
                       lo=0)
    render: bool = True
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_options(self)

    def settings(self) -> DemoSettings:
        if self.preset not in PRESETS:
            raise LossartError(f"--preset {self.preset!r}: expected one of {', '.join(PRESETS)}")
        try:
            return replace(PRESETS[self.preset], **self.overrides)
        except TypeError as exc:
            raise LossartError(f"demo setting: {exc}") from None


@dataclass
class DemoResult:
    out: Path
    run: Path
    still: Path | None
    video: Path | None
    stage_seconds: dict[str, float]
    barrier: dict[str, float]


def run_demo(cfg: DemoConfig, on_stage: Callable[[str], None] | None = None) -> DemoResult:
    """Run (or resume) the demo into `cfg.out`; returns where everything is and how long it took.
    Stages recorded done in demo.json are skipped (lossart.pipeline)."""
    import os

    from lossart import stages
    from lossart.devices import pick_device
    from lossart.grid.run_grid import GridConfig
    from lossart.terrain.heightfield import TerrainConfig
    from lossart.training.curve import CurveConfig
    from lossart.training.endpoints import TrainConfig

    s = cfg.settings()
    output_dir(cfg.out)  # every option and the output folder are checked before any stage runs
    pick_device(cfg.device)
    still_look, video_look = s.looks()  # a bad look is refused now, not after the grids
    run_dir, ends = cfg.out / "run", [cfg.out / "endpoints" / f"w{k}.pt" for k in (1, 2)]
    still, video = cfg.out / "lossart-demo.png", cfg.out / "lossart-demo.mp4"
    plan = [
        stages.endpoints([TrainConfig(
            data="shapes", model="smallcnn", model_kwargs={"width": s.model_width},
            epochs=s.endpoint_epochs, seed=cfg.seed + k, out=str(p), device=cfg.device,
            dtype="float32", progress=False, threads=1) for k, p in enumerate(ends)],
            parallel=cfg.device == "cpu"),
        stages.curve(CurveConfig(
            w1=str(ends[0]), w2=str(ends[1]), out=str(run_dir), epochs=s.curve_epochs,
            frames=s.frames, frame_spacing=s.frame_spacing, seed=cfg.seed, device=cfg.device,
            batch_size=64, lr=0.05)),
        stages.eval_curve(run_dir, EvalCurveOptions(points=21, subset=500, device=cfg.device)),
        stages.grid("grid", run_dir, GridConfig(
            resolution=(s.resolution, s.resolution), subset=s.subset, device=cfg.device,
            dtype="float32"), processes=min(os.cpu_count() or 1, 8)),
        stages.terrain("terrain", run_dir, TerrainConfig(
            sigma=s.sigma, frame_sigma=s.frame_sigma, upsample=s.upsample)),
        stages.view(run_dir, cfg.out / "lossart-demo.html"),
    ]
    if cfg.render:
        plan.append(stages.together("render", [
            stages.render("still", run_dir, still_look, RenderOptions(out=still), video=False),
            stages.render("video", run_dir, video_look, RenderOptions(
                out=video, fps=s.fps, interpolate=s.interpolate, duration=s.duration,
                hold=s.hold, caption=True), video=True)]))
    done = run_stages(cfg.out, "demo", cfg.preset, {"seed": cfg.seed, **asdict(s)}, plan,
                      run={"device": cfg.device}, on_stage=on_stage, bar="demo")
    _copy_plots(run_dir, cfg.out)
    rendered = "render" in done.stage_seconds
    return DemoResult(cfg.out, run_dir, still if rendered else None, video if rendered else None,
                      done.stage_seconds, done.results.get("barrier", {}))


def _copy_plots(run_dir: Path, out: Path) -> None:
    """The loss-along-path plot and the last terrain preview beside the still, for a quick look."""
    plot = run_dir / "analyses" / "eval_curve.png"
    if plot.is_file():
        _copy(plot, out / "loss-along-path.png")
    previews = sorted((run_dir / "terrain" / "preview").glob("frame_*.png"))
    if previews:
        _copy(previews[-1], out / "terrain-preview.png")


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
