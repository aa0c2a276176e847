"""VGG-16 for CIFAR (Simonyan & Zisserman 2015; CIFAR head as in the mode-connectivity papers).

Thirteen 3x3 convs in five blocks, then a 512-512-classes head: about 15M parameters. The
original CIFAR versions use dropout in the head; it is left out here because exact-BN evaluation
runs the model in training mode, where dropout would make every loss value random. Pooling steps
that would shrink the feature map below 1x1 are skipped, so small inputs work too.
"""

from __future__ import annotations

import torch
from torch import nn

from lossart.models.registry import register_model

VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        batch_norm: bool = False,
        cfg: tuple = VGG16_CFG,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = input_shape[0]
        size = min(input_shape[1:])
        for v in cfg:
            if v == "M":
                if size >= 2:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                continue
            layers.append(nn.Conv2d(cin, v, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU())
            cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(cin, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, max(num_classes, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


@register_model("vgg16", "VGG-16 for CIFAR, no BatchNorm (~15M parameters)")
def vgg16(num_classes: int, input_shape: tuple[int, ...], **kwargs) -> VGG:
    return VGG(num_classes, input_shape, batch_norm=False, **kwargs)


@register_model("vgg16-bn", "VGG-16 for CIFAR with BatchNorm")
def vgg16_bn(num_classes: int, input_shape: tuple[int, ...], **kwargs) -> VGG:
    return VGG(num_classes, input_shape, batch_norm=True, **kwargs)
