"""The Hessian's eigenpairs, trace and density (lossart.curvature) against exact answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from lossart.curvature import (
    HessianConfig,
    HessianOperator,
    hessian_of,
    hutchinson_trace,
    slq_density,
)
from lossart.curvature.lanczos import lanczos  # the package's `lanczos` is the module
from lossart.errors import LossartError
from lossart.evaluation import evaluation_copy, task_loss
from lossart.geometry.trajectory import filter_mask
from lossart.geometry.weights import ParamLayout, flat_params

pytestmark = pytest.mark.usefixtures("one_thread")


def quadratic(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """A symmetric matrix with known eigenvalues (a gap at the top, negatives at the bottom)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.concatenate([[50.0, 20.0, 9.0], rng.uniform(-2.0, 3.0, n - 4), [-6.0]])
    return lam, q, torch.from_numpy((q * lam) @ q.T)


def test_lanczos_finds_the_known_eigenpairs_of_a_quadratic():
    lam, q, a = quadratic()
    res = lanczos(lambda v: a @ v, a.shape[0], k=3, tol=1e-10, smallest=True, steps=40)
    assert res.converged
    np.testing.assert_allclose(res.values[:3], [50.0, 20.0, 9.0], rtol=1e-9)
    assert res.values[-1] == pytest.approx(-6.0, rel=1e-9)
    for i, j in ((0, 0), (1, 1), (2, 2), (len(res.values) - 1, len(lam) - 1)):
        x = res.vector(i).numpy()
        assert abs(abs(x @ q[:, j]) - 1) < 1e-8  # the same eigenvector up to sign
    # the basis stays orthonormal (full reorthogonalization)
    gram = res.basis @ res.basis.T
    assert torch.allclose(gram, torch.eye(len(gram), dtype=gram.dtype), atol=1e-10)


def test_lanczos_respects_the_mask_and_refuses_an_empty_one():
    _, _, a = quadratic(12)
    mask = torch.zeros(12, dtype=torch.bool)
    mask[:5] = True
    block = a[:5, :5].numpy()
    m = mask.double()
    res = lanczos(lambda v: m * (a @ (m * v)), 12, k=2, mask=mask, tol=1e-10, steps=12)
    np.testing.assert_allclose(res.values[:5], np.sort(np.linalg.eigvalsh(block))[::-1], atol=1e-9)
    assert res.steps == 5  # a 5-dimensional space: an invariant subspace after 5 steps
    assert float(res.vector(0)[5:].abs().max()) == 0.0
    with pytest.raises(LossartError, match="mask"):
        lanczos(lambda v: v, 12, mask=torch.zeros(12, dtype=torch.bool))


def test_hutchinson_with_deflation_is_unbiased_and_tighter():
    lam, q, a = quadratic()
    exact = float(lam.sum())
    plain = hutchinson_trace(lambda v: a @ v, a.shape[0], samples=200, seed=1)
    basis = torch.from_numpy(q[:, :3].T.copy())
    deflated = hutchinson_trace(lambda v: a @ v, a.shape[0], samples=200, seed=1, basis=basis)
    assert deflated.deflated == pytest.approx(79.0)
    assert abs(plain.value - exact) < 4 * plain.stderr
    assert abs(deflated.value - exact) < 4 * deflated.stderr
    assert deflated.stderr < plain.stderr / 3


def test_slq_density_integrates_to_one_and_sits_on_the_spectrum():
    lam, _, a = quadratic()
    dens = slq_density(lambda v: a @ v, a.shape[0], probes=3, steps=40)
    for w in dens.weights:
        assert sum(w) == pytest.approx(1.0, abs=1e-9)
    grid = np.linspace(-10, 60, 7001)
    curve = dens.curve(grid, sigma=0.5)
    assert float(np.sum(curve) * (grid[1] - grid[0])) == pytest.approx(1.0, abs=1e-3)
    # with as many steps as dimensions the nodes are the eigenvalues themselves
    np.testing.assert_allclose(sorted(dens.nodes[0]), np.sort(lam), atol=1e-8)


# ---------------------------------------------------------------- a tiny network, exactly


