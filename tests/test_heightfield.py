"""Heightfield math on synthetic grids with known structure (pure numpy/scipy, fast)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lossart.errors import LossartError
from lossart.format import bundle as fmt
from lossart.format.bundle import BundleError
from lossart.terrain import heightfield as hf
from lossart.terrain.bundle_write import height_range
from lossart.terrain.curve2d import curve_polyline, plane_points
from lossart.terrain.heightfield import TerrainConfig

X_RANGE = (-4.0, 4.0)
Y_RANGE = (-3.0, 3.0)


def wells(shape=(61, 81), centres=((20, 25, 0.01), (40, 60, 0.05))) -> np.ndarray:
    """A loss of ~2 with Gaussian wells at known grid cells (row, col, loss at the bottom)."""
    h, w = shape
    ii, jj = np.mgrid[0:h, 0:w]
    loss = np.full(shape, 2.0)
    for i, j, bottom in centres:
        loss = np.minimum(
            loss, bottom + (2.0 - bottom) * (1 - np.exp(-((ii - i) ** 2 + (jj - j) ** 2) / 40.0))
        )
    return loss.astype(np.float32)


def local_argmin(z: np.ndarray, i: int, j: int, r: int) -> tuple[int, int]:
    box = z[i - r : i + r + 1, j - r : j + r + 1]
    a, b = np.unravel_index(np.argmin(box), box.shape)
    return i - r + int(a), j - r + int(b)


@pytest.mark.parametrize("transform", ["log10", "log10-excess"])
@pytest.mark.parametrize("sigma", [0.0, 1.0, 3.0])
def test_minima_stay_where_the_loss_minima_are(sigma, transform):
    loss = wells()
    cfg = TerrainConfig(sigma=sigma, loss_cap=1.5, cap_quantile=None, transform=transform)
    (z,), (nonfinite,), cap = hf.heightfields([loss], cfg)
    assert cap == 1.5 and nonfinite == 0
    # global minimum: the deeper well; both wells stay local minima on their own cells
    assert np.unravel_index(np.argmin(z), z.shape) == (20, 25)
    assert local_argmin(z, 20, 25, 8) == (20, 25)
    assert local_argmin(z, 40, 60, 8) == (40, 60)
    # the high tail is clipped flat at the cap's height before smoothing
    lowest, offset = 0.01, 0.02 * (1.5 - 0.01)
    top = np.log10(1.5) if transform == "log10" else np.log10(1.5 - lowest + offset)
    assert np.isclose(z.max(), top, atol=1e-6)


@pytest.mark.parametrize("transform", ["log10", "log10-excess"])
def test_minima_stay_after_upsampling(transform):
    loss = wells()
    cfg = TerrainConfig(sigma=1.0, loss_cap=1.5, cap_quantile=None, upsample=3, transform=transform)
    (z,), _, _ = hf.heightfields([loss], cfg)
    assert z.shape == ((61 - 1) * 3 + 1, (81 - 1) * 3 + 1)
    assert local_argmin(z, 60, 75, 12) == (60, 75)
    assert local_argmin(z, 120, 180, 12) == (120, 180)


def test_log_heights_floor_cap_and_nonfinite():
    loss = np.array([[0.0, 1e-6, 0.5], [np.nan, np.inf, -np.inf], [100.0, 1.0, 2.0]], np.float32)
    z, count = hf.log_heights(loss, loss_floor=1e-4, loss_cap=10.0)
    assert count == 3
    assert np.isfinite(z).all() and z.dtype == np.float32
    np.testing.assert_allclose(z[0], np.log10([1e-4, 1e-4, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(z[1], [1.0, 1.0, 1.0])  # diverged points are high: the cap
    np.testing.assert_allclose(z[2], np.log10([10.0, 1.0, 2.0]), rtol=1e-6)


def test_cap_quantile_exact_and_strided(monkeypatch):
    rng = np.random.default_rng(0)
    frames = [rng.exponential(size=(50, 40)).astype(np.float32) for _ in range(6)]
    frames[2][0, :5] = np.nan
    cfg = TerrainConfig(cap_quantile=0.9)
    finite = np.concatenate([f[np.isfinite(f)] for f in frames])
    assert hf.resolve_loss_cap(frames, cfg) == pytest.approx(
        np.quantile(finite.astype(np.float64), 0.9)
    )
    monkeypatch.setattr(hf, "QUANTILE_SAMPLE_LIMIT", 3000)  # stride 4 over 12000 values
    approx = hf.resolve_loss_cap(frames, cfg)
    rank = (finite <= approx).mean()
    assert abs(rank - 0.9) < 0.02
    assert hf.resolve_loss_cap(frames, TerrainConfig(loss_cap=3.0, cap_quantile=None)) == 3.0


def test_cap_needs_a_finite_loss():
    with pytest.raises(LossartError, match="no finite loss"):
        hf.resolve_loss_cap([np.full((3, 3), np.nan)], TerrainConfig())


def test_cap_never_at_or_below_the_floor():
    cap = hf.resolve_loss_cap([np.full((4, 4), 1e-9, np.float32)], TerrainConfig(loss_floor=1e-4))
    assert cap > 1e-4


def test_frame_smoothing_matches_scipy_and_streams():
    rng = np.random.default_rng(1)
    losses = [np.exp(rng.normal(size=(9, 11))).astype(np.float32) for _ in range(7)]
    cfg = TerrainConfig(sigma=1.0, frame_sigma=1.5, loss_cap=5.0, cap_quantile=None)
    heights, counts, cap = hf.heightfields(losses, cfg)
    lowest = hf.resolve_loss_min(losses, cfg, cap)  # the log10-excess mapping's bottom
    spatial = np.stack([hf.frame_heights(x, cfg, cap, lowest)[0] for x in losses])
    expect = ndimage.gaussian_filter1d(spatial, 1.5, axis=0, mode="nearest", truncate=hf.TRUNCATE)
    np.testing.assert_allclose(np.stack(heights), expect, atol=1e-5)
    loads = []

    def load(i):
        loads.append(i)
        return losses[i]

    streamed = list(hf.stream_heights(load, len(losses), cfg, cap, lowest))
    assert [p for p, _, _ in streamed] == list(range(7))
    assert sorted(loads) == list(range(7))  # each grid loaded once
    np.testing.assert_allclose(np.stack([z for _, z, _ in streamed]), np.stack(heights), atol=1e-6)


def test_upsample_keeps_source_samples():
    z = np.random.default_rng(2).normal(size=(6, 8)).astype(np.float32)
    up = hf.upsample(z, 4)
    assert up.shape == (21, 29)
    np.testing.assert_allclose(up[::4, ::4], z, atol=1e-5)
    assert hf.upsample(z, 1) is not None and hf.upsample(z, 1).shape == z.shape


def test_bilinear_reproduces_planes_and_nodes():
    h, w = 13, 17
    xs, ys = hf.grid_coords(w, *X_RANGE), hf.grid_coords(h, *Y_RANGE)
    gx, gy = np.meshgrid(xs, ys)
    field = 0.7 * gx - 1.3 * gy + 0.25
    rng = np.random.default_rng(3)
    pts = np.column_stack([rng.uniform(*X_RANGE, 50), rng.uniform(*Y_RANGE, 50)])
    np.testing.assert_allclose(
        hf.sample_bilinear(field, X_RANGE, Y_RANGE, pts), 0.7 * pts[:, 0] - 1.3 * pts[:, 1] + 0.25
    )
    nodes = np.column_stack([gx.ravel(), gy.ravel()])
    np.testing.assert_allclose(
        hf.sample_bilinear(field, X_RANGE, Y_RANGE, nodes), field.ravel(), atol=1e-12
    )
    # outside the window: the edge value
    assert hf.sample_bilinear(field, X_RANGE, Y_RANGE, np.array([[100.0, 0.0]]))[
        0
    ] == pytest.approx(
        hf.sample_bilinear(field, X_RANGE, Y_RANGE, np.array([[X_RANGE[1], 0.0]]))[0]
    )


def test_quantize_round_trip_within_half_a_step():
    z = np.random.default_rng(4).uniform(-2.5, 0.8, size=(40, 30)).astype(np.float32)
    z_min, z_max = float(z.min()), float(z.max())
    p = fmt.quantize16(z, z_min, z_max)
    assert p.dtype == np.uint16 and p.min() == 0 and p.max() == 65535
    err = np.abs(fmt.dequantize16(p, z_min, z_max) - z).max()
    assert err <= (z_max - z_min) / 131070 * (1 + 1e-3)


def test_flat_terrain_gets_a_range():
    lo, hi = height_range(0.5, 0.5)
    assert lo < 0.5 < hi


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        (dict(loss_floor=0.0), "^loss_floor 0.0: expected a number > 0$"),
        (dict(loss_cap=1e-5), "^loss_cap 1e-05: expected a number above the floor"),
        (dict(cap_quantile=1.5), "^cap_quantile 1.5: "),
        (dict(loss_cap=None, cap_quantile=None), "^loss_cap or cap_quantile"),
        (dict(sigma=-1.0), "^sigma -1.0: "),
        (dict(frame_sigma=float("nan")), "^frame_sigma nan: "),
        (dict(upsample=0), "^upsample 0: "),
        (dict(path_samples=1), "^path_samples 1: "),
        (dict(transform="sqrt"), "^transform 'sqrt': expected one of"),
        (dict(excess_offset=0.0), "^excess_offset 0.0: "),
        (dict(relief=-0.1), "^relief -0.1: "),
    ],
)
def test_config_rejects_bad_values(kwargs, flag):
    """The library names the field (the CLI maps it to its flag: --floor for loss_floor)."""
    with pytest.raises(LossartError, match=flag):
        TerrainConfig(**kwargs)


def test_bezier_and_polychain_paths():
    cp = np.array([[0.0, 0.0], [5.0, 4.0], [10.0, 0.0]])
    path = curve_polyline(cp, "bezier", 101)
    t = np.linspace(0, 1, 101)[:, None]
    np.testing.assert_allclose(
        path, (1 - t) ** 2 * cp[0] + 2 * t * (1 - t) * cp[1] + t**2 * cp[2], atol=1e-12
    )
    chain = plane_points(cp, "polychain", np.array([0.0, 0.25, 0.5, 1.0]))
    np.testing.assert_allclose(chain, [[0, 0], [2.5, 2.0], [5, 4], [10, 0]], atol=1e-12)
    cp4 = np.array([[0.0, 0.0], [3.0, 3.0], [7.0, 3.0], [10.0, 0.0]])
    np.testing.assert_allclose(
        plane_points(cp4, "polychain", np.array([1 / 3, 2 / 3])), cp4[1:3], atol=1e-12
    )
    cubic = curve_polyline(cp4, "bezier", 5)
    np.testing.assert_allclose(cubic[[0, -1]], cp4[[0, -1]])
    with pytest.raises(BundleError, match="curve kind"):
        curve_polyline(cp, "spline", 5)


# ---------------------------------------------------------------- the height mapping
@pytest.mark.parametrize("transform", ["log10-excess", "log10"])
def test_mapping_is_monotone_and_the_lowest_loss_is_the_lowest_height(transform):
    rng = np.random.default_rng(3)
    loss = np.sort(np.exp(rng.normal(0.0, 0.4, size=2000))).astype(np.float32)
    loss[[5, 50]] = [np.nan, np.inf]  # diverged: as high as the cap
    cfg = TerrainConfig(transform=transform, loss_cap=3.0, cap_quantile=None)
    lowest = hf.resolve_loss_min([loss], cfg, 3.0)
    assert lowest == pytest.approx(float(np.nanmin(loss)))
    mapping = hf.HeightMapping.resolve(cfg, 3.0, lowest)
    z, nonfinite = mapping.heights(loss)
    assert nonfinite == 2 and np.isfinite(z).all()
    finite = np.isfinite(loss)
    order = np.argsort(loss[finite], kind="stable")
    assert (np.diff(z[finite][order]) >= 0).all()  # monotone in the loss
    assert z.argmin() == int(np.nanargmin(loss)) and z[5] == z[50] == z.max()
    if transform == "log10-excess":
        assert mapping.offset == pytest.approx(0.02 * (3.0 - lowest))
        assert z.min() == pytest.approx(np.log10(mapping.offset), abs=1e-6)


def test_excess_wells_are_deeper_than_log10_wells():
    """resnet20-noskip's range (log10 loss about -0.05..0.75): under log10 its minima sit in
    the bottom few per cent of the height range; log10-excess opens them into wells."""
    loss = wells(centres=((20, 25, 0.9), (40, 60, 0.95)))
    loss = 0.9 + (loss - 0.9) * (5.6 - 0.9) / (2.0 - 0.9)
    depth = {}
    for transform in ("log10", "log10-excess"):
        cfg = TerrainConfig(transform=transform, sigma=0.0, loss_cap=5.6, cap_quantile=None)
        (z,), _, _ = hf.heightfields([loss], cfg)
        z01 = (z - z.min()) / (z.max() - z.min())
        depth[transform] = float(z01[40, 60] - z01[20, 25]), float(np.median(z01))
    # the shallower well stands clearly above the deeper one, and the plateau far above both
    assert depth["log10-excess"][0] > 2 * depth["log10"][0]
    assert depth["log10-excess"][1] > 0.75


def test_the_bundle_reads_back_the_loss_of_a_height(tmp_path):
    from lossart.terrain.synthetic import synthetic_bundle

    for transform in ("log10-excess", "log10"):
        cfg = TerrainConfig(transform=transform, sigma=0.0, path_samples=16)
        b = fmt.load_bundle(synthetic_bundle(tmp_path / transform, frames=1, size=17, config=cfg))
        h = b.manifest.height
        mapping = hf.HeightMapping(
            transform, h.loss_floor, h.loss_cap, h.mapping.loss_min, h.mapping.offset
        )
        loss = np.linspace(h.mapping.loss_min, h.loss_cap, 9, dtype=np.float32)
        np.testing.assert_allclose(b.loss_of(mapping.heights(loss)[0]), loss, rtol=1e-5)
