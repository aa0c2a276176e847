"""`lossart demo --subject NAME`: a real network's landscape, every stage of the chain in one call.

The seed's subject (ResNet-20 without skips on CIFAR-10) at a size the machine can do: two
endpoints, a Bézier curve with log-spaced frames, video grids of every frame (adaptive), a
finer still grid of the final frame (adaptive on a CPU) in a second run folder that shares the
endpoints and the curve (hard links, no retraining), eval-curve and ensembles, both terrain bundles, a
still (with its comparison sheet), the video and a GIF preview.

Layout of OUT: `endpoints/` (w1.pt, w2.pt), `video/` (the curve run: video grids, bundle),
`still/` (the still run), `subject.png`, `compare-subject.png`, `subject.mp4`, `subject.gif`,
`demo.json`. demo.json is written atomically after every stage with its wall time, so a rerun
skips finished stages; the stage that was running when the process died resumes through its own
command's resume (endpoint and curve training states, grid tiles, cached video frames).
Endpoints or a whole curve run can be seeded (`endpoints=`, `curve=`), or placed in the layout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from lossart.atomic import atomic_path, write_json
from lossart.errors import LossartError


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
            video_size=(1920, 1080), video_samples=64, fps=24,
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


def _train_one(args: tuple[str, object, str, dict, int, int, str, int, str]) -> str:
    """One endpoint (a worker process on the CPU, so both train at once)."""
    from lossart.training.endpoints import TrainConfig, train_endpoint

    out, data, model, kwargs, epochs, seed, device, threads, dtype = args
    train_endpoint(TrainConfig(data=data, model=model, model_kwargs=kwargs, epochs=epochs,
                               seed=seed, out=out, device=device, progress=False, threads=threads,
                               dtype=dtype))
    return out


def _cores(cfg: SubjectConfig) -> int:
    return max(1, cfg.threads or os.cpu_count() or 1)


def run_subject(cfg: SubjectConfig,
                on_stage: Callable[[str], None] | None = None) -> SubjectResult:
    """Run (or resume) every stage into cfg.out; stages recorded done in demo.json are skipped."""
    from lossart.data import parse_data_spec
    from lossart.devices import cpu_threads

    s = check_subject(cfg)
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    video_run, still_run = out / "video", out / "still"
    record_path = out / "demo.json"
    record = _read_record(record_path)
    settings = _plain(asdict(s))
    if record.get("settings", settings) != settings or record.get("subject", cfg.subject) != cfg.subject:
        raise LossartError(f"--out {out}: holds a subject run with other settings "
                           f"({record.get('subject')}); use another --out")
    record.update(subject=cfg.subject, device=cfg.device, data=cfg.data, settings=settings,
                  dtype=cfg.dtype)
    record.setdefault("stages", {})
    ends = [out / "endpoints" / "w1.pt", out / "endpoints" / "w2.pt"]
    data = _data_text(cfg)
    spec = parse_data_spec(cfg.data, root=cfg.data_root, download=cfg.download)
    cores = _cores(cfg)
    cuda = str(cfg.device).startswith("cuda")
    last = str(s.frames - 1)
    dt = "" if cfg.dtype == "auto" else f" --dtype {cfg.dtype}"  # the CLI's default is auto

    def endpoints() -> str:
        seeds = cfg.endpoints or (
            [Path(cfg.curve) / "endpoints" / f"w{k}.pt" for k in (1, 2)] if cfg.curve else ())
        for src, dst in zip(seeds, ends):
            link_or_copy(Path(src), dst)
        ends[0].parent.mkdir(parents=True, exist_ok=True)
        per = 1 if cuda else max(1, cores // 2)
        jobs = [(str(p), spec, s.model, dict(s.model_kwargs), s.endpoint_epochs, k + 1,
                 cfg.device, per, cfg.dtype) for k, p in enumerate(ends)]
        todo = [j for j in jobs if not Path(j[0]).is_file()]
        if len(todo) == 2 and not cuda and cores > 1:
            with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
                list(pool.map(_train_one, todo))
        else:
            for job in todo:
                _train_one(job)
        return (f"lossart train --model {s.model} --data {data} --epochs {s.endpoint_epochs} "
                f"--seed 1|2 --threads {per} --device {cfg.device}{dt} --out endpoints/w1|w2.pt")

    def curve() -> str:
        from lossart.training.curve import CurveConfig, train_curve

        if cfg.curve and not video_run.exists():
            share_run(Path(cfg.curve), video_run)
        train_curve(CurveConfig(w1=str(ends[0]), w2=str(ends[1]), out=str(video_run),
                                epochs=s.curve_epochs, frames=s.frames,
                                frame_spacing=s.frame_spacing, seed=1, device=cfg.device,
                                threads=None if cuda else cores, progress=False,
                                dtype=cfg.dtype))
        return (f"lossart curve endpoints/w1.pt endpoints/w2.pt --out video --epochs "
                f"{s.curve_epochs} --frames {s.frames} --frame-spacing {s.frame_spacing}{dt}")

    def eval_curve() -> str:
        from lossart.analyses.eval_curve import evaluate_curve_run

        ev = evaluate_curve_run(video_run, points=s.eval_points, subset=s.eval_subset,
                                device=cfg.device, threads=None if cuda else cores)
        record["barrier"] = {"curve": ev.curve.barrier, "segment": ev.segment.barrier,
                             "test_curve": ev.curve.test_barrier,
                             "test_segment": ev.segment.test_barrier}
        return f"lossart eval-curve video --points {s.eval_points} --subset {s.eval_subset}"

    def ensemble() -> str:
        from lossart.analyses.ensemble import ensemble_run

        with cpu_threads(None if cuda else cores):
            ens = ensemble_run(video_run, points=s.eval_points, subset=s.ensemble_subset,
                               device=cfg.device)
        record["ensemble_first_t"] = {"curve": ens.first_t_matching("curve"),
                                      "segment": ens.first_t_matching("segment")}
        return f"lossart ensemble video --points {s.eval_points} --subset {s.ensemble_subset}"

    def video_grid() -> str:
        from lossart.grid.run_grid import GridConfig, grid_run

        with cpu_threads(None if cuda else cores):
            grid_run(video_run, GridConfig(resolution=s.video_resolution, subset=s.video_subset,
                                           aspect=s.aspect, adaptive=s.adaptive,
                                           adaptive_criterion=ADAPTIVE_CRITERION,
                                           device=cfg.device, dtype=cfg.dtype, quiet=True))
        return (f"lossart grid video --resolution {_wxh(s.video_resolution)} "
                f"--subset {s.video_subset} --aspect 16:9{_adaptive_flag(s.adaptive)}{dt}")

    def still_grid() -> str:
        from lossart.grid.run_grid import GridConfig, grid_run

        share_run(video_run, still_run)
        with cpu_threads(None if cuda else cores):
            grid_run(still_run, GridConfig(select_frames=last, resolution=s.still_resolution,
                                           subset=s.subset, aspect=s.aspect,
                                           adaptive=s.still_adaptive, device=cfg.device,
                                           adaptive_criterion=ADAPTIVE_CRITERION,
                                           dtype=cfg.dtype, quiet=True))
        return (f"lossart grid still --select-frames {last} --resolution "
                f"{_wxh(s.still_resolution)} --subset {s.subset} --aspect 16:9"
                f"{_adaptive_flag(s.still_adaptive)}{dt}")

    def video_terrain() -> str:
        from lossart.terrain.build import build_terrain
        from lossart.terrain.heightfield import TerrainConfig

        build_terrain(video_run, TerrainConfig(frame_sigma=s.frame_sigma), preview=True)
        return f"lossart terrain video --frame-sigma {s.frame_sigma} --preview"

    def still_terrain() -> str:
        from lossart.terrain.build import build_terrain

        build_terrain(still_run, preview=True)
        return "lossart terrain still --preview"

    def still() -> str:
        from lossart.render import render_still

        render_still(still_run, out=out / "subject.png", look=looks(s)[0], compare=True)
        return (f"lossart render still --still --size {_wxh(s.still_size)} --samples "
                f"{s.still_samples} --compare --out subject.png")

    def video() -> str:
        from lossart.render import render_video

        render_video(video_run, out=out / "subject.mp4", fps=s.fps, look=looks(s)[1],
                     caption=True, duration=s.duration)
        return (f"lossart render video --video --caption --camera orbit --size "
                f"{_wxh(s.video_size)} --samples {s.video_samples} --fps {s.fps} --out subject.mp4")

    def gif() -> str:
        make_gif(out / "subject.mp4", out / "subject.gif", s.gif_width, s.gif_fps)
        return f"ffmpeg -i subject.mp4 (fps {s.gif_fps}, width {s.gif_width}, palette) subject.gif"

    stages: list[tuple[str, Callable[[], str]]] = [
        ("endpoints", endpoints), ("curve", curve), ("eval-curve", eval_curve),
        ("ensemble", ensemble), ("video-grid", video_grid), ("still-grid", still_grid),
        ("video-terrain", video_terrain), ("still-terrain", still_terrain),
    ]
    if cfg.render:
        stages += [("still", still), ("video", video), ("gif", gif)]
    ran: list[str] = []
    write_json(record_path, record)
    for name, fn in stages:
        if record["stages"].get(name, {}).get("done"):
            continue
        if on_stage:
            on_stage(name)
        t0 = time.perf_counter()
        command = fn()
        record["stages"][name] = {"done": True, "seconds": time.perf_counter() - t0,
                                  "command": command, "threads": None if cuda else cores}
        ran.append(name)
        write_json(record_path, record)  # atomic: a kill -9 leaves the last finished stage
    seconds = {k: v["seconds"] for k, v in record["stages"].items()}
    files = {k: str(out / f) for k, f in (("still", "subject.png"), ("video", "subject.mp4"),
                                          ("gif", "subject.gif"), ("compare", "compare-subject.png"))
             if (out / f).is_file()}
    return SubjectResult(out, seconds, ran, files)


def make_gif(mp4: Path, gif: Path, width: int, fps: int) -> Path:
    """A GIF preview of the MP4 with ffmpeg (one palette for the whole clip), written atomically."""
    import imageio_ffmpeg

    graph = (f"fps={fps},scale={width}:-1:flags=lanczos,split[a][b];[a]palettegen[p];"
             "[b][p]paletteuse")
    with atomic_path(gif) as tmp:
        proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
                               "-i", str(mp4), "-vf", graph, "-f", "gif", str(tmp)],
                              capture_output=True, text=True)
        if proc.returncode:
            msg = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise LossartError(f"ffmpeg could not make {gif} from {mp4}: {msg}")
    return gif


def times_table(demo_json: str | Path) -> str:
    """renders/README.md's table (stage, command, wall time) from a subject run's demo.json."""
    import json

    path = Path(demo_json)
    if path.is_dir():
        path = path / "demo.json"
    rows = ["| stage | command | threads | wall time |", "|---|---|---|---|"]
    total = 0.0
    try:
        record = json.loads(path.read_text())
        stages = record["stages"]
        for name in STAGES:
            if name in stages:
                st = stages[name]
                seconds = float(st["seconds"])
                total += seconds
                threads = st.get("threads") or record.get("device", "")
                command = st["command"].replace("|", "\\|")  # a pipe would end the table cell
                rows.append(f"| {name} | `{command}` | {threads} | {_duration(seconds)} |")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LossartError(
            f"--report {demo_json}: not a subject run's demo.json ({type(exc).__name__}: {exc})"
        ) from None
    rows.append(f"| total | | | {_duration(total)} |")
    return "\n".join(rows) + "\n"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _adaptive_flag(tol: float | None) -> str:
    return f" --adaptive {tol} --adaptive-criterion {ADAPTIVE_CRITERION}" if tol else ""


def _wxh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _data_text(cfg: SubjectConfig) -> str:
    from lossart.data import parse_data_spec

    return parse_data_spec(cfg.data).name


def _plain(obj):
    """Tuples as lists, so that demo.json compares equal after a round trip."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _read_record(path: Path) -> dict:
    import json

    if not path.is_file():
        return {"format": "lossart-subject", "version": 1}
    try:
        record = json.loads(path.read_text())
    except ValueError:
        raise LossartError(f"{path}: not JSON; remove it to start the subject run afresh") from None
    if not isinstance(record, dict) or not isinstance(record.get("stages", {}), dict):
        raise LossartError(f"{path}: not a subject run's record (expected a JSON object with a "
                           "'stages' object); remove it to start the subject run afresh")
    return record


__all__ = ["SUBJECTS", "STAGES", "Subject", "SubjectConfig", "SubjectResult", "check_subject",
           "make_gif", "run_subject", "share_run", "times_table"]
