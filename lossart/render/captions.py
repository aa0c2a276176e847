"""Video captions: each frame's training state (epoch, step, training loss) in its corner."""

from __future__ import annotations

import shutil
from pathlib import Path

from lossart.atomic import atomic_path
from lossart.format.timeline import Timeline
from lossart.swap import staging_dir, swap_in


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


def flatten(img, background: tuple[int, int, int]):
    """A PIL image with an alpha channel laid over a plain `background` (8-bit sRGB); RGB."""
    from PIL import Image

    if img.mode not in ("RGBA", "LA"):
        return img.convert("RGB")
    under = Image.new("RGBA", img.size, (*background, 255))
    return Image.alpha_composite(under, img.convert("RGBA")).convert("RGB")


def caption_frames(
    frames_dir: Path,
    bundle,
    timeline: Timeline,
    background: tuple[int, int, int] = (0, 0, 0),
    text: bool = True,
) -> Path:
    """Copies of the timeline's scene frames, each captioned with the training state of the
    bundle frame nearest to what it shows (`text`), and laid over `background` where they are
    transparent, in frames_dir/captioned/ (made afresh each time: it is cheap and never stale;
    built beside the old copies and swapped in). The rendered frames stay as rendered."""
    from PIL import Image, ImageDraw, ImageFont

    final = frames_dir / "captioned"
    out_dir = staging_dir(final)  # built beside the old copies, swapped in complete
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    try:
        for f in timeline.scene_frames():
            src = frames_dir / f"frame_{f:05d}.png"
            words = frame_caption(bundle.frames[timeline.shown_frame(f)]) if text else ""
            with Image.open(src) as im:
                img = flatten(im, background)
            if words:
                size = max(10, img.height // 22)
                draw = ImageDraw.Draw(img)
                font = ImageFont.load_default(size=size)
                margin = max(4, img.height // 40)
                draw.text((margin, img.height - margin), words, font=font, anchor="ls",
                          fill=(235, 235, 245), stroke_width=max(1, size // 10), stroke_fill=(0, 0, 0))
            with atomic_path(out_dir / src.name) as tmp:
                img.save(tmp, format="PNG")
        swap_in(out_dir, final)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return final
