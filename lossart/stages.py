"""The demo's stages, each built from its config: the same config does the work and gives the
stage's command line (lossart.commands), so the toy demo and the subjects declare stages
instead of writing them, and their printed commands cannot drift from what ran.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from lossart.atomic import atomic_path
from lossart.commands import Command, EnsembleOptions, EvalCurveOptions, RenderOptions
from lossart.errors import LossartError
from lossart.pipeline import Stage


def endpoints(configs: Sequence[Any], parallel: bool, seeds: Sequence[str | Path] = ()) -> Stage:
    """Train the endpoints (TrainConfigs) not on disk yet, two at once in worker processes when
    `parallel`; `seeds` are existing checkpoints placed first (hard links, no training)."""

    def work(results: dict) -> None:
        for src, cfg in zip(seeds, configs):
            link_or_copy(Path(src), Path(cfg.out))
        Path(configs[0].out).parent.mkdir(parents=True, exist_ok=True)
        todo = [c for c in configs if not Path(c.out).is_file()]
        if parallel and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=len(todo), mp_context=get_context("spawn")) as pool:
                list(pool.map(train_one, todo))
        else:
            for cfg in todo:
                train_one(cfg)

    return Stage("endpoints", work, [Command("train", configs=(c,)) for c in configs])


def train_one(cfg: Any) -> str:
    """One endpoint (in a worker process, or here)."""
    from lossart.training.endpoints import train_endpoint

    train_endpoint(cfg)
    return str(cfg.out)


def curve(cfg: Any, seed_run: str | Path | None = None) -> Stage:
    """Train the curve of a CurveConfig; `seed_run`: a curve run to start from (hard links)."""

    def work(results: dict) -> None:
        from lossart.training.curve import train_curve

        if seed_run and not Path(cfg.out).exists():
            share_run(Path(seed_run), Path(cfg.out))
        train_curve(cfg)

    return Stage("curve", work, [Command("curve", configs=(cfg,))])


def eval_curve(run: Path, opts: EvalCurveOptions) -> Stage:
    """Loss along the curve and the segment; the barriers go into the results."""

    def work(results: dict) -> None:
        from lossart.analyses.eval_curve import evaluate_curve_run

        ev = evaluate_curve_run(run, points=opts.points, subset=opts.subset, device=opts.device,
                                threads=opts.threads)
        results["barrier"] = {"curve": ev.curve.barrier, "segment": ev.segment.barrier,
                              "test_curve": ev.curve.test_barrier,
                              "test_segment": ev.segment.test_barrier}

    return Stage("eval-curve", work, [Command("eval-curve", (run,), (opts,))])


def ensemble(run: Path, opts: EnsembleOptions) -> Stage:
    """The ensembles along both paths; where each first matches the endpoints' goes into results."""

    def work(results: dict) -> None:
        from lossart.analyses.ensemble import ensemble_run

        ens = ensemble_run(run, points=opts.points, subset=opts.subset, device=opts.device)
        results["ensemble_first_t"] = {"curve": ens.first_t_matching("curve"),
                                       "segment": ens.first_t_matching("segment")}

    return Stage("ensemble", work, [Command("ensemble", (run,), (opts,))])


def grid(name: str, run: Path, cfg: Any, processes: int = 1,
         share_from: Path | None = None) -> Stage:
    """The loss grids of a GridConfig: on a CPU in `processes` shards (`--shard i/n`, as a job
    array would) and one pass that assembles them; `share_from`: a run whose endpoints and
    curve the grid's run shares (its own grids, no retraining)."""

    def work(results: dict) -> None:
        from lossart.grid.run_grid import grid_run

        if share_from is not None:
            share_run(share_from, run)
        if cfg.device == "cpu" and processes > 1:
            jobs = [(str(run), replace(cfg, shard=f"{i}/{processes}", quiet=True if i else None))
                    for i in range(processes)]
            with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
                list(pool.map(_grid_shard, jobs))
        grid_run(run, cfg)

    return Stage(name, work, [Command("grid", (run,), (cfg,))])


