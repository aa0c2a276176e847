"""`lossart render --video`: every scene frame to a PNG (resuming), then an H.264 MP4.

A video lasts `duration` seconds whatever the number of recorded frames (`plan_video`): the
recorded frames are spread over it at a playback speed below or above 1 (below 1, the add-on
renders interpolated heights between recorded frames), with the first and the last frame held
`hold` seconds. Without a duration, the look's own playback speed sets the length.

Frames are planned by the add-on's `Timeline` (scene frame f shows bundle position
`(f - frame_start) * playback_speed`), rendered by one Blender job to
`<name>_frames/frame_XXXXX.png` (numbered by scene frame; frames on disk are skipped, so an
interrupted render resumes), optionally captioned and blended for slow motion, then encoded
with ffmpeg (libx264, yuv420p, even size).

The frames on disk are reused only while `<name>_frames/frames.json` holds the same
fingerprint: the bundle's manifest and the look (all of it but the render device).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lossart.atomic import atomic_path, write_json
from lossart.blender.headless import RenderJob
from lossart.blender.look import Look
from lossart.blender.timeline import Timeline
from lossart.checks import output_file
from lossart.errors import LossartError
from lossart.render.captions import caption_frames, frame_caption
from lossart.render.job import RenderResult, blender_executable, count_frames, run_job
from lossart.render.options import check_look
from lossart.render.source import check_bundle, default_out, resolve_source, writable

# 2: the look as one Look dict; frames stamped by version 1 ("options") are rendered afresh
STAMP_VERSION = 2
DURATION = 12.0  # seconds a video lasts by default, whatever the number of recorded frames
HOLD = 1.0  # seconds the first and the last frame stay on screen


@dataclass(frozen=True)
class VideoPlan:
    """How a video of `frames` recorded frames is made: the playback speed (bundle frames per
    rendered scene frame), the scene frames rendered, and the video frames each end is held."""

    speed: float
    rendered: int
    hold_frames: int

    def video_frames(self, interpolate: int = 1) -> int:
        """Frames in the encoded video (K-1 blends between rendered frames, then the holds)."""
        return (self.rendered - 1) * interpolate + 1 + 2 * self.hold_frames


def plan_video(
    frames: int,
    fps: int,
    duration: float | None = DURATION,
    hold: float = HOLD,
    interpolate: int = 1,
    speed: float = 1.0,
) -> VideoPlan:
    """Spread `frames` recorded frames over `duration` seconds at `fps`, the first and last held
    `hold` seconds each; with `duration` None, play them at `speed` (then hold)."""
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise LossartError(f"--duration {duration}: expected a number of seconds > 0")
    if not (math.isfinite(hold) and hold >= 0):
        raise LossartError(f"--hold {hold}: expected a number of seconds >= 0")
    hold_frames = int(round(hold * fps))
    if duration is None:
        rendered = Timeline(frames, speed).frame_count
        return VideoPlan(speed=speed, rendered=rendered, hold_frames=hold_frames)
    total = max(1, int(round(duration * fps)))
    moving = total - 2 * hold_frames
    if frames == 1:
        return VideoPlan(speed=1.0, rendered=1, hold_frames=max(0, (total - 1) // 2))
    if moving < 2:
        raise LossartError(
            f"--duration {duration:g}: too short for a {hold:g} s hold at each end at {fps} fps"
        )
    rendered = max(2, int(round((moving - 1) / interpolate)) + 1)
    return VideoPlan(speed=(frames - 1) / (rendered - 1), rendered=rendered, hold_frames=hold_frames)


def fingerprint(bundle_dir: Path, look: Look) -> str:
    """What the frames depend on: the bundle manifest and the look (not fps, not the device)."""
    manifest = (bundle_dir / "manifest.json").read_bytes()
    key = {**look.to_dict(), "render_device": None, "stamp_version": STAMP_VERSION}
    return hashlib.sha256(manifest + json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _stamped_fingerprint(stamp: Path) -> str | None:
    """The fingerprint frames.json records; None for a garbled stamp (its frames are stale)."""
    try:
        data = json.loads(stamp.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    value = data.get("fingerprint") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def prepare_frames(frames_dir: Path, bundle_dir: Path, look: Look) -> int:
    """Keep the frames in `frames_dir` only if they were rendered from this bundle with this
    look (frames.json); delete them otherwise. Stamps the folder; returns the frames deleted."""
    stamp = frames_dir / "frames.json"
    fp = fingerprint(bundle_dir, look)
    stale = []
    if stamp.is_file() and _stamped_fingerprint(stamp) != fp:
        stale = list(frames_dir.glob("frame_*.png")) + list(frames_dir.glob("slow*/frame_*.png"))
        for f in stale:  # rendered with other settings or another bundle: not reusable
            f.unlink()
        print(
            f"lossart: {len(stale)} frames in {frames_dir} had other settings; rendering afresh",
            file=sys.stderr,
        )
    write_json(
        stamp,
        {"fingerprint": fp, "stamp_version": STAMP_VERSION, "bundle": str(bundle_dir),
         "look": look.to_dict()},
    )  # fmt: skip
    return len(stale)


def render_video(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    fps: int = 24,
    interpolate: int = 1,
    look: Look | None = None,
    caption: bool = False,
    blender: str | None = None,
    duration: float | None = DURATION,
    hold: float = HOLD,
) -> RenderResult:
    """Render every scene frame of the bundle's animation to PNGs (resuming), then an MP4.

    The MP4 lasts `duration` seconds (default DURATION) whatever the number of recorded
    frames: the look's playback speed is replaced by the one that spreads them over it, with
    the first and last frame held `hold` seconds each (`plan_video`). `duration` None plays
    them at the look's own playback speed (then holds `hold` seconds at each end).

    `caption` writes each frame's training state (epoch, step, training loss of the curve at
    that frame) into the picture's corner; the rendered frames stay clean, captions go on copies.

    `interpolate` K > 1 makes K-times slow motion by blending K-1 frames between rendered ones.
    For smooth slow motion of the terrain itself, lower the look's playback speed instead: the
    add-on then renders in-between heights. `blender`: a Blender executable instead of bpy.
    """
    look = check_look(look or Look())
    if fps < 1 or fps > 240:
        raise LossartError(f"--fps {fps}: must be 1..240")
    if interpolate < 1:
        raise LossartError(f"--interpolate {interpolate}: must be >= 1")
    bundle_dir, _ = resolve_source(source)
    bundle = check_bundle(bundle_dir)
    out = Path(out) if out else default_out(source, ".mp4", "video")
    if out.suffix.lower() != ".mp4":
        raise LossartError(f"--out {out}: a video is written as MP4 (.mp4)")
    output_file(out)
    if blender is not None:  # before anything is created: a wrong --blender leaves no trace
        blender_executable(blender)
    writable(out.parent, "--out")
    frames_dir = out.parent / f"{out.stem}_frames"
    writable(frames_dir, "--out")

    plan = plan_video(
        len(bundle.frames), fps, duration, hold, interpolate, speed=look.playback_speed
    )
    look = check_look(replace(look, playback_speed=plan.speed))
    timeline = look.timeline(len(bundle.frames))
    frames = timeline.scene_frames()
    if caption:  # a caption that cannot be written fails now, not after every frame rendered
        [frame_caption(f) for f in bundle.frames]
    prepare_frames(frames_dir, bundle_dir, look)
    skipped = count_frames(frames_dir, frames)
    t0 = time.perf_counter()
    status = {"device": "none (all frames on disk)"}
    if skipped < len(frames):
        job = RenderJob(mode="video", bundle=str(bundle_dir), look=look, frames_dir=str(frames_dir))
        status = run_job(job, out.parent, out.stem, blender, watch=(frames_dir, frames))
        if (status.get("frame_start"), status.get("frame_end")) != (frames.start, frames[-1]):
            raise LossartError(  # the add-on and lossart plan with the same Timeline
                f"Blender rendered scene frames {status.get('frame_start')}.."
                f"{status.get('frame_end')}, expected {frames.start}..{frames[-1]}; "
                f"see {out.parent / (out.stem + '.log')}"
            )
    rendered_s = time.perf_counter() - t0
    source_dir = caption_frames(frames_dir, bundle, timeline) if caption else frames_dir
    encode_video(
        source_dir, out, fps=fps, interpolate=interpolate, frames=frames, hold=plan.hold_frames
    )
    return RenderResult(
        out=out,
        device=status.get("device", "?"),
        seconds=rendered_s,
        frames_rendered=len(frames) - skipped,
        frames_skipped=skipped,
        log=out.parent / f"{out.stem}.log",
    )


def blend_frames(frames_dir: Path, frames: range, k: int) -> Path:
    """K-times slow motion: write the frames with K-1 linear blends between each pair to
    frames_dir/slow<K>/ (renumbered from 1), reusing what is already there."""
    import imageio.v3 as iio

    files = [frames_dir / f"frame_{f:05d}.png" for f in frames]
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
    frames_dir: Path, out: Path, fps: int, interpolate: int, frames: range, hold: int = 0
) -> Path:
    """frames_dir/frame_XXXXX.png for the scene `frames` -> H.264 MP4 (yuv420p, even width and
    height), written atomically. With `interpolate` K > 1, K-1 blended frames go between
    rendered ones (slow motion); `hold` copies of the first and of the last frame pad the ends."""
    import imageio_ffmpeg

    first = frames.start
    if interpolate > 1:
        frames_dir, first = blend_frames(frames_dir, frames, interpolate), 1
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with atomic_path(out) as tmp:
        mp4 = tmp.with_suffix(".mp4")
        cmd = [
            ffmpeg, "-y", "-loglevel", "error",
            "-framerate", str(fps), "-start_number", str(first),
            "-i", str(frames_dir / "frame_%05d.png"),
            "-vf", (f"tpad=start_mode=clone:start={hold}:stop_mode=clone:stop={hold},"
                    if hold else "") + "scale=trunc(iw/2)*2:trunc(ih/2)*2",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-preset", "medium",
            "-movflags", "+faststart",
            str(mp4),
        ]  # fmt: skip
        try:
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0 or not mp4.is_file():
                msg = (res.stderr.strip().splitlines() or ["no output"])[-1]
                raise LossartError(f"ffmpeg could not encode {frames_dir} to {out}: {msg}")
            mp4.replace(tmp)
        finally:
            mp4.unlink(missing_ok=True)
    return out
