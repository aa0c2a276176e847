"""Headless rendering of a terrain bundle: stills and H.264 videos, through Blender.

`render_still` and `render_video` start a fresh Blender process that runs the add-on's own code
(`lossart.blender.headless`): `python -c` with the `bpy` module when it is installed, otherwise a
`blender` executable in background mode (`--blender PATH` or on PATH). A subprocess, not `bpy`
inside this process, because: Blender keeps global state (one scene, handlers, caches) that
would leak from one render into the next in a long-lived Python; a crash or exit hang in
Blender (bpy 4.5 after animation renders) cannot take lossart down or hang it; the bpy-module and
blender-executable routes run the very same code; and Blender's own log goes to a file instead
of mixing with our progress bar.

Videos are rendered frame by frame to `<name>_frames/frame_XXXXX.png` (an interrupted render
resumes: frames on disk are skipped), then encoded with ffmpeg (libx264, yuv420p, even size).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lossart.atomic import atomic_path, write_json
from lossart.errors import LossartError
from lossart.progress import progress

INSTALL_HINT = (
    "install the bpy module (`pip install bpy` on Python 3.11, or `pip install 'lossart[render]'`) "
    "or install Blender 4.2+ (https://www.blender.org/download/) and pass --blender PATH"
)


@dataclass
class RenderOptions:
    """How a bundle is shown and rendered (the same knobs as the add-on's panel)."""

    samples: int = 32
    size: tuple[int, int] = (960, 540)
    palette: str = "losslandscape"
    camera: str = "overview"
    denoise: bool = True
    height_scale: float = 1.0
    engine: str = "cycles"
    device: str = "auto"
    path_glow: float = 4.0
    show_bends: bool = False
    contours: bool = False
    playback_speed: float = 1.0
    blender: str | None = None

    def job_options(self) -> dict:
        return {
            "palette": self.palette,
            "height_scale": self.height_scale,
            "path_glow": self.path_glow,
            "camera": self.camera,
            "show_bends": self.show_bends,
            "contours": self.contours,
            "playback_speed": self.playback_speed,
        }

    def job_render(self) -> dict:
        return {
            "engine": self.engine,
            "samples": self.samples,
            "size": list(self.size),
            "denoise": self.denoise,
            "device": self.device,
        }


@dataclass
class RenderResult:
    out: Path
    device: str
    seconds: float
    frames_rendered: int = 1
    frames_skipped: int = 0
    log: Path | None = None


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H); a one-line error naming --size otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise LossartError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 960x540") from None
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise LossartError(f"--size {text!r}: width and height must be 16..16384")
    return w, h


def resolve_source(source: str | os.PathLike) -> tuple[Path, Path | None]:
    """A run folder or a bundle folder/manifest -> (bundle folder, the run's renders/ or None)."""
    p = Path(source).expanduser()
    if (p / "run.json").is_file():
        from lossart.runs import Run

        run = Run(p)
        if not (run.terrain / "manifest.json").is_file():
            raise LossartError(
                f"{p}: this run has no terrain bundle yet (run `lossart terrain {p}` first)"
            )
        return run.terrain, run.renders
    if p.is_file() and p.name.endswith(".json"):
        p = p.parent
    if (p / "manifest.json").is_file():
        run_root = p.parent if (p.parent / "run.json").is_file() else None
        return p, (run_root / "renders") if run_root else None
    raise LossartError(f"{p}: neither a run folder (run.json) nor a terrain bundle (manifest.json)")


def check_bundle(bundle_dir: Path):
    """Open the bundle with the add-on's own reader (numpy/json only) before starting Blender."""
    from lossart.blender.bundle import BundleError, load_bundle

    try:
        return load_bundle(bundle_dir)
    except BundleError as exc:
        raise LossartError(str(exc)) from None


def check_options(opts: RenderOptions) -> None:
    from lossart.blender.looks import CAMERA_PRESETS, PALETTES  # plain data, no bpy

    if opts.palette not in PALETTES:
        raise LossartError(f"--palette {opts.palette!r}: choose one of {', '.join(PALETTES)}")
    if opts.camera not in CAMERA_PRESETS:
        raise LossartError(f"--camera {opts.camera!r}: choose one of {', '.join(CAMERA_PRESETS)}")
    if opts.engine not in ("cycles", "eevee"):
        raise LossartError(f"--engine {opts.engine!r}: choose cycles or eevee")
    if opts.samples < 1:
        raise LossartError(f"--samples {opts.samples}: must be at least 1")
    if opts.height_scale < 0:
        raise LossartError(f"--height-scale {opts.height_scale}: must be >= 0")
    if opts.playback_speed <= 0:
        raise LossartError(f"--speed {opts.playback_speed}: must be > 0")


