"""Loss grids to heightfields: height mapping, tail clipping, smoothing, one range, sampling.

Pure numpy/scipy functions (no torch, no I/O) so the math is testable on synthetic grids and the
same code serves the bundle writer, the previews and the mesh export. Conventions follow
docs/bundle.md: an array `z[i, j]` sits at plane coordinates `x = x0 + j*(x1-x0)/(W-1)`,
`y = y0 + i*(y1-y0)/(H-1)`. Sampling (`sample_bilinear`) and the 16-bit quantization belong to
the bundle format and live in `lossart.format.bundle`; `sample_bilinear` is importable here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from lossart.checks import MAX_UPSAMPLE
from lossart.errors import LossartError
from lossart.format.bundle import DEFAULT_RELIEF, TRANSFORMS
from lossart.format.bundle import sample_bilinear as sample_bilinear  # the format's one sampler
from lossart.options import check_options, option, option_error

#: Gaussian kernels are cut at this many sigmas (scipy's default), in space and across frames.
TRUNCATE = 4.0
#: Above this many finite losses, the cap quantile is taken over an even subsample of each frame.
QUANTILE_SAMPLE_LIMIT = 20_000_000


@dataclass(frozen=True)
class TerrainConfig:
    """How loss grids become heights; every field is recorded in the bundle manifest.

    - `transform`: how a clipped loss L becomes a height (the bundle's `height.transform`):
      "log10-excess" (default), z = log10(L - loss_min + offset), or "log10", z = log10(L).
      `loss_min` is the run's lowest loss (all frames) and `offset` = `excess_offset` x
      (loss_cap - loss_min). Why the excess: a trained network's loss near its optima and along
      a good curve is a few hundredths of a decade above its minimum (resnet20-noskip on
      CIFAR-10: log10 loss from -0.05 to 0.75 over the whole window), so log10 loss draws
      basins and the valley as a nearly flat floor. log10(L / loss_min) would only shift that
      floor. The log of the loss *above the minimum* stretches exactly that floor: the optima
      become wells, the curve's valley a trough, and the high plateau is compressed as log10
      compresses it. The offset keeps the minimum finite and bounds the wells' depth (about
      -log10(excess_offset) decades below the plateau), so one low grid point never becomes a
      needle. Monotone in the loss; the lowest loss maps to the lowest height.
    - `excess_offset`: the offset as a share of the loss span (log10-excess only).
    - `relief`: how high the heights are drawn, as a share of the window's width (x extent):
      the renderer's vertical exaggeration comes from the data (recorded as `height.relief`).
    - `loss_floor`: losses below it are raised to it before the log (log10(0) is -inf).
    - `loss_cap` / `cap_quantile`: the high tail is clipped at `loss_cap`, or, where that is None,
      at this quantile of all finite losses over all frames (one cap for the whole video).
      Non-finite losses (diverged points) are filled with the cap: they are high-loss points.
    - `sigma`: Gaussian smoothing in grid cells (0: none); `frame_sigma`: in frames (0: none).
    - `upsample`: integer factor; (n-1)*upsample+1 samples per axis by cubic interpolation,
      so the original samples keep their places. Interpolation, never new data.
    - `path_samples`: points in each frame's dense path polyline.
    """

    transform: str = option(
        "log10-excess", choices=TRANSFORMS,
        help="loss -> height: log10-excess = log10(loss - lowest loss + offset), optima as wells; "
        "log10 = log10(loss) (default log10-excess)",
    )  # fmt: skip
    excess_offset: float = option(
        0.02, lo=0.0, hi=1.0, lo_open=True, metavar="SHARE",
        help="log10-excess: the offset as a share of the loss span; smaller = deeper wells "
        "(default 0.02)",
    )  # fmt: skip
    relief: float = option(
        DEFAULT_RELIEF, lo=0.0, hi=4.0, lo_open=True, metavar="SHARE",
        help="drawn height of the relief as a share of the window's width "
        f"(default {DEFAULT_RELIEF}; lossart render --height-scale multiplies it)",
    )  # fmt: skip
    loss_floor: float = option(
        1e-4, flag="--floor", lo=0.0, lo_open=True, help="loss floor before the log (default 1e-4)"
    )
    loss_cap: float | None = option(help="clip losses above this value", lo=0.0, lo_open=True)
    cap_quantile: float | None = option(
        0.99, lo=0.0, hi=1.0, lo_open=True,
        help="clip at this quantile of the finite losses of all frames, in (0, 1] (default 0.99)",
    )  # fmt: skip
    sigma: float = option(1.0, lo=0.0, hi=1000.0, help="Gaussian smoothing in grid cells (default 1)")
    frame_sigma: float = option(
        0.0, lo=0.0, hi=1000.0, help="smoothing across frames (default 0)"
    )
    upsample: int = option(
        1, lo=1, hi=MAX_UPSAMPLE,
        help=f"cubic interpolation to (n-1)*k+1 samples per axis, k <= {MAX_UPSAMPLE}",
    )  # fmt: skip
    path_samples: int = option(
        200, lo=2, hi=100_000, help="points in each frame's path (default 200)"
    )

    def __post_init__(self) -> None:
        """Ranges before any work (lossart.options); the cap must clear the floor, and one of
        the cap and its quantile is needed."""
        check_options(self)
        if self.loss_cap is not None and self.loss_cap <= self.loss_floor:
            raise option_error(self, "loss_cap", f"expected a number above the floor {self.loss_floor}")
        if self.loss_cap is None and self.cap_quantile is None:
            raise LossartError(
                "loss_cap or cap_quantile: one of them is needed to clip the tail"
            )

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- the transform


def quantile_stride(total: int) -> int:
    """Every how-many-th loss value the cap quantile looks at (1 up to QUANTILE_SAMPLE_LIMIT)."""
    return max(1, math.ceil(total / QUANTILE_SAMPLE_LIMIT))


def cap_samples(loss: np.ndarray, stride: int) -> np.ndarray:
    """The finite values among every `stride`-th loss of one frame."""
    flat = np.asarray(loss).reshape(-1)[::stride]
    return flat[np.isfinite(flat)]


def cap_from_samples(samples: list[np.ndarray], config: TerrainConfig) -> float:
    """The loss cap: `config.loss_cap`, else the `cap_quantile` of the finite samples.

    Never at or below the floor (the log range would be empty).
    """
    if config.loss_cap is not None:
        return float(config.loss_cap)
    finite = np.concatenate(samples) if samples else np.empty(0)
    if finite.size == 0:
        raise LossartError("loss grids: no finite loss in any frame; cannot choose a loss cap")
    cap = float(np.quantile(finite.astype(np.float64), config.cap_quantile))
    floor = float(config.loss_floor)
    return cap if cap > floor else float(np.nextafter(np.float32(floor), np.float32(np.inf)))


def resolve_loss_cap(losses: Iterable[np.ndarray], config: TerrainConfig) -> float:
    """The one loss cap for all frames: `config.loss_cap`, else the quantile of finite losses.

    Exact while the frames hold at most QUANTILE_SAMPLE_LIMIT values together; above that, each
    frame contributes an even stride of its values (an approximation of the quantile's rank by
    well under 0.1%, stated in docs/bundle.md).
    """
    if config.loss_cap is not None:
        return float(config.loss_cap)
    frames = [np.asarray(loss) for loss in losses]
    stride = quantile_stride(sum(f.size for f in frames))
    return cap_from_samples([cap_samples(f, stride) for f in frames], config)


def log_heights(loss: np.ndarray, loss_floor: float, loss_cap: float) -> tuple[np.ndarray, int]:
    """log10 of the loss clipped to [floor, cap]; non-finite points are filled with the cap.

    Returns the float32 heights and the number of non-finite points filled (counted per frame,
    recorded in the manifest). Never returns NaN.
    """
    clipped, nonfinite = clipped_loss(loss, loss_floor, loss_cap)
    return np.log10(clipped, dtype=np.float32), nonfinite


def clipped_loss(loss: np.ndarray, loss_floor: float, loss_cap: float) -> tuple[np.ndarray, int]:
    """The loss clipped to [floor, cap] with non-finite points as the cap, and their count."""
    loss = np.asarray(loss, dtype=np.float32)
    bad = ~np.isfinite(loss)
    clipped = np.clip(np.where(bad, np.float32(loss_cap), loss), loss_floor, loss_cap)
    return clipped, int(bad.sum())


def frame_loss_min(loss: np.ndarray) -> float:
    """The lowest finite loss of one frame (inf when it has none)."""
    loss = np.asarray(loss)
    finite = loss[np.isfinite(loss)]
    return float(finite.min()) if finite.size else math.inf


def clip_loss_min(lowest: float, config: TerrainConfig, loss_cap: float) -> float:
    """The run's lowest loss as the heights see it: clipped to [floor, cap]."""
    return float(min(max(lowest, config.loss_floor), loss_cap))