def _grid_shard(args: tuple[str, Any]) -> None:
    """One shard of the grids (in a worker process, one CPU thread)."""
    from lossart.devices import set_process_threads
    from lossart.grid.run_grid import grid_run

    set_process_threads(1)
    grid_run(args[0], args[1])


def terrain(name: str, run: Path, cfg: Any) -> Stage:
    """The terrain bundle of a TerrainConfig, with its previews."""

    def work(results: dict) -> None:
        from lossart.terrain.build import build_terrain

        build_terrain(run, cfg, preview=True)

    return Stage(name, work, [Command("terrain", (run,), (cfg,), ("--preview",))])


def view(run: Path, out: Path) -> Stage:
    """The run's page for a browser."""

    def work(results: dict) -> None:
        from lossart.view import write_view

        write_view(run, out)

    return Stage("view", work, [Command("view", (run,), (), ("--out", out))])


def render(name: str, run: Path, look: Any, opts: RenderOptions, video: bool) -> Stage:
    """A still (`video` False: render_still) or a video of the run's bundle with this Look."""

    def work(results: dict) -> None:
        from lossart.render import render_still, render_video

        if video:
            render_video(run, out=opts.out, fps=opts.fps, interpolate=opts.interpolate,
                         look=look, caption=opts.caption, duration=opts.duration, hold=opts.hold)
        else:
            render_still(run, out=opts.out, look=look, compare=opts.compare)

    mode = "--video" if video else "--still"
    return Stage(name, work, [Command("render", (run, mode), (look, opts))])


def together(name: str, parts: Sequence[Stage]) -> Stage:
    """One stage doing `parts` in order (the toy demo's still and video are its `render`)."""

    def work(results: dict) -> None:
        for part in parts:
            part.work(results)

    return Stage(name, work, [c for part in parts for c in part.commands])


def gif(mp4: Path, out: Path, width: int, fps: int) -> Stage:
    """A GIF preview of a video, by ffmpeg (its command is ffmpeg's, not lossart's)."""
    line = shlex.join(["ffmpeg", "-i", mp4.name, *gif_filter(width, fps), out.name])
    return Stage("gif", lambda results: make_gif(mp4, out, width, fps), line)


def gif_filter(width: int, fps: int) -> list[str]:
    """ffmpeg's filter for the GIF preview: one palette for the whole clip."""
    return ["-vf", f"fps={fps},scale={width}:-1:flags=lanczos,split[a][b];[a]palettegen[p];"
            "[b][p]paletteuse"]


def make_gif(mp4: Path, gif: Path, width: int, fps: int) -> Path:
    """A GIF preview of the MP4 with ffmpeg (one palette for the whole clip), written atomically."""
    import imageio_ffmpeg

    with atomic_path(gif) as tmp:
        proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
                               "-i", str(mp4), *gif_filter(width, fps), "-f", "gif", str(tmp)],
                              capture_output=True, text=True)
        if proc.returncode:
            msg = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise LossartError(f"ffmpeg could not make {gif} from {mp4}: {msg}")
    return gif


def link_or_copy(src: Path, dst: Path) -> None:
    """dst as a hard link to src (same disk), else an atomic copy; an existing dst is kept."""
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def share_run(src: Path, dst: Path) -> None:
    """A run folder at dst with src's run.json, endpoints and curve: grids of its own, no
    retraining. run.json is copied (commands append to it), the weights are hard-linked."""
    for path in sorted([*(src / "endpoints").glob("*.pt"), *(src / "curve").rglob("*")]):
        if path.is_file() and not path.name.endswith(".partial"):
            link_or_copy(path, dst / path.relative_to(src))
    if not (dst / "run.json").is_file():
        with atomic_path(dst / "run.json") as tmp:
            shutil.copyfile(src / "run.json", tmp)


__all__ = ["curve", "endpoints", "ensemble", "eval_curve", "gif", "gif_filter", "grid",
           "link_or_copy", "make_gif", "render",
           "share_run", "terrain", "together", "train_one", "view"]