def addon_parent() -> Path:
    """The folder that holds the `lossart` package (put on Blender's sys.path)."""
    return addon_dir().parent.parent


def addon_dir() -> Path:
    """The add-on's own folder (the extension root, `lossart/blender/`)."""
    return Path(__file__).resolve().parent.parent / "blender"


def blender_command(job_path: Path, blender: str | None = None) -> list[str]:
    """The command running `lossart.blender.headless.main(job)`: bpy module or blender executable."""
    expr = (
        f"import sys; sys.path.insert(0, {str(addon_parent())!r}); "
        f"from lossart.blender.headless import main; main({str(job_path)!r})"
    )
    if blender:
        exe = shutil.which(blender) or (blender if Path(blender).is_file() else None)
        if exe is None:
            raise LossartError(f"--blender {blender}: no such Blender executable")
        return [exe, "-b", "--factory-startup", "--python-exit-code", "4", "--python-expr", expr]
    if importlib.util.find_spec("bpy") is not None:
        return [sys.executable, "-c", expr]
    exe = shutil.which("blender")
    if exe:
        return [exe, "-b", "--factory-startup", "--python-exit-code", "4", "--python-expr", expr]
    raise LossartError(f"cannot render: no bpy module and no blender executable; {INSTALL_HINT}")


def _writable(folder: Path, flag: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lossart-write-test"):
            pass
    except OSError as exc:
        raise LossartError(f"{flag} {folder}: cannot write there ({exc.strerror or exc})") from None


def _run_blender(
    job: dict,
    work: Path,
    name: str,
    opts: RenderOptions,
    watch: tuple[Path, int, int] | None = None,
) -> dict:
    """Run one headless job, logging Blender's output to work/<name>.log; its status dict."""
    job_path = work / f".{name}.job.json"
    status_path = work / f".{name}.status.json"
    log_path = work / f"{name}.log"
    status_path.unlink(missing_ok=True)
    job["status"] = str(status_path)
    write_json(job_path, job)
    cmd = blender_command(job_path, opts.blender)
    env = dict(os.environ)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        bar = None
        try:
            if watch is not None:
                folder, first, last = watch
                total = last - first + 1
                bar = progress(total=total, desc="render", unit="frame")
                seen = 0
                while proc.poll() is None:
                    time.sleep(0.25)
                    now = _count_frames(folder, first, last)
                    if now > seen:
                        bar.update(now - seen)
                        seen = now
                now = _count_frames(folder, first, last)
                bar.update(now - seen)
            proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        finally:
            if bar is not None:
                bar.close()
    status = json.loads(status_path.read_text()) if status_path.is_file() else {}
    job_path.unlink(missing_ok=True)
    status_path.unlink(missing_ok=True)
    if proc.returncode != 0 or "error" in status:
        if "error" in status:
            raise LossartError(status["error"])
        tail = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()][-1:]
        raise LossartError(
            f"Blender exited with status {proc.returncode} "
            f"({tail[0] if tail else 'no output'}); see {log_path}"
        )
    return status


def _count_frames(folder: Path, first: int, last: int) -> int:
    return sum(1 for f in range(first, last + 1) if (folder / f"frame_{f:05d}.png").is_file())


def default_out(source: str | os.PathLike, suffix: str, stem: str) -> Path:
    bundle_dir, renders = resolve_source(source)
    return (renders or bundle_dir.parent / "renders") / f"{stem}{suffix}"


