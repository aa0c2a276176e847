"""torchvision's classification builders as models: `--model torchvision:resnet18`.

`create_model` sends names starting with `torchvision:` here; the ModelSpec keeps the full name,
so a checkpoint rebuilds the same architecture. The builder is called as
`torchvision.models.get_model(name, weights=None, num_classes=K, **kwargs)`: random
initialization, never a download (bring trained weights as a state_dict: `lossart import`).
Only the classification builders (`torchvision.models.list_models(module=torchvision.models)`)
are offered, since lossart evaluates logits [N, K]. Most expect 3-channel images; ImageNet
models run on small images too (resnet18 on 32x32: adaptive pooling), some (ViT, Inception) insist
on their own input size, which a forward pass then reports.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from lossart.errors import LossartError

PREFIX = "torchvision:"


def is_torchvision_model(name: str) -> bool:
    return name.startswith(PREFIX)


def torchvision_names() -> list[str]:
    """The classification builders torchvision offers (`torchvision:` + each of these)."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def torchvision_factory(name: str):
    """A registry-style constructor `fn(num_classes, input_shape, **kwargs)` for `name`."""
    builder = name[len(PREFIX) :]
    known = torchvision_names()
    if builder not in known:
        close = difflib.get_close_matches(builder, known, n=3)
        hint = f"did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
        raise LossartError(
            f"--model {name!r}: torchvision has no classification model {builder!r}; "
            f"{hint or 'see torchvision.models.list_models()'}"
        )

    def build(num_classes: int, input_shape: tuple[int, ...], **kwargs: Any) -> nn.Module:
        import torchvision

        if len(input_shape) != 3:
            raise LossartError(
                f"--model {name!r}: torchvision models take images (C, H, W), "
                f"the data has inputs of shape {tuple(input_shape)}"
            )
        model = torchvision.models.get_model(
            builder, weights=None, num_classes=max(int(num_classes), 1), **kwargs
        )
        _check_channels(name, model, int(input_shape[0]))
        return model

    return build


def _check_channels(name: str, model: nn.Module, channels: int) -> None:
    """One line instead of a convolution error deep inside the first forward pass."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and first.in_channels != channels:
        raise LossartError(
            f"--model {name!r}: expects {first.in_channels}-channel images, "
            f"the data has {channels} channels"
        )
