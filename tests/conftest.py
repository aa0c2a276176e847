"""Shared test fixtures: quiet progress bars, seeded torch, the shared CIFAR-10 subset (or a skip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("LOSSART_QUIET", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10-subset.npz"


@pytest.fixture(autouse=True)
def _seeded_torch():
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread, and far faster so on a shared, busy CPU.

    Modules that train or evaluate tiny models use it (`pytestmark = usefixtures("one_thread")`)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def cifar_subset_path() -> Path:
    """The shared real CIFAR-10 subset; skipped where ../shared is absent (a user's clone)."""
    if not SHARED_CIFAR.is_file():
        pytest.skip(f"shared CIFAR-10 subset not found at {SHARED_CIFAR} (only CI and dev machines have ../shared)")
    return SHARED_CIFAR