def render_still(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    frame: int | None = None,
    opts: RenderOptions | None = None,
) -> RenderResult:
    """Render bundle frame `frame` (default: the last) of a run or bundle to a PNG."""
    opts = opts or RenderOptions()
    check_options(opts)
    bundle_dir, _ = resolve_source(source)
    bundle = check_bundle(bundle_dir)
    if frame is not None and not 0 <= frame < len(bundle.frames):
        raise LossartError(f"--frame {frame}: the bundle has frames 0..{len(bundle.frames) - 1}")
    out = (
        Path(out)
        if out
        else default_out(source, ".png", f"still_{'last' if frame is None else f'{frame:05d}'}")
    )
    if out.suffix.lower() != ".png":
        raise LossartError(f"--out {out}: a still is written as PNG (.png)")
    _writable(out.parent, "--out")
    t0 = time.perf_counter()
    with atomic_path(out) as tmp:
        png = tmp.with_suffix(".png")
        job = {
            "mode": "still",
            "bundle": str(bundle_dir),
            "out": str(png),
            "frame": frame,
            "options": opts.job_options(),
            "render": opts.job_render(),
        }
        try:
            status = _run_blender(job, out.parent, out.stem, opts)
            if not png.is_file():
                raise LossartError(
                    f"Blender wrote no image; see {out.parent / (out.stem + '.log')}"
                )
            png.replace(tmp)
        finally:
            png.unlink(missing_ok=True)
    return RenderResult(
        out=out,
        device=status.get("device", "?"),
        seconds=time.perf_counter() - t0,
        log=out.parent / f"{out.stem}.log",
    )


def _fingerprint(bundle_dir: Path, opts: RenderOptions) -> str:
    """What the frames depend on: bundle manifest and look/render settings (not fps, not device)."""
    manifest = (bundle_dir / "manifest.json").read_bytes()
    key = json.dumps(
        {"options": opts.job_options(), "render": {**opts.job_render(), "device": None}},
        sort_keys=True,
    ).encode()
    return hashlib.sha256(manifest + key).hexdigest()[:16]


def render_video(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    fps: int = 24,
    interpolate: int = 1,
    opts: RenderOptions | None = None,
    caption: bool = False,
) -> RenderResult:
    """Render every frame of the bundle's animation to PNGs (resuming), then encode an MP4.

    `caption` writes each frame's training state (epoch, step, training loss of the curve at
    that frame) into the picture's corner; the rendered frames stay clean, captions go on copies.

    `interpolate` K > 1 makes K-times slow motion by blending K-1 frames between rendered ones
    (ffmpeg minterpolate). For smooth slow motion of the terrain itself, lower the playback
    speed instead: the add-on then renders in-between heights.
    """
    opts = opts or RenderOptions()
    check_options(opts)
    if fps < 1 or fps > 240:
        raise LossartError(f"--fps {fps}: must be 1..240")
    if interpolate < 1:
        raise LossartError(f"--interpolate {interpolate}: must be >= 1")
    bundle_dir, _ = resolve_source(source)
    bundle = check_bundle(bundle_dir)
    out = Path(out) if out else default_out(source, ".mp4", "video")
    if out.suffix.lower() != ".mp4":
        raise LossartError(f"--out {out}: a video is written as MP4 (.mp4)")
    _writable(out.parent, "--out")
    frames_dir = out.parent / f"{out.stem}_frames"
    _writable(frames_dir, "--out")

    import math

    n_scene = 1 + math.ceil((len(bundle.frames) - 1) / opts.playback_speed - 1e-9)
    first, last = 1, n_scene
    stamp = frames_dir / "frames.json"
    fp = _fingerprint(bundle_dir, opts)
    if stamp.is_file() and json.loads(stamp.read_text()).get("fingerprint") != fp:
        stale = list(frames_dir.glob("frame_*.png")) + list(frames_dir.glob("slow*/frame_*.png"))
        for f in stale:  # rendered with other settings or another bundle: not reusable
            f.unlink()
        print(
            f"lossart: {len(stale)} frames in {frames_dir} had other settings; rendering afresh",
            file=sys.stderr,
        )
    write_json(
        stamp,
        {"fingerprint": fp, "bundle": str(bundle_dir), "options": asdict(opts)},
    )
    skipped = _count_frames(frames_dir, first, last)
    t0 = time.perf_counter()
    status = {"device": "none (all frames on disk)"}
    if skipped < n_scene:
        job = {
            "mode": "video",
            "bundle": str(bundle_dir),
            "frames_dir": str(frames_dir),
            "options": opts.job_options(),
            "render": opts.job_render(),
        }
        status = _run_blender(job, out.parent, out.stem, opts, watch=(frames_dir, first, last))
    rendered_s = time.perf_counter() - t0
    source_dir = frames_dir
    if caption:
        source_dir = caption_frames(frames_dir, bundle, opts.playback_speed, first, last)
    encode_video(source_dir, out, fps=fps, interpolate=interpolate, first=first)
    return RenderResult(
        out=out,
        device=status.get("device", "?"),
        seconds=rendered_s,
        frames_rendered=n_scene - skipped,
        frames_skipped=skipped,
        log=out.parent / f"{out.stem}.log",
    )


