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


def draw_caption(img, words: str) -> None:
    """`words` into the bottom-left corner of the RGB PIL image `img`, in place."""
    from PIL import ImageDraw, ImageFont

    if not words:
        return
    size = max(10, img.height // 22)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=size)
    margin = max(4, img.height // 40)
    draw.text((margin, img.height - margin), words, font=font, anchor="ls", fill=(235, 235, 245),
              stroke_width=max(1, size // 10), stroke_fill=(0, 0, 0))  # fmt: skip


def caption_frames(
    frames_dir: Path,
    bundle,
    timeline: Timeline,
    background: tuple[int, int, int] = (0, 0, 0),
    text: bool = True,
    blend: int = 1,
) -> Path:
    """Copies of the timeline's scene frames, each captioned with the training state of the
    bundle frame nearest to what it shows (`text`), and laid over `background` where they are
    transparent, in frames_dir/captioned/ (made afresh each time: it is cheap and never stale;
    built beside the old copies and swapped in). The rendered frames stay as rendered.

    `blend` K > 1 also makes K-times slow motion: K-1 linear blends of the clean pictures go
    between rendered frames, each captioned afterwards with the nearer frame's words (blending
    captioned pictures ghosted two captions over each other); the copies are then numbered
    frame_00001.png on, one per frame of the video."""
    import numpy as np
    from PIL import Image

    final = frames_dir / "captioned"
    out_dir = staging_dir(final)  # built beside the old copies, swapped in complete
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()

    def clean(f: int):
        with Image.open(frames_dir / f"frame_{f:05d}.png") as im:
            return flatten(im, background)

    def words_of(f: int) -> str:
        return frame_caption(bundle.frames[timeline.shown_frame(f)]) if text else ""

    try:
        scene = list(timeline.scene_frames())
        img_b = None
        for i, f in enumerate(scene):
            steps = 1 if blend <= 1 or i == len(scene) - 1 else blend
            img_a = img_b if img_b is not None else clean(f)  # the last pair's second picture
            img_b = clean(scene[i + 1]) if steps > 1 else None
            for j in range(steps):
                if j == 0:
                    img = img_a.copy()
                else:
                    mix = (1 - j / blend) * np.asarray(img_a, np.float32) + (j / blend) * np.asarray(
                        img_b, np.float32
                    )
                    img = Image.fromarray(np.round(mix).astype(np.uint8), "RGB")
                draw_caption(img, words_of(f if j < blend / 2 else scene[i + 1]))
                n = f if blend <= 1 else i * blend + j + 1
                with atomic_path(out_dir / f"frame_{n:05d}.png") as tmp:
                    img.save(tmp, format="PNG")
        swap_in(out_dir, final)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return final
