"""`lossart demo`: the whole pipeline on the built-in data, from nothing to a still and a video.

Two small conv nets trained independently on the built-in `shapes` images (in parallel, one per
core), a quadratic Bézier curve between them trained with recorded frames, the loss-along-path
plot, per-frame loss grids, the terrain bundle with previews, its page for a browser (`lossart
view`), and Blender renders: a still of the trained curve and an MP4 of the curve being trained.

Every stage resumes: rerunning the same command skips what is already on disk, so an interrupted
demo continues where it stopped. The output folder holds the still and the video at its top and
the run folder (`run/`), which every other command can be pointed at.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

from lossart.atomic import atomic_path, write_json
from lossart.checks import check_number, output_dir
from lossart.errors import LossartError
from lossart.progress import progress


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of every stage; the presets below trade time for beauty."""

    model_width: int = 8  # smallcnn channels: the FLOPs of every grid point scale with it
    endpoint_epochs: int = 10
    curve_epochs: int = 8
    frames: int = 30
    frame_spacing: str = "log"  # the curve moves most early on: log spacing shows that
    resolution: int = 51
    subset: int = 128
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

    def __post_init__(self) -> None:
        check_number("--frames", self.frames, 2, optional=False)
        check_number("--resolution", self.resolution, 2, optional=False)
        check_number("--subset", self.subset, 1, optional=False)

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
    seed: int = 1
    render: bool = True
    overrides: dict = field(default_factory=dict)

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


def _train_one(args: tuple[str, int, int, int, str]) -> str:
    """One endpoint (runs in a worker process; one CPU thread each)."""
    from lossart.training.endpoints import TrainConfig, train_endpoint

    out, seed, width, epochs, device = args
    train_endpoint(
        TrainConfig(data="shapes", model="smallcnn", model_kwargs={"width": width}, epochs=epochs,
                    seed=seed, out=out, device=device, progress=False, threads=1)
    )
    return out


def _endpoints(cfg: DemoConfig, s: DemoSettings) -> list[str]:
    folder = cfg.out / "endpoints"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"w{k + 1}.pt"), cfg.seed + k, s.model_width, s.endpoint_epochs, cfg.device)
            for k in range(2)]
    todo = [j for j in jobs if not Path(j[0]).is_file()]
    if len(todo) == 2 and cfg.device == "cpu":
        with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
            list(pool.map(_train_one, todo))
    else:
        for job in todo:
            _train_one(job)
    return [j[0] for j in jobs]


def _grid_shard(args: tuple[str, object]) -> None:
    """One shard of the grids (runs in a worker process, one CPU thread)."""
    from lossart.devices import set_process_threads
    from lossart.grid.run_grid import grid_run

    set_process_threads(1)
    grid_run(args[0], args[1])


def _grid_in_parallel(run_dir: Path, grid) -> None:
    """On a CPU, one shard per core (`--shard i/n`, as a job array would), then one pass that
    finds every tile on disk and assembles the frames; elsewhere one process does it all."""
    import os

    cores = min(os.cpu_count() or 1, 8)
    if grid.device == "cpu" and cores > 1:
        jobs = [(str(run_dir), replace(grid, shard=f"{i}/{cores}", quiet=True if i else None))
                for i in range(cores)]
        with ProcessPoolExecutor(max_workers=cores, mp_context=get_context("spawn")) as pool:
            list(pool.map(_grid_shard, jobs))
    from lossart.grid.run_grid import grid_run

    grid_run(run_dir, grid)


def run_demo(cfg: DemoConfig, on_stage: Callable[[str], None] | None = None) -> DemoResult:
    """Run (or resume) the demo into `cfg.out`; returns where everything is and how long it took."""
    from lossart.analyses.eval_curve import evaluate_curve_run
    from lossart.grid.run_grid import GridConfig
    from lossart.terrain.build import build_terrain
    from lossart.terrain.heightfield import TerrainConfig
    from lossart.training.curve import CurveConfig, train_curve

    s = cfg.settings()
    from lossart.devices import pick_device

    output_dir(cfg.out)  # every option and the output folder are checked before any stage runs
    pick_device(cfg.device)
    check_number("--seed", cfg.seed, 0, optional=False)
    still_look, video_look = s.looks()  # a bad look is refused now, not after the grids
    cfg.out.mkdir(parents=True, exist_ok=True)
    run_dir = cfg.out / "run"
    times: dict[str, float] = {}
    state: dict = {}

    def endpoints() -> None:
        state["ends"] = _endpoints(cfg, s)

    def curve() -> None:
        train_curve(CurveConfig(
            w1=state["ends"][0], w2=state["ends"][1], out=str(run_dir), epochs=s.curve_epochs,
            frames=s.frames, frame_spacing=s.frame_spacing, seed=cfg.seed, device=cfg.device,
            batch_size=64, lr=0.05,
        ))

    def eval_curve() -> None:
        ev = evaluate_curve_run(run_dir, points=21, subset=500, device=cfg.device)
        state["barrier"] = {"curve": ev.curve.barrier, "segment": ev.segment.barrier}

    def grids() -> None:
        grid = GridConfig(resolution=(s.resolution, s.resolution), subset=s.subset,
                          device=cfg.device)
        _grid_in_parallel(run_dir, grid)

    def terrain() -> None:
        build_terrain(run_dir, TerrainConfig(sigma=s.sigma, frame_sigma=s.frame_sigma,
                                             upsample=s.upsample), preview=True)

    def view() -> None:
        from lossart.view import write_view

        state["page"] = write_view(run_dir, cfg.out / "lossart-demo.html").path

    def renders() -> None:
        from lossart.render import render_still, render_video

        still = render_still(run_dir, out=cfg.out / "lossart-demo.png", look=still_look)
        video = render_video(run_dir, out=cfg.out / "lossart-demo.mp4", fps=s.fps,
                             interpolate=s.interpolate, look=video_look, caption=True,
                             duration=s.duration, hold=s.hold)
        state["still"], state["video"] = still.out, video.out

    stages: list[tuple[str, Callable[[], None]]] = [
        ("endpoints", endpoints), ("curve", curve), ("eval-curve", eval_curve), ("grid", grids),
        ("terrain", terrain), ("view", view),
    ]
    if cfg.render:
        stages.append(("render", renders))
    bar = progress(total=len(stages), desc="demo", unit="stage")
    try:
        for name, fn in stages:
            bar.set_description(f"demo: {name}")
            if on_stage:
                on_stage(name)
            t0 = time.perf_counter()
            fn()
            times[name] = time.perf_counter() - t0
            bar.update(1)
    finally:
        bar.close()
    _copy_plots(run_dir, cfg.out)
    result = DemoResult(cfg.out, run_dir, state.get("still"), state.get("video"), times,
                        state.get("barrier", {}))
    write_json(cfg.out / "demo.json", {
        "preset": cfg.preset, "settings": asdict(s), "stage_seconds": times,
        "barrier": result.barrier,
    })
    return result


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
