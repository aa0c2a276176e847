"""PreResNet-164 (He et al. 2016, "Identity mappings"): pre-activation bottleneck blocks.

Depth 9n+2 with n=18: three stages of bottlenecks (16/32/64 inner channels, x4 out), projection
(1x1 conv) shortcuts where the shape changes, a final BN-ReLU before pooling. About 1.7M
parameters on CIFAR-10. `skip=False` drops the identity/projection path as for the ResNets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lossart.models.registry import register_model


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, skip: bool = True) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.skip = skip
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.project = (
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            if skip and (stride != 1 or cin != cout)
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        if not self.skip:
            return out
        return out + (self.project(pre) if self.project is not None else x)


class PreResNet(nn.Module):
    def __init__(
        self,
        depth: int = 164,
        num_classes: int = 10,
        input_shape: tuple[int, ...] = (3, 32, 32),
        skip: bool = True,
    ) -> None:
        super().__init__()
        if (depth - 2) % 9:
            raise TypeError(f"PreResNet depth must be 9n+2, got {depth}")
        n = (depth - 2) // 9
        self.conv1 = nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        cin = 16
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(Bottleneck(cin, planes, stride, skip))
                cin = planes * Bottleneck.expansion
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, max(num_classes, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.conv1(x))
        x = F.relu(self.bn(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_model("preresnet164", "PreResNet-164, pre-activation bottlenecks (He et al. 2016)")
def preresnet164(num_classes: int, input_shape: tuple[int, ...], **kwargs) -> PreResNet:
    return PreResNet(164, num_classes, input_shape, **kwargs)
