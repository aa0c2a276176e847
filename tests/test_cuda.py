"""The grid engine on a CUDA device: vmap blocks against per-point passes, exact-BN chunks,
the CPU's values, and what TF32 and bf16 change. Skipped where there is no CUDA device;
`benchmarks/device_check.sh` runs them (`pytest -m cuda`) on a GPU machine and collects the
recorded differences from the JUnit report.

Tolerance: true fp32 on both sides (the engine switches TF32 off for float32), different
kernels (cuDNN per-sample vs batched, or oneDNN on the CPU): relative 1e-5 on the loss, as the
CPU tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossart.geometry.weights import ParamLayout, flat_params
from lossart.grid.engine import EngineConfig, GridEngine
from lossart.models import ModelSpec, create_model

RTOL = 1e-5
CPU_RTOL = 1e-4  # cuDNN against oneDNN: other convolution algorithms, other summation orders

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA device (benchmarks/device_check.sh runs these on a GPU machine)",
    ),
]


@pytest.fixture(scope="module")
def resnet():
    """resnet20-noskip at random weights in a random plane, on 64 random 32×32 images."""
    torch.manual_seed(0)
    model = create_model(ModelSpec("resnet20-noskip", 10, (3, 32, 32), {}))
    layout = ParamLayout.of(model)
    w1 = flat_params(model)
    g = torch.Generator().manual_seed(1)
    u = torch.randn(layout.numel, generator=g)
    u /= u.norm()
    v = torch.randn(layout.numel, generator=g)
    v -= (v @ u) * u
    v /= v.norm()
    x = torch.randn(64, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    return model, layout, w1, u, v, x, y


def engine(resnet, device="cuda", **cfg) -> GridEngine:
    model, layout, w1, u, v, x, y = resnet
    e = GridEngine(model, layout, x, y, "classification", EngineConfig(device=device, **cfg))
    e.set_plane(w1, u, v)
    return e


def points(n: int = 12, scale: float = 4.0):
    g = np.random.default_rng(5)
    xy = (g.random((n, 2)) * 2 - 1) * scale
    return xy[:, 0], xy[:, 1]


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.float64) - b) / np.abs(b.astype(np.float64))


def test_vmap_blocks_equal_per_point_passes_on_cuda(resnet, record_property):
    xs, ys = points()
    point = engine(resnet, strategy="point").evaluate(xs, ys)
    for b in (1, 5, 12):
        block = engine(resnet, strategy="vmap", batch_points=b).evaluate(xs, ys)
        rel = relative(block.loss, point.loss)
        record_property(f"vmap{b}_vs_point_max_rel", float(rel.max()))
        assert rel.max() < RTOL, (b, rel.max())
        assert np.abs(block.accuracy - point.accuracy).max() <= 1.5 / 64
    assert len(set(point.loss.tolist())) == len(xs)  # per-point BN: every point differs


def test_cuda_equals_cpu(resnet, record_property):
    xs, ys = points(4)
    gpu = engine(resnet).evaluate(xs, ys)
    cpu = engine(resnet, device="cpu").evaluate(xs, ys)
    rel = relative(gpu.loss, cpu.loss)
    record_property("cuda_vs_cpu_max_rel", float(rel.max()))
    assert rel.max() < CPU_RTOL


def test_chunked_exact_bn_on_cuda(resnet, record_property):
    xs, ys = points(4)
    whole = engine(resnet, strategy="point").evaluate(xs, ys)
    e = engine(resnet, strategy="point", chunk=24)
    assert e.chunk == 24
    chunked = e.evaluate(xs, ys)
    rel = relative(chunked.loss, whole.loss)
    record_property("chunked_vs_whole_max_rel", float(rel.max()))
    assert rel.max() < RTOL


def test_tf32_and_bf16_differences(resnet, record_property):
    """Recorded for the device report; bounded so a broken precision switch fails."""
    xs, ys = points(16, scale=1.0)
    fp32 = engine(resnet).evaluate(xs, ys)
    for dtype, bound in (("tf32", 1e-2), ("bfloat16", 3e-2)):
        other = engine(resnet, dtype=dtype).evaluate(xs, ys)
        rel = relative(other.loss, fp32.loss)
        record_property(f"{dtype}_median_rel", float(np.median(rel)))
        record_property(f"{dtype}_max_rel", float(rel.max()))
        record_property(f"{dtype}_max_log10", float(np.abs(np.log10(other.loss / fp32.loss)).max()))
        print(f"{dtype}: loss relative to fp32: median {np.median(rel):.2e}, max {rel.max():.2e}")
        assert rel.max() < bound
    bf16 = engine(resnet, dtype="bfloat16").evaluate(xs, ys)
    assert not np.array_equal(bf16.loss, fp32.loss)  # autocast really ran in bf16


def test_float32_on_cuda_is_true_fp32_whatever_the_global_switches(resnet):
    """cuDNN convolutions default to TF32; `float32` switches it off for its passes (and
    restores the switches), `tf32` switches it on."""
    xs, ys = points(4, scale=1.0)
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        loose = engine(resnet).evaluate(xs, ys)
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        strict = engine(resnet).evaluate(xs, ys)
        tf32 = engine(resnet, dtype="tf32").evaluate(xs, ys)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
    assert relative(loose.loss, strict.loss).max() < RTOL
    assert not np.array_equal(tf32.loss, strict.loss)
