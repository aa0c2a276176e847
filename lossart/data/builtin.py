"""Built-in datasets, generated locally and deterministically (fixed seeds, no download).

- `shapes`: 3x16x16 images of six procedurally drawn shape classes (random position, size,
  rotation, colours, noise): a real little vision task that `smallcnn` learns in seconds.
- `blobs2d`: 2-D points from nine Gaussian blobs on a 3x3 lattice, three classes arranged so that
  no straight line separates them.
- `wave1d`: the 1-D regression problem for function diversity along a curve: noisy samples of a
  smooth function on two separated intervals, so that models agree on the data and differ in
  the gap between them (Izmailov et al. 2019 use the same kind of set).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from lossart.data.spec import Dataset, DataSpec, feature_stats, image_stats

SHAPE_CLASSES = ("disk", "ring", "square", "triangle", "cross", "stripes")
SHAPES_SIZE = 16
SHAPES_TRAIN, SHAPES_TEST = 5000, 1000


def _shape_masks(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """Boolean masks [N, size, size], one shape per image, drawn from its class's geometry."""
    n = len(labels)
    r = rng.uniform(0.22, 0.40, n) * size  # outer radius in pixels
    cx = rng.uniform(r, size - 1 - r)
    cy = rng.uniform(r, size - 1 - r)
    theta = rng.uniform(0, 2 * np.pi, n)
    grid = np.arange(size, dtype=np.float64) + 0.0
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u = dx * c + dy * s
    v = -dx * s + dy * c
    rr = r[:, None, None]
    d = np.hypot(dx, dy)
    masks = {
        "disk": d <= rr,
        "ring": (d <= rr) & (d >= 0.55 * rr),
        "square": np.maximum(np.abs(u), np.abs(v)) <= 0.8 * rr,
        "triangle": np.ones_like(d, dtype=bool),
        "cross": ((np.abs(u) <= 0.3 * rr) | (np.abs(v) <= 0.3 * rr))
        & (np.maximum(np.abs(u), np.abs(v)) <= rr),
        "stripes": (np.cos(np.pi * u / (0.4 * rr)) > 0)
        & (np.maximum(np.abs(u), np.abs(v)) <= 0.9 * rr),
    }
    for k in range(3):
        a = theta[:, None, None] + 2 * np.pi * k / 3
        masks["triangle"] &= dx * np.cos(a) + dy * np.sin(a) <= 0.5 * rr
    out = np.zeros((n, size, size), dtype=bool)
    for i, name in enumerate(SHAPE_CLASSES):
        sel = labels == i
        out[sel] = masks[name][sel]
    return out


@lru_cache(maxsize=8)
def make_shapes(n: int, seed: int, size: int = SHAPES_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """`n` shape images (uint8 NCHW) and labels, fully determined by `seed` (cached: copy before
    changing them; the loaders below do)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPE_CLASSES), n)
    masks = _shape_masks(rng, labels, size)
    fg = rng.uniform(0.45, 1.0, (n, 3))
    bg = rng.uniform(0.0, 0.35, (n, 3))
    # a soft background gradient and pixel noise, so colour and flat regions are not shortcuts
    ramp = np.linspace(-1, 1, size)
    gx, gy = rng.uniform(-0.12, 0.12, (2, n))
    grad = gx[:, None, None] * ramp[None, None, :] + gy[:, None, None] * ramp[None, :, None]
    img = np.where(masks[:, None], fg[:, :, None, None], bg[:, :, None, None]) + grad[:, None]
    img = img + rng.normal(0, 0.08, img.shape)
    images = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def shapes(spec: DataSpec) -> Dataset:
    xtr, ytr = make_shapes(SHAPES_TRAIN, seed=1)
    xte, yte = make_shapes(SHAPES_TEST, seed=2)
    x_train = torch.tensor(xtr)
    mean, std = image_stats(x_train)
    return Dataset(
        spec, "classification", len(SHAPE_CLASSES), (3, SHAPES_SIZE, SHAPES_SIZE),
        x_train, torch.tensor(ytr), torch.tensor(xte), torch.tensor(yte),
        mean, std, SHAPE_CLASSES, augment="crop-flip", pad=2,
    )  # fmt: skip


def make_blobs2d(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points [n, 2] from nine blobs at {-2, 0, 2}^2; blob (i, j) has class (i + j) mod 3."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, 3, (2, n))
    centres = np.stack([2.0 * i - 2.0, 2.0 * j - 2.0], axis=1)
    x = centres + rng.normal(0, 0.5, (n, 2))
    return x.astype(np.float32), ((i + j) % 3).astype(np.int64)


def blobs2d(spec: DataSpec) -> Dataset:
    xtr, ytr = make_blobs2d(1500, seed=11)
    xte, yte = make_blobs2d(600, seed=12)
    x_train = torch.from_numpy(xtr)
    mean, std = feature_stats(x_train)
    return Dataset(
        spec, "classification", 3, (2,), x_train, torch.from_numpy(ytr),
        torch.from_numpy(xte), torch.from_numpy(yte), mean, std, ("0", "1", "2"),
    )  # fmt: skip


WAVE_INTERVALS = ((-1.0, -0.45), (0.45, 1.0))


def wave_function(x: np.ndarray) -> np.ndarray:
    """The smooth function behind `wave1d`."""
    return np.sin(3.0 * x) + 0.3 * np.cos(9.0 * x)


def make_wave1d(n: int, seed: int, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """`n` noisy samples [n, 1], half on each interval of `WAVE_INTERVALS`."""
    rng = np.random.default_rng(seed)
    parts = [rng.uniform(lo, hi, n // 2 + (k < n % 2)) for k, (lo, hi) in enumerate(WAVE_INTERVALS)]
    x = np.sort(np.concatenate(parts))
    y = wave_function(x) + rng.normal(0, noise, x.shape)
    return x[:, None].astype(np.float32), y.astype(np.float32)


def wave1d(spec: DataSpec) -> Dataset:
    xtr, ytr = make_wave1d(200, seed=21)
    xte, yte = make_wave1d(200, seed=22)
    x_train = torch.from_numpy(xtr)
    mean, std = feature_stats(x_train)
    return Dataset(
        spec, "regression", 0, (1,), x_train, torch.from_numpy(ytr),
        torch.from_numpy(xte), torch.from_numpy(yte), mean, std,
        info={"intervals": [list(iv) for iv in WAVE_INTERVALS],
              "function": "sin(3x) + 0.3 cos(9x)"},
    )  # fmt: skip


BUILDERS = {"shapes": shapes, "blobs2d": blobs2d, "wave1d": wave1d}
