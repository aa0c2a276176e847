"""The model zoo: `create_model(ModelSpec)`, `list_models()`, and the registry behind them.

Built-in names: CIFAR-style ResNet-20/32/56 (each with a `-noskip` variant), PreResNet-164,
VGG-16 with and without BN, WideResNet-28-10, `smallcnn` (the demo's model) and `mlp`. Any
`"package.module:factory"` works too. All are plain `nn.Module`s usable under
`torch.func.functional_call` and in channels_last.
"""

# The zoo modules register their constructors on import; the registry imports none of them.
from lossart.models import preresnet, resnet, small, vgg, wrn  # noqa: F401
from lossart.models.registry import (
    ModelInfo,
    ModelSpec,
    count_params,
    create_model,
    list_models,
    model_names,
    register_model,
)

__all__ = [
    "ModelInfo",
    "ModelSpec",
    "count_params",
    "create_model",
    "list_models",
    "model_names",
    "register_model",
]