def resolve_loss_min(losses: Iterable[np.ndarray], config: TerrainConfig, loss_cap: float) -> float:
    """The run's lowest loss over all frames (finite values, clipped to [floor, cap]): the
    bottom of the log10-excess mapping, one for the whole video like the cap."""
    lowest = min((frame_loss_min(f) for f in losses), default=math.inf)
    if not math.isfinite(lowest):
        raise LossartError("loss grids: no finite loss in any frame; cannot find the lowest loss")
    return clip_loss_min(lowest, config, loss_cap)


@dataclass(frozen=True)
class HeightMapping:
    """The resolved mapping from loss to height (recorded in the manifest's `height` section).

    `offset` is 0 for log10; for log10-excess, `excess_offset` x (loss_cap - loss_min), or of
    the cap itself when every loss is the same (so the log stays finite)."""

    transform: str
    loss_floor: float
    loss_cap: float
    loss_min: float
    offset: float

    @classmethod
    def resolve(cls, config: TerrainConfig, loss_cap: float, loss_min: float | None) -> HeightMapping:
        if config.transform == "log10":
            lowest = config.loss_floor if loss_min is None else loss_min
            return cls("log10", config.loss_floor, loss_cap, lowest, 0.0)
        if loss_min is None:
            raise ValueError(f"transform {config.transform!r} needs the run's lowest loss")
        span = loss_cap - loss_min
        offset = config.excess_offset * (span if span > 0 else loss_cap)
        return cls(config.transform, config.loss_floor, loss_cap, loss_min, float(offset))

    def heights(self, loss: np.ndarray) -> tuple[np.ndarray, int]:
        """Heights of one loss grid (float32, never NaN) and its count of non-finite points."""
        clipped, nonfinite = clipped_loss(loss, self.loss_floor, self.loss_cap)
        if self.transform == "log10":
            return np.log10(clipped, dtype=np.float32), nonfinite
        excess = clipped.astype(np.float64) - self.loss_min + self.offset
        return np.log10(np.maximum(excess, self.offset)).astype(np.float32), nonfinite



