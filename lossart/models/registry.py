"""One registry of model constructors (timm-style): every name takes the same arguments.

A constructor is `fn(num_classes, input_shape, **kwargs) -> nn.Module`. A user's own model enters
through the same door as `"package.module:factory"`, called with `num_classes=` and
`input_shape=`. A `ModelSpec` is everything needed to rebuild a model, so checkpoints store it.

This module holds the table and the decorator only; it imports no model. The zoo modules import
it and register themselves, and `lossart.models` imports them all, so any import of the registry
(which runs the package first) finds the table filled.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from math import prod
from typing import Any

import torch
from torch import nn

from lossart.errors import LossartError
from lossart.models.torchvision_models import torchvision_factory

Constructor = Callable[..., nn.Module]

_REGISTRY: dict[str, tuple[Constructor, str]] = {}

CIFAR10_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class ModelSpec:
    """A model: registry name (or `pkg.mod:factory`), output size, input shape, options."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    def __hash__(self) -> int:  # kwargs is a dict: hash the canonical JSON form instead
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "kwargs": dict(self.kwargs),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        return cls(
            d["name"], int(d["num_classes"]), tuple(d["input_shape"]), dict(d.get("kwargs", {}))
        )


@dataclass(frozen=True)
class ModelInfo:
    """One row of `lossart models`: parameter count at CIFAR-10 shapes (10 classes, 3x32x32)."""

    name: str
    description: str
    params: int


def register_model(name: str, description: str) -> Callable[[Constructor], Constructor]:
    """Decorator adding a constructor to the registry under `name`."""

    def add(fn: Constructor) -> Constructor:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = (fn, description)
        return fn

    return add


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def is_user_model(name: str) -> bool:
    return ":" in name


def create_model(spec: ModelSpec) -> nn.Module:
    """A fresh model for `spec` (registry name or user factory); one-line errors for bad names."""
    if spec.name.startswith("torchvision:"):
        fn = torchvision_factory(spec.name)
    elif is_user_model(spec.name):
        fn = _user_factory(spec.name)
    elif spec.name in _REGISTRY:
        fn = _REGISTRY[spec.name][0]
    else:
        raise LossartError(
            f"--model {spec.name!r}: unknown model; known: {', '.join(model_names())} "
            "(or torchvision:NAME, or your own as package.module:factory)"
        )
    try:
        with warnings.catch_warnings():  # width=0: torch warns per layer, then we refuse below
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            model = fn(num_classes=spec.num_classes, input_shape=spec.input_shape, **spec.kwargs)
    except LossartError:
        raise
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as exc:
        raise LossartError(
            f"--model {spec.name!r}: bad arguments {spec.kwargs} (--model-arg): "
            + " ".join(str(exc).split())
        ) from None
    except Exception as exc:  # noqa: BLE001 - a user's factory may raise anything: one line
        raise LossartError(
            f"--model {spec.name!r}: the constructor raised {type(exc).__name__}: "
            + (" ".join(str(exc).split())[:160] or "(no message)")
        ) from None
    if not isinstance(model, nn.Module):
        raise LossartError(
            f"--model {spec.name!r}: factory returned {type(model).__name__}, "
            "expected a torch.nn.Module"
        )
    for name, param in model.named_parameters():
        if param.numel() == 0:  # width=0 and the like: torch fails later, far from the cause
            shape = "x".join(map(str, param.shape))
            raise LossartError(
                f"--model {spec.name!r} with {spec.kwargs} (--model-arg): parameter {name} is "
                f"empty ({shape}); expected sizes >= 1"
            )
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def list_models() -> list[ModelInfo]:
    """Every registered model with its parameter count at CIFAR-10 shapes (built on `meta`)."""
    rows = []
    for name in sorted(_REGISTRY):
        fn, description = _REGISTRY[name]
        with torch.device("meta"):
            model = fn(num_classes=10, input_shape=CIFAR10_SHAPE)
        rows.append(ModelInfo(name, description, count_params(model)))
    return rows


def _user_factory(name: str) -> Constructor:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise LossartError(f"--model {name!r}: expected package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module
        raise LossartError(
            f"--model {name!r}: cannot import module {module_name!r} ({exc})"
        ) from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise LossartError(
                f"--model {name!r}: module {module_name!r} has no attribute {attr!r}"
            )
    if not callable(fn):
        raise LossartError(f"--model {name!r}: {attr!r} is not callable")
    return fn


def flat_input_size(input_shape: tuple[int, ...]) -> int:
    return int(prod(input_shape))