def tiny_mlp(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An MLP with a BatchNorm layer (exact BN differentiated through) and a few examples."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 4))
    x = torch.randn(64, 5, generator=g)
    y = torch.randint(0, 4, (64,), generator=g)
    return model, x, y


def dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor):
    """torch.autograd.functional.hessian of the same exact-BN loss, in float64, masked."""
    copy = evaluation_copy(model).double()
    layout = ParamLayout.of(model)
    w = flat_params(model).double()

    def loss(flat):
        return task_loss(functional_call(copy, layout.unflatten(flat), (x.double(),)), y, "classification")

    h = torch.autograd.functional.hessian(loss, w)
    return h[mask][:, mask].numpy()


@pytest.mark.parametrize("ignore", ["biasbn", None])
def test_tiny_mlp_top_eigenvalues_and_trace_match_the_dense_hessian(ignore):
    model, x, y = tiny_mlp()
    layout = ParamLayout.of(model)
    mask = filter_mask(layout, ignore)
    h = dense_hessian(model, x, y, mask)
    assert np.allclose(h, h.T, atol=1e-10)
    exact = np.sort(np.linalg.eigvalsh(h))[::-1]
    cfg = HessianConfig(k=3, smallest=True, trace_samples=100, tol=1e-6, steps=int(mask.sum()),
                        ignore=ignore)  # fmt: skip
    res = hessian_of(model, flat_params(model), x, y, "classification", cfg, show_progress=False)
    np.testing.assert_allclose(res.eigenvalues, exact[:3], rtol=1e-4)
    assert res.smallest == pytest.approx(exact[-1], rel=1e-3, abs=1e-5)
    # deflated by the Lanczos basis; the probes estimate what it does not span
    assert res.lanczos_steps < res.dim
    assert res.trace == pytest.approx(float(np.trace(h)), rel=0.05)
    op = HessianOperator(model, flat_params(model), x, y, mask=mask)
    plain = hutchinson_trace(op.hvp, op.n, samples=1000, mask=mask, seed=3)
    assert plain.value == pytest.approx(float(np.trace(h)), rel=0.05)
    assert res.dim == int(mask.sum()) and res.params == layout.numel
    # the eigenvectors: unit, zero off the mask, H x = λ x
    vecs = res.vectors.double()
    for i in range(3):
        x_i = vecs[i][mask].numpy()
        assert np.linalg.norm(x_i) == pytest.approx(1.0, abs=1e-6)
        assert np.linalg.norm(h @ x_i - exact[i] * x_i) < 1e-3 * exact[0]
        assert not bool(vecs[i][~mask].any())


def test_float32_operator_agrees_with_float64():
    model, x, y = tiny_mlp(1)
    lay = ParamLayout.of(model)
    w = flat_params(model)
    v = torch.randn(lay.numel, dtype=torch.float64)
    h32 = HessianOperator(model, w, x, y, dtype="float32").hvp(v)
    h64 = HessianOperator(model, w, x, y, dtype="float64").hvp(v)
    assert torch.allclose(h32, h64, rtol=1e-4, atol=1e-5 * float(h64.abs().max()))


def test_per_layer_blocks_and_density_run_on_a_tiny_mlp():
    model, x, y = tiny_mlp(2)
    mask = filter_mask(ParamLayout.of(model), "biasbn")
    h = dense_hessian(model, x, y, mask)
    cfg = HessianConfig(k=1, trace_samples=0, per_layer=True, layer_steps=40, tol=1e-6,
                        density=True, density_probes=1, density_steps=10)  # fmt: skip
    res = hessian_of(model, flat_params(model), x, y, "classification", cfg, show_progress=False)
    assert [layer.name for layer in res.per_layer] == ["0.weight", "3.weight"]
    first = h[:40, :40]  # 0.weight: the first 40 moved coordinates
    assert res.per_layer[0].eigenvalue == pytest.approx(np.linalg.eigvalsh(first)[-1], rel=1e-4)
    assert res.trace is None
    assert res.density is not None and len(res.density.nodes[0]) == 10
    assert "λ1" in res.table() and "0.weight" in res.table()


def test_bad_settings_are_one_line_errors():
    """Refused at construction, naming the field (the CLI maps it to --k, --tol, ...)."""
    for kwargs, field in ((dict(k=0), "^k 0: "), (dict(tol=2.0), "^tol 2.0: "),
                          (dict(trace_samples=1), "^trace_samples 1: expected 0 .no trace."),
                          (dict(dtype="half"), "^dtype 'half': expected one of float32, float64")):  # fmt: skip
        with pytest.raises(LossartError, match=field):
            HessianConfig(**kwargs)
