"""torchvision datasets (CIFAR-10/100, MNIST, Fashion-MNIST, SVHN) held in memory as uint8 NCHW.

Files are fetched only with `download=True` (`--download`); otherwise a missing set is a one-line
error naming the folder and the flag, and nothing touches the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lossart.data.spec import Dataset, DataSpec
from lossart.errors import LossartError

# per-channel mean/std on the [0, 1] scale, from each training set
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}
# digits must not be mirrored; natural images may
AUGMENT = {
    "cifar10": "crop-flip",
    "cifar100": "crop-flip",
    "mnist": "crop",
    "fashion-mnist": "crop-flip",
    "svhn": "crop",
}


def _split(name: str, root: str, train: bool, download: bool):
    from torchvision import datasets

    if name == "svhn":
        return datasets.SVHN(root, split="train" if train else "test", download=download)
    cls = {
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
        "mnist": datasets.MNIST,
        "fashion-mnist": datasets.FashionMNIST,
    }[name]
    return cls(root, train=train, download=download)


def _arrays(name: str, ds) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "svhn":  # already N, 3, H, W
        return torch.from_numpy(np.ascontiguousarray(ds.data)), torch.as_tensor(
            ds.labels, dtype=torch.int64
        )
    data = torch.as_tensor(np.asarray(ds.data))
    data = data[:, None] if data.dim() == 3 else data.permute(0, 3, 1, 2)
    return data.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)


def load_vision(spec: DataSpec) -> Dataset:
    root = Path(spec.root)
    try:
        train = _split(spec.name, str(root), True, spec.download)
        test = _split(spec.name, str(root), False, spec.download)
    except RuntimeError as exc:
        if spec.download:
            raise LossartError(f"{spec.name}: download into {root}/ failed ({exc})") from None
        raise LossartError(
            f"{spec.name} not found in {root}/: pass --download to fetch it there "
            "(or --data-root DIR where it is)"
        ) from None
    x_train, y_train = _arrays(spec.name, train)
    x_test, y_test = _arrays(spec.name, test)
    classes = tuple(str(c) for c in getattr(train, "classes", range(int(y_train.max()) + 1)))
    mean, std = STATS[spec.name]
    pad = 4 if x_train.shape[-1] >= 28 else 2
    return Dataset(
        spec, "classification", len(classes), tuple(x_train.shape[1:]),
        x_train, y_train, x_test, y_test, mean, std, classes, AUGMENT[spec.name], pad,
    )  # fmt: skip
