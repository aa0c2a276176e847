"""`lossart render --still --compare`: the still beside the flat preview of the same frame.

The preview (lossart/terrain/preview.py) is the honest map of a frame; a render must read at
least as well (DESIGN.md, "Looks"). One picture with both, side by side at the same height,
makes that judgement a glance: `compare-<still>.png` beside the still.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from lossart.atomic import atomic_path
from lossart.format.bundle import Bundle
from lossart.render.captions import flatten
from lossart.terrain.preview import write_previews

LABEL_HEIGHT = 22
GAP = 6
BACKGROUND = (12, 12, 20)
INK = (225, 225, 235)


def compare_path(still: Path) -> Path:
    """Where the contact sheet of `still` goes: compare-<name>.png beside it."""
    return still.with_name(f"compare-{still.name}")


def preview_of(bundle: Bundle, position: int, scratch: Path) -> Path:
    """The flat preview of the bundle frame at `position`: the bundle's own preview/ file when
    it is newer than the manifest, else a fresh one drawn into `scratch`."""
    frame = bundle.frames[position]
    own = bundle.root / "preview" / f"frame_{frame.index:05d}.png"
    manifest = bundle.root / "manifest.json"
    if own.is_file() and own.stat().st_mtime >= manifest.stat().st_mtime:
        return own
    return write_previews(bundle.root, out=scratch, positions=[position])[0]


def contact_sheet(still: Path, preview: Path, out: Path, labels: tuple[str, str]) -> Path:
    """`still` and `preview` side by side, scaled to the still's height, each with a label."""
    from PIL import Image, ImageDraw, ImageFont

    with Image.open(still) as a, Image.open(preview) as b:
        left, right = flatten(a, BACKGROUND), b.convert("RGB")
    h = left.height
    right = right.resize((max(1, round(right.width * h / right.height)), h), Image.LANCZOS)
    sheet = Image.new("RGB", (left.width + GAP + right.width, h + LABEL_HEIGHT), BACKGROUND)
    sheet.paste(left, (0, LABEL_HEIGHT))
    sheet.paste(right, (left.width + GAP, LABEL_HEIGHT))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=LABEL_HEIGHT * 2 // 3)
    for x, text in ((4, labels[0]), (left.width + GAP + 4, labels[1])):
        draw.text((x, LABEL_HEIGHT // 2), text, font=font, anchor="lm", fill=INK)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out


def compare_still(still: Path, bundle: Bundle, position: int) -> Path:
    """The contact sheet of a rendered still of bundle frame `position`: compare-<still>.png."""
    frame = bundle.frames[position]
    with tempfile.TemporaryDirectory(prefix="lossart-compare-") as scratch:
        preview = preview_of(bundle, position, Path(scratch))
        return contact_sheet(
            still,
            preview,
            compare_path(still),
            (f"render, frame {frame.index}", "flat preview (lossart terrain --preview)"),
        )
