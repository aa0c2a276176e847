"""What a dataset is (`DataSpec`, parsed from `--data`) and what loading gives (`Dataset`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lossart.errors import LossartError

BUILTIN = ("shapes", "blobs2d", "wave1d")
TORCHVISION = ("cifar10", "cifar100", "mnist", "fashion-mnist", "svhn")
PREFIXES = ("npz:", "folder:")
ALIASES = {
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
}


def known_datasets() -> str:
    return ", ".join([*BUILTIN, *TORCHVISION, "npz:PATH", "folder:PATH", "package.module:factory"])


@dataclass(frozen=True)
class DataSpec:
    """Everything needed to load the same data again (checkpoints and runs store it).

    `name` is a built-in or torchvision name, `npz:PATH` / `folder:PATH` (PATH made absolute), or
    a user's `package.module:factory` (`lossart.data.user_factory`).
    `root` is where torchvision sets live; `size` is the image side for `folder:` sets.
    """

    name: str
    root: str = "data"
    download: bool = False
    size: int | None = None

    @property
    def kind(self) -> str:
        """ "builtin", "torchvision", "npz", "folder" or "factory" (`package.module:factory`)."""
        if self.name.startswith("npz:"):
            return "npz"
        if self.name.startswith("folder:"):
            return "folder"
        if ":" in self.name:
            return "factory"
        return "builtin" if self.name in BUILTIN else "torchvision"

    @property
    def path(self) -> Path:
        """The file or folder of an `npz:`/`folder:` spec."""
        return Path(self.name.split(":", 1)[1])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "root": self.root, "download": self.download, "size": self.size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        return cls(d["name"], d.get("root", "data"), bool(d.get("download", False)), d.get("size"))


def parse_data_spec(
    text: str, root: str = "data", download: bool = False, size: int | None = None
) -> DataSpec:
    """`--data` text to a spec: checks the name, makes `npz:`/`folder:` paths absolute."""
    name = text.strip()
    lowered = ALIASES.get(name.lower(), name.lower())
    for prefix in PREFIXES:
        if lowered.startswith(prefix):
            path = name[len(prefix) :]
            if not path:
                raise LossartError(f"--data {text!r}: expected {prefix}PATH")
            return DataSpec(prefix + str(Path(path).expanduser().resolve()), root, download, size)
    if lowered in BUILTIN or lowered in TORCHVISION:
        return DataSpec(lowered, root, download, size)
    if is_factory_name(name):
        return DataSpec(name, root, download, size)
    raise LossartError(f"--data {text!r}: unknown dataset; known: {known_datasets()}")


FACTORY_PATTERN = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def is_factory_name(name: str) -> bool:
    """`package.module:factory` (not `npz:PATH` or `folder:PATH`, which are checked first)."""
    return FACTORY_PATTERN.fullmatch(name) is not None


@dataclass
class Dataset:
    """A whole dataset in memory: images as uint8 NCHW, features as float32 [N, D].

    `mean`/`std` normalize inputs (per channel for images, per feature for vectors);
    `augment` is the training augmentation that suits the data ("crop-flip", "crop" or "none")
    with `pad` pixels of padding for the random crop.
    """

    spec: DataSpec
    task: str
    num_classes: int
    input_shape: tuple[int, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    classes: tuple[str, ...] = ()
    augment: str = "none"
    pad: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        return self.x_train.dtype == torch.uint8 and self.x_train.dim() == 4

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split == "train":
            return self.x_train, self.y_train
        if split == "test":
            return self.x_test, self.y_test
        raise LossartError(f"split {split!r}: expected 'train' or 'test'")


def feature_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and std of float features [N, D] (std floored so constants stay finite)."""
    mean = x.double().mean(0)
    std = x.double().std(0).clamp_min(1e-8) if x.shape[0] > 1 else torch.ones_like(mean)
    return tuple(mean.tolist()), tuple(std.tolist())


def image_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 NCHW images on the [0, 1] scale."""
    c = x.shape[1]
    sums = torch.zeros(c, dtype=torch.float64)
    sq = torch.zeros(c, dtype=torch.float64)
    n = 0
    for chunk in x.split(2048):
        f = chunk.double() / 255.0
        sums += f.sum((0, 2, 3))
        sq += (f * f).sum((0, 2, 3))
        n += f.shape[0] * f.shape[2] * f.shape[3]
    mean = sums / n
    std = (sq / n - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())