def fill_nonfinite(loss: np.ndarray, loss_cap: float) -> np.ndarray:
    """The loss with non-finite points (diverged) replaced by the cap, as the heights treat them."""
    loss = np.asarray(loss, dtype=np.float32)
    return np.where(np.isfinite(loss), loss, np.float32(loss_cap))


def smooth_space(z: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing with `sigma` in grid cells; edges continue the border value."""
    if sigma <= 0:
        return np.asarray(z, dtype=np.float32)
    return ndimage.gaussian_filter(
        np.asarray(z, dtype=np.float32), sigma=sigma, mode="nearest", truncate=TRUNCATE
    )


def frame_kernel(frame_sigma: float) -> np.ndarray:
    """Normalized Gaussian weights over frame offsets -r..r (r = TRUNCATE*sigma, as scipy)."""
    if frame_sigma <= 0:
        return np.ones(1)
    radius = int(TRUNCATE * frame_sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (offsets / frame_sigma) ** 2)
    return w / w.sum()


def frame_neighbours(index: int, count: int, frame_sigma: float) -> list[tuple[int, float]]:
    """(frame, weight) pairs that make frame `index` smoothed across frames.

    Out-of-range neighbours repeat the first/last frame (scipy's mode="nearest"), so a calm
    video keeps its first and last frames' levels. Lets a writer stream frames through a
    small window instead of holding the whole stack.
    """
    kernel = frame_kernel(frame_sigma)
    radius = (len(kernel) - 1) // 2
    pairs: dict[int, float] = {}
    for k, w in zip(range(index - radius, index + radius + 1), kernel, strict=True):
        j = min(max(k, 0), count - 1)
        pairs[j] = pairs.get(j, 0.0) + float(w)
    return sorted(pairs.items())


def smooth_frames(stack: np.ndarray, frame_sigma: float) -> np.ndarray:
    """Gaussian smoothing of a [F, H, W] stack along the frame axis (mode="nearest")."""
    stack = np.asarray(stack, dtype=np.float32)
    if frame_sigma <= 0 or stack.shape[0] == 1:
        return stack
    out = np.zeros_like(stack)
    for i in range(stack.shape[0]):
        for j, w in frame_neighbours(i, stack.shape[0], frame_sigma):
            out[i] += np.float32(w) * stack[j]
    return out


def upsample(z: np.ndarray, factor: int) -> np.ndarray:
    """Cubic-spline interpolation to (n-1)*factor+1 samples per axis; corners stay put.

    The original samples land on every `factor`-th output sample with their values kept
    (spline interpolation passes through its data), so extent and coordinates are unchanged.
    """
    z = np.asarray(z, dtype=np.float32)
    if factor == 1:
        return z
    h, w = z.shape
    out_shape = ((h - 1) * factor + 1, (w - 1) * factor + 1)
    # scipy sizes the output round(n*zoom) and, with grid_mode=False, maps corner to corner.
    zoom = tuple(o / n for o, n in zip(out_shape, z.shape, strict=True))
    out = ndimage.zoom(z, zoom, order=3, mode="nearest", grid_mode=False, prefilter=True)
    assert out.shape == out_shape, (out.shape, out_shape)
    return out.astype(np.float32, copy=False)


def frame_heights(
    loss: np.ndarray, config: TerrainConfig, loss_cap: float, loss_min: float | None = None
) -> tuple[np.ndarray, int]:
    """One frame's heights before cross-frame smoothing: the height mapping, then spatial
    smoothing. `loss_min` (the run's lowest loss) is needed by the log10-excess mapping."""
    z, nonfinite = HeightMapping.resolve(config, loss_cap, loss_min).heights(loss)
    return smooth_space(z, config.sigma), nonfinite


def stream_heights(
    load_loss: Callable[[int], np.ndarray],
    count: int,
    config: TerrainConfig,
    loss_cap: float,
    loss_min: float | None = None,
) -> Iterator[tuple[int, np.ndarray, int]]:
    """(position, final heights, non-finite count) for positions 0..count-1, in order.

    Each loss grid is loaded once; only the 2r+1 spatially smoothed frames that cross-frame
    smoothing needs are held at a time, so memory does not grow with the number of frames.
    Equal to `heightfields` on the whole stack.
    """
    radius = (len(frame_kernel(config.frame_sigma)) - 1) // 2
    cache: dict[int, tuple[np.ndarray, int]] = {}
    for position in range(count):
        neighbours = frame_neighbours(position, count, config.frame_sigma)
        for j, _ in neighbours:
            if j not in cache:
                cache[j] = frame_heights(load_loss(j), config, loss_cap, loss_min)
        if len(neighbours) == 1:
            z = cache[position][0]
        else:
            z = np.zeros_like(cache[position][0])
            for j, w in neighbours:
                z += np.float32(w) * cache[j][0]
        yield position, upsample(z, config.upsample), cache[position][1]
        for j in [j for j in cache if j < position + 1 - radius]:
            del cache[j]  # no later frame reaches back this far


def heightfields(
    losses: list[np.ndarray], config: TerrainConfig
) -> tuple[list[np.ndarray], list[int], float]:
    """All frames at once (small inputs, tests): heights, non-finite counts, resolved loss cap
    (the run's lowest loss is resolved too: `resolve_loss_min`)."""
    cap = resolve_loss_cap(losses, config)
    lowest = resolve_loss_min(losses, config, cap)
    pairs = [frame_heights(loss, config, cap, lowest) for loss in losses]
    stack = smooth_frames(np.stack([z for z, _ in pairs]), config.frame_sigma)
    heights = [upsample(z, config.upsample) for z in stack]
    return heights, [n for _, n in pairs], cap


# ---------------------------------------------------------------- plane coordinates


def grid_coords(n: int, lo: float, hi: float) -> np.ndarray:
    """The n sample coordinates of one axis: lo + k*(hi-lo)/(n-1)."""
    if n == 1:
        return np.array([lo], dtype=np.float64)
    return lo + np.arange(n, dtype=np.float64) * ((hi - lo) / (n - 1))
