"""Weights as flat vectors: the geometry of curves and planes lives in parameter space.

A `ParamLayout` records the names, shapes and offsets of a model's trainable parameters so that
one flat vector (what curves and planes are made of) and the per-tensor dict that
`torch.func.functional_call` takes can be converted into each other without copies where possible.
Buffers (BN running statistics) are not part of the vector: lossart evaluates with exact BN
(DESIGN.md), so stored statistics never matter off the endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
from torch import nn

from lossart.errors import LossartError


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a model's parameters, in `named_parameters()` order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, model: nn.Module) -> ParamLayout:
        named = list(model.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named))

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(prod(s) for s in self.shapes)

    @property
    def numel(self) -> int:
        return sum(self.sizes)

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """One flat float vector from a dict (a state dict or parameter dict) holding our names."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise LossartError(f"weights lack parameter {missing[0]!r} (and {len(missing) - 1} more)")
        parts = []
        for name, shape in zip(self.names, self.shapes):
            t = tensors[name]
            if tuple(t.shape) != shape:
                raise LossartError(
                    f"parameter {name!r} has shape {tuple(t.shape)}, expected {shape}"
                )
            parts.append(t.detach().reshape(-1))
        return torch.cat(parts)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views into `flat` (last dim) shaped like the parameters; leading dims are kept.

        A `[P]` vector gives parameter-shaped tensors; a `[B, P]` block gives `[B, *shape]`
        tensors, which is what `torch.func.vmap` over `functional_call` wants.
        """
        if flat.shape[-1] != self.numel:
            raise LossartError(f"weight vector has {flat.shape[-1]} entries, model has {self.numel}")
        lead = flat.shape[:-1]
        out = {}
        for name, shape, chunk in zip(self.names, self.shapes, flat.split(self.sizes, dim=-1)):
            out[name] = chunk.reshape(*lead, *shape)
        return out


def flat_params(model: nn.Module) -> torch.Tensor:
    """The model's current parameters as one flat vector (a copy)."""
    return ParamLayout.of(model).flatten(dict(model.named_parameters())).clone()


def load_flat_(model: nn.Module, flat: torch.Tensor) -> None:
    """Copy a flat vector into the model's parameters in place (for the reference loop and users)."""
    layout = ParamLayout.of(model)
    with torch.no_grad():
        for (_, p), t in zip(model.named_parameters(), layout.unflatten(flat).values()):
            p.copy_(t)
