"""How much of the terrain a highlight bleaches: the share of its pixels near white.

A glossy sun's highlight that washes the palette out reads as fog and hides the relief (issue
22's "white smear"). Measured on a render of the terrain alone (path, markers and their light
hidden, the film transparent so the alpha says which pixels are terrain): a pixel is near white
where every channel is at least `level` of full scale (bright and unsaturated; the palette's
brightest colours are saturated, so they do not count).
"""

from __future__ import annotations

import numpy as np

#: near white: every channel at least this share of full scale
NEAR_WHITE = 0.85


def near_white_share(rgba: np.ndarray, level: float = NEAR_WHITE) -> float:
    """Share of the terrain's pixels (alpha over half) whose every colour channel is at least
    `level` of full scale; 0 where no pixel is terrain. `rgba`: [H, W, 4], uint8 or 0..1."""
    rgba = np.asarray(rgba)
    scale = 255.0 if rgba.dtype == np.uint8 else 1.0
    if rgba.ndim != 3 or rgba.shape[-1] != 4:
        raise ValueError(f"expected an RGBA picture [H, W, 4], got shape {rgba.shape}")
    x = rgba.astype(np.float64) / scale
    terrain = x[..., 3] > 0.5
    if not terrain.any():
        return 0.0
    white = (x[..., :3] >= level).all(axis=-1) & terrain
    return float(white.sum() / terrain.sum())
