"""WideResNet-28-10 (Zagoruyko & Komodakis 2016): pre-activation basic blocks, widths 160/320/640.

Depth 6n+4 with n=4, widen factor 10; 1x1 projection shortcuts where the shape changes. About
36.5M parameters on CIFAR-10. No dropout, for the same reason as in `vgg.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lossart.models.registry import register_model


class WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.project = (
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (self.project(pre) if self.project is not None else x)


class WideResNet(nn.Module):
    def __init__(
        self,
        depth: int = 28,
        widen: int = 10,
        num_classes: int = 10,
        input_shape: tuple[int, ...] = (3, 32, 32),
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise TypeError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        cin = 16
        for stage, cout in enumerate(widths):
            for i in range(n):
                blocks.append(WideBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, max(num_classes, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_model("wrn28-10", "WideResNet-28-10 (Zagoruyko & Komodakis 2016, ~36.5M parameters)")
def wrn28_10(num_classes: int, input_shape: tuple[int, ...], **kwargs) -> WideResNet:
    kwargs.setdefault("depth", 28)
    kwargs.setdefault("widen", 10)
    return WideResNet(num_classes=num_classes, input_shape=input_shape, **kwargs)
