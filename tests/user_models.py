"""A user's own code, as lossart meets it: `--model user_models:tiny_net`, `--data user_models:...`.

Nothing here imports lossart: it stands for a training script's model and data (tests/ is on
sys.path under pytest, so the names import as `user_models:NAME`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TinyNet(nn.Module):
    """conv-BN-ReLU, global average pool, linear: small enough to train in a second."""

    def __init__(self, num_classes: int, channels: int, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.head(h.mean((2, 3)))


def tiny_net(num_classes: int, input_shape: tuple[int, ...], width: int = 4) -> TinyNet:
    """The factory lossart calls (`num_classes=`, `input_shape=`, then --model-arg values)."""
    return TinyNet(num_classes, input_shape[0], width)


def _images(n: int, seed: int, side: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 120, (n, side, side, 3)).astype(np.uint8)
    x[np.arange(n), :, :, y] += 120  # the class is the brightest channel
    return x, y


def arrays() -> dict:
    """uint8 NHWC images with int labels, as a dict (lossart transposes to NCHW)."""
    xtr, ytr = _images(60, 1)
    xte, yte = _images(30, 2)
    return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte, "classes": "rgb"}


def arrays_normalized() -> dict:
    return {**arrays(), "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


class _Pairs(torch.utils.data.Dataset):
    """What torchvision's ToTensor() gives: float CHW in [0, 1], int labels."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.x[i].transpose(2, 0, 1).astype(np.float32) / 255.0), int(
            self.y[i]
        )


def datasets() -> tuple:
    xtr, ytr = _images(60, 1)
    xte, yte = _images(30, 2)
    return _Pairs(xtr, ytr), _Pairs(xte, yte)


def features() -> tuple:
    """Float features with float targets: a regression task, as a 4-tuple of tensors."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g)
    y = x.sum(1, keepdim=True)
    return x[:40], y[:40], x[40:], y[40:]


def cifar_like() -> dict:
    """Random 3x32x32 images of 10 classes: enough to import a torchvision model on."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (30, 3, 32, 32)).astype(np.uint8)
    y = np.arange(30) % 10
    return {"x_train": x[:20], "y_train": y[:20], "x_test": x[20:], "y_test": y[20:]}


def not_data() -> str:
    return "nothing"


def broken() -> dict:
    raise RuntimeError("disk on fire")


# ---------------------------------------------------------------- a user's mistakes (bad input)


def three_outputs(num_classes: int, input_shape: tuple[int, ...]) -> TinyNet:
    """A model built for 3 classes whatever the data has."""
    return TinyNet(3, input_shape[0])


def raises_key_error(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return {"resnet": nn.Linear(2, 2)}["vgg"]


def no_parameters(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Identity())


def wrong_channels(num_classes: int, input_shape: tuple[int, ...]) -> TinyNet:
    return TinyNet(num_classes, input_shape[0] + 2)


def zero_pixel_images() -> dict:
    x = np.zeros((10, 3, 0, 0), np.uint8)
    y = np.arange(10) % 2
    return {"x_train": x, "y_train": y, "x_test": x[:4], "y_test": y[:4]}


def unseen_test_labels() -> dict:
    xtr, _ = _images(60, 1)
    xte, _ = _images(30, 2)
    return {"x_train": xtr, "y_train": np.arange(60) % 3, "x_test": xte,
            "y_test": 3 + np.arange(30) % 3, "num_classes": 6}


def nan_targets() -> tuple:
    x, y, xt, yt = features()
    y = y.clone()
    y[3] = float("nan")
    return x, y, xt, yt
