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
fingerprint: the bundle's manifest and the look (all of it but the render device), and only
frames that are whole and of the look's size (checked by decoding, or by the sha256 recorded
when last found whole). Frames for other settings are rendered beside the old ones and swapped
in when complete. One render owns a frames folder at a time (`job.claim`, a flock the
Blender child shares); leftovers of an interrupted one are swept first (docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lossart.addon.headless import RenderJob
from lossart.atomic import atomic_path, write_json
from lossart.checks import output_file
from lossart.errors import LossartError
from lossart.format.look import Look
from lossart.format.styles import background_rgb
from lossart.format.timeline import Timeline
from lossart.render.captions import caption_frames, frame_caption
from lossart.render.job import RenderResult, blender_executable, claim, count_frames, run_job
from lossart.render.options import check_look
from lossart.render.source import check_bundle, default_out, resolve_source, writable
from lossart.swap import swap_in, sweep

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


def _stamp(folder: Path) -> dict:
    try:
        data = json.loads((folder / "frames.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def next_dir(frames_dir: Path) -> Path:
    """Where frames for other settings are rendered until complete (then swapped in)."""
    return frames_dir.parent / f".{frames_dir.name}.next"


def prepare_frames(frames_dir: Path, bundle_dir: Path, look: Look) -> Path:
    """The folder to render this bundle and look into, stamped (frames.json) and checked.

    `frames_dir` itself when its frames were rendered from this bundle with this look (or it
    holds none); otherwise a sibling staging folder (`next_dir`), so the frames of the old
    settings stay until the new set is complete (`finish_frames` swaps it in). Cached frames
    that are unreadable or of another size are deleted, to be rendered again."""
    fp = fingerprint(bundle_dir, look)
    stamp = _stamp(frames_dir)
    has_frames = any(frames_dir.glob("frame_*.png"))
    work = frames_dir
    if has_frames and stamp.get("fingerprint") != fp:
        work = next_dir(frames_dir)
        if _stamp(work).get("fingerprint") != fp:
            shutil.rmtree(work, ignore_errors=True)  # staging for yet other settings
        print(
            f"lossart: the frames in {frames_dir} had other settings; rendering afresh beside them",
            file=sys.stderr,
        )
    work.mkdir(parents=True, exist_ok=True)
    checksums = _stamp(work).get("checksums")
    bad = check_frames(work, look.size, checksums if isinstance(checksums, dict) else {})
    for f in bad:
        f.unlink()
    if bad:
        print(f"lossart: {len(bad)} cached frame(s) in {work} were unreadable or of another "
              f"size; rendering them again", file=sys.stderr)  # fmt: skip
    _write_stamp(work, fp, bundle_dir, look)
    return work


def _write_stamp(folder: Path, fp: str, bundle_dir: Path, look: Look) -> None:
    write_json(
        folder / "frames.json",
        {"fingerprint": fp, "stamp_version": STAMP_VERSION, "bundle": str(bundle_dir),
         "look": look.to_dict(), "checksums": _checksums(folder)},
    )  # fmt: skip


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_VERIFIED: dict[str, dict[str, str]] = {}  # folder -> frame name -> sha256 of a frame found whole


def _checksums(folder: Path) -> dict[str, str]:
    known = _VERIFIED.get(str(folder), {})
    return {p.name: known[p.name] for p in sorted(folder.glob("frame_*.png")) if p.name in known}


def check_frames(folder: Path, size: tuple[int, int], checksums: dict[str, str]) -> list[Path]:
    """The frame PNGs in `folder` that cannot be reused: unreadable, or not `size` (W, H).

    A frame whose sha256 matches the one frames.json recorded when it was last found whole is
    not decoded again; any other frame is decoded in full."""
    from PIL import Image

    verified = _VERIFIED.setdefault(str(folder), {})
    bad = []
    for p in sorted(folder.glob("frame_*.png")):
        digest = _sha(p)
        if checksums.get(p.name) == digest:
            verified[p.name] = digest
            continue
        try:
            with Image.open(p) as im:
                im.load()
                ok = tuple(im.size) == tuple(int(v) for v in size)
        except Exception:  # PIL raises many types for broken files: all mean "render again"
            ok = False
        if ok:
            verified[p.name] = digest
        else:
            verified.pop(p.name, None)
            bad.append(p)
    return bad


def finish_frames(work: Path, frames_dir: Path, look: Look, bundle_dir: Path) -> None:
    """After the render: every frame whole and of the look's size (else a one-line error naming
    it), checksums recorded; a staging folder swapped in for the old frames."""
    stamp = _stamp(work)
    checksums = stamp.get("checksums")
    bad = check_frames(work, look.size, checksums if isinstance(checksums, dict) else {})
    if bad:
        raise LossartError(
            f"{bad[0]}: Blender wrote an unreadable frame or one of another size than "
            f"{look.size[0]}x{look.size[1]} ({len(bad)} such); rerun to render it again"
        )
    _write_stamp(work, stamp.get("fingerprint") or fingerprint(bundle_dir, look), bundle_dir, look)
    if work != frames_dir:
        swap_in(work, frames_dir)
        _VERIFIED[str(frames_dir)] = _VERIFIED.pop(str(work), {})


def sweep_leftovers(out: Path, frames_dir: Path) -> int:
    """Delete what an interrupted render or frame assembly left (temporary MP4s, blends,
    captions and frames, job and status files); only under `claim`."""
    n = len(sweep(frames_dir, complete=lambda p: (p / "frames.json").is_file()))
    patterns = [
        (out.parent, f".{out.name}.*.tmp"), (out.parent, f".{out.name}.*.mp4"),
        (out.parent, f".{out.stem}.job.json"), (out.parent, f".{out.stem}.status.json"),
        (out.parent, f".{out.stem}.status.tmp"),
    ]  # fmt: skip
    for folder in (frames_dir, next_dir(frames_dir)):
        patterns += [(folder, ".tmp_frame_*.png"), (folder, "slow*/.*.tmp"),
                     (folder, "captioned/.*.tmp"), (folder, ".frames.json.*.tmp")]  # fmt: skip
    for folder, pattern in patterns:
        for p in folder.glob(pattern):
            if p.is_file():
                p.unlink(missing_ok=True)
                n += 1
    for folder in (frames_dir, next_dir(frames_dir)):
        n += len(sweep(folder / "captioned"))
    return n


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
    A transparent look's frames keep their alpha; the MP4 has them over the style's background.

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
    with claim(frames_dir, "these frames") as owner:
        sweep_leftovers(out, frames_dir)
        work = prepare_frames(frames_dir, bundle_dir, look)
        skipped = count_frames(work, frames)
        t0 = time.perf_counter()
        status = {"device": "none (all frames on disk)"}
        if skipped < len(frames):
            job = RenderJob(mode="video", bundle=str(bundle_dir), look=look, frames_dir=str(work))
            status = run_job(
                job, out.parent, out.stem, blender, watch=(work, frames), keep=owner.fileno()
            )
            if (status.get("frame_start"), status.get("frame_end")) != (frames.start, frames[-1]):
                raise LossartError(  # the add-on and lossart plan with the same Timeline
                    f"Blender rendered scene frames {status.get('frame_start')}.."
                    f"{status.get('frame_end')}, expected {frames.start}..{frames[-1]}; "
                    f"see {out.parent / (out.stem + '.log')}"
                )
        rendered_s = time.perf_counter() - t0
        finish_frames(work, frames_dir, look, bundle_dir)
        source_dir, encoded, blend = frames_dir, frames, interpolate
        if caption or look.transparent:  # the MP4 has no alpha: flattened onto the background
            # blended here, before the words go on, so that in-between frames show one caption
            source_dir = caption_frames(frames_dir, bundle, timeline, background_rgb(look.style),
                                        text=caption, blend=interpolate)  # fmt: skip
            if interpolate > 1:
                encoded, blend = range(1, (len(frames) - 1) * interpolate + 2), 1
        encode_video(
            source_dir, out, fps=fps, interpolate=blend, frames=encoded, hold=plan.hold_frames
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
