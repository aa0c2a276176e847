"""Loss and accuracy of a model at any flat weight vector, with exact BN (DESIGN.md).

"Exact BN" means: normalize with the statistics of the evaluation subset itself under the weights
being evaluated. One forward pass over the whole subset with BN in training mode does exactly that,
so this module never touches stored running statistics (the caller's model and its buffers are
left unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lossart.geometry.weights import ParamLayout


@dataclass(frozen=True)
class EvalResult:
    """Mean loss and accuracy (accuracy is NaN for regression)."""

    loss: float
    accuracy: float


def task_loss(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """Mean loss for the task: cross-entropy for classification, MSE for regression."""
    if task == "regression":
        return F.mse_loss(outputs.reshape(targets.shape), targets)
    return F.cross_entropy(outputs, targets)


def task_accuracy(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> float:
    if task == "regression":
        return float("nan")
    return (outputs.argmax(dim=1) == targets).float().mean().item()


def private_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the model's buffers, so training-mode BN updates never reach the caller's model."""
    return {name: b.clone() for name, b in model.named_buffers()}


@torch.no_grad()
def forward_exact_bn(
    model: nn.Module, layout: ParamLayout, flat: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """Outputs of `model` at weights `flat` on `x`, BN normalizing with the statistics of `x`."""
    was_training = model.training
    model.train()
    try:
        tensors = {**private_buffers(model), **layout.unflatten(flat)}
        return functional_call(model, tensors, (x,))
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate_exact_bn(
    model: nn.Module,
    layout: ParamLayout,
    flat: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    task: str = "classification",
) -> EvalResult:
    """Loss and accuracy at `flat` over the whole subset `(x, y)` in one exact-BN pass."""
    out = forward_exact_bn(model, layout, flat, x)
    return EvalResult(task_loss(out, y, task).item(), task_accuracy(out, y, task))
