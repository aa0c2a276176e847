"""Which scene frame shows which bundle frame: the one place this arithmetic lives (no bpy).

Scene frame f shows bundle position `(f - frame_start) * speed`, clamped to the bundle; a
fractional position interpolates between two recorded frames (slow motion when speed < 1).
The add-on's frame handler, its bake and still renders, and lossart's video planning and
captions all ask a `Timeline`, so they cannot disagree on how many frames a video has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

# Blender stores the speed as float32 (relative error up to 6e-8), lossart as float64: the
# frame count must not depend on which one asks, so a quotient within this share of an
# integer counts as that integer.
_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Timeline:
    frames: int  # recorded bundle frames
    speed: float = 1.0  # bundle frames per scene frame
    frame_start: int = 1  # the scene frame that shows bundle frame 0

    def position(self, scene_frame: float) -> float:
        """The bundle position scene frame `scene_frame` shows."""
        pos = (scene_frame - self.frame_start) * self.speed
        return min(max(pos, 0.0), self.frames - 1.0)

    def scene_frame(self, position: float) -> int:
        """The scene frame that shows bundle `position` (exactly, when a scene frame does)."""
        return self.frame_start + int(math.floor(position / self.speed + 0.5))

    def shown_frame(self, scene_frame: float) -> int:
        """The recorded bundle frame nearest to what `scene_frame` shows (for captions)."""
        return min(self.frames - 1, max(0, int(math.floor(self.position(scene_frame) + 0.5))))

    @property
    def frame_count(self) -> int:
        """Scene frames needed to play every bundle frame once."""
        q = (self.frames - 1) / max(self.speed, 1e-6)
        return 1 + max(0, math.ceil(q - _TOLERANCE * max(1.0, q)))

    @property
    def frame_end(self) -> int:
        return self.frame_start + self.frame_count - 1

    def scene_frames(self) -> range:
        return range(self.frame_start, self.frame_end + 1)


def frame_file(folder: str | Path, frame: int) -> Path:
    """Where scene frame `frame` of a video is rendered: the add-on writes it, lossart counts it."""
    return Path(folder) / f"frame_{frame:05d}.png"
