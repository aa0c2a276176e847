"""CIFAR-style ResNet-20/32/56 (He et al. 2016, section 4.2) and their no-skip variants.

Three stages of `n` basic blocks at 16/32/64 channels, depth 6n+2. Shortcuts are option A
(parameter-free: stride-2 subsampling and zero-padded channels), as in the paper's CIFAR
experiments, which gives the published counts (ResNet-20: 0.27M). With `skip=False` a block is
only its residual branch: no identity path at all, which is what makes `resnet20-noskip` a hard,
interesting landscape (Li et al. 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lossart.models.registry import register_model


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the identity (option A) when `skip`, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, skip: bool = True) -> None:
        super().__init__()
        self.skip = skip
        self.stride = stride
        self.pad = cout - cin
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch alone (what a no-skip block outputs before its final ReLU)."""
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.skip:
            out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    """Depth 6n+2: stem conv, three stages of n blocks (16, 32, 64 ch), global pool, linear."""

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        input_shape: tuple[int, ...] = (3, 32, 32),
        skip: bool = True,
        width: int = 16,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise TypeError(f"ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        widths = [width, 2 * width, 4 * width]
        self.conv1 = conv3x3(input_shape[0], widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks: list[nn.Module] = []
        cin = widths[0]
        for stage, cout in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, cout, stride, skip))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, max(num_classes, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _make(depth: int, skip: bool):
    def build(num_classes: int, input_shape: tuple[int, ...], **kwargs) -> CifarResNet:
        kwargs.setdefault("skip", skip)
        return CifarResNet(depth, num_classes, input_shape, **kwargs)

    return build


for _depth in (20, 32, 56):
    register_model(
        f"resnet{_depth}", f"CIFAR ResNet-{_depth} (He et al. 2016, option A shortcuts)"
    )(_make(_depth, True))
    register_model(
        f"resnet{_depth}-noskip", f"ResNet-{_depth} without skip connections (no identity path)"
    )(_make(_depth, False))