def frame_caption(frame) -> str:
    """What a video frame says about training: "epoch 3.25   step 130   train loss 0.412"."""
    parts = []
    if frame.epoch is not None:
        parts.append(f"epoch {frame.epoch:.2f}")
    if frame.step is not None:
        parts.append(f"step {frame.step}")
    if frame.train_loss is not None:
        parts.append(f"train loss {frame.train_loss:.3f}")
    return "   ".join(parts)


def caption_frames(frames_dir: Path, bundle, speed: float, first: int, last: int) -> Path:
    """Copies of frames first..last with the training state of the bundle frame each shows
    (scene frame f shows bundle position (f - first) * speed, captioned by the nearest frame),
    in frames_dir/captioned/ (made afresh each time: it is cheap and never stale)."""
    import math
    import shutil

    from PIL import Image, ImageDraw, ImageFont

    out_dir = frames_dir / "captioned"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    n = len(bundle.frames)
    for f in range(first, last + 1):
        src = frames_dir / f"frame_{f:05d}.png"
        index = min(n - 1, max(0, math.floor((f - first) * speed + 0.5)))
        text = frame_caption(bundle.frames[index])
        with Image.open(src) as im:
            img = im.convert("RGB")
        if text:
            size = max(10, img.height // 22)
            draw = ImageDraw.Draw(img)
            font = ImageFont.load_default(size=size)
            margin = max(4, img.height // 40)
            draw.text((margin, img.height - margin), text, font=font, anchor="ls",
                      fill=(235, 235, 245), stroke_width=max(1, size // 10), stroke_fill=(0, 0, 0))
        with atomic_path(out_dir / src.name) as tmp:
            img.save(tmp, format="PNG")
    return out_dir


def blend_frames(frames_dir: Path, first: int, k: int) -> Path:
    """K-times slow motion: write rendered frames with K-1 linear blends between each pair to
    frames_dir/slow<K>/ (renumbered from 1), reusing what is already there."""
    import imageio.v3 as iio

    files = sorted(f for f in frames_dir.glob("frame_*.png") if int(f.stem[6:]) >= first)
    out_dir = frames_dir / f"slow{k}"
    out_dir.mkdir(exist_ok=True)
    n = 1
    for a, b in zip(files, files[1:] + [None], strict=True):
        steps = 1 if b is None else k
        img_a = img_b = None
        for j in range(steps):
            target = out_dir / f"frame_{n:05d}.png"
            n += 1
            if target.is_file():
                continue
            if img_a is None:
                img_a = iio.imread(a).astype(np.float32)
                img_b = None if b is None else iio.imread(b).astype(np.float32)
            mix = img_a if j == 0 else (1 - j / k) * img_a + (j / k) * img_b
            with atomic_path(target) as tmp:
                iio.imwrite(tmp, np.round(mix).astype(np.uint8), extension=".png")
    return out_dir


def encode_video(
    frames_dir: Path, out: Path, fps: int = 24, interpolate: int = 1, first: int = 1
) -> Path:
    """frame_XXXXX.png -> H.264 MP4 (yuv420p, even width/height), written atomically.

    With `interpolate` K > 1, K-1 blended frames go between rendered ones (slow motion).
    """
    import imageio_ffmpeg

    if interpolate > 1:
        frames_dir, first = blend_frames(frames_dir, first, interpolate), 1
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with atomic_path(out) as tmp:
        mp4 = tmp.with_suffix(".mp4")
        cmd = [
            ffmpeg,
            "-y",
            "-loglevel",
            "error",
            "-framerate",
            str(fps),
            "-start_number",
            str(first),
            "-i",
            str(frames_dir / "frame_%05d.png"),
            "-vf",
            "scale=trunc(iw/2)*2:trunc(ih/2)*2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-crf",
            "18",
            "-preset",
            "medium",
            "-movflags",
            "+faststart",
            str(mp4),
        ]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0 or not mp4.is_file():
                msg = (res.stderr.strip().splitlines() or ["no output"])[-1]
                raise LossartError(f"ffmpeg could not encode {frames_dir} to {out}: {msg}")
            mp4.replace(tmp)
        finally:
            mp4.unlink(missing_ok=True)
    return out
