"""Small models for small data: `smallcnn` (the demo's conv net) and `mlp` (vectors, 1-D/2-D)."""

from __future__ import annotations

import torch
from torch import nn

from lossart.models.registry import flat_input_size, register_model


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU layers (the last two stride 2), global average pool, linear.

    Small enough to learn the built-in `shapes` set in seconds on a CPU; its BatchNorm layers are
    deliberate, so exact-BN evaluation along a curve is exercised even in the demo.
    """

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 16) -> None:
        super().__init__()
        c = input_shape[0]
        w = [width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for cin, cout, stride in ((c, w[0], 1), (w[0], w[1], 2), (w[1], w[2], 2)):
            layers += [
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(w[2], max(num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class MLP(nn.Module):
    """Flatten, `depth` hidden layers of `width` units, linear head (1 output for regression)."""

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        width: int = 64,
        depth: int = 2,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise TypeError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        cin = flat_input_size(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(cin, width), _ACTIVATIONS[activation]()]
            cin = width
        layers.append(nn.Linear(cin, max(num_classes, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model("smallcnn", "3 conv-BN-ReLU layers + linear: the demo's model, trains in seconds")
def smallcnn(num_classes: int, input_shape: tuple[int, ...], **kwargs) -> SmallCNN:
    return SmallCNN(num_classes, input_shape, **kwargs)


@register_model("mlp", "multilayer perceptron (width 64, depth 2); regression when num_classes=0")
def mlp(num_classes: int, input_shape: tuple[int, ...], **kwargs) -> MLP:
    return MLP(num_classes, input_shape, **kwargs)
