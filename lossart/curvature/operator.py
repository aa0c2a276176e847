"""The training loss's Hessian at one weight vector, as Hessian-vector products.

The loss is a deterministic function of the weights: the mean task loss over a fixed evaluation
subset in one exact-BN pass (lossart.evaluation: BN normalizes with the subset's own statistics
under these weights, and those statistics are differentiated through, so the Hessian is that of
the very function the grids evaluate). The gradient is built once with `create_graph=True` and
kept; each product is then one backward pass through it (double backward: `∇(gᵀv) = Hv`),
about twice the cost of a gradient, and the memory of that graph is held meanwhile (it grows
with the subset: the reason `--subset` is small by default).

The operator acts on the coordinates `mask` selects (the parameters random planes move: conv and
linear weights; biases and BN too with `--keep-bn`): v is zeroed outside them before the product
and Hv after it, which is the Hessian block of those parameters, the rest held fixed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from lossart.curvature.config import HESSIAN_DTYPES
from lossart.errors import LossartError
from lossart.evaluation import evaluation_copy, task_loss
from lossart.geometry.weights import ParamLayout

DTYPES = {name: getattr(torch, name) for name in HESSIAN_DTYPES}


class HessianOperator:
    """H·v of the exact-BN loss at `flat` over `(x, y)`, restricted to `mask` (module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        flat: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        task: str = "classification",
        mask: torch.Tensor | None = None,
        dtype: str = "float32",
        layout: ParamLayout | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise LossartError(f"dtype {dtype!r}: expected float32 or float64")
        self.dtype = DTYPES[dtype]
        self.device = x.device
        self.layout = layout or ParamLayout.of(model)
        if flat.shape != (self.layout.numel,):
            raise LossartError(
                f"weights have {tuple(flat.shape)} entries, the model {self.layout.numel}"
            )
        self.model = evaluation_copy(model, self.device).to(self.dtype)
        self.n = self.layout.numel
        self.mask = (
            torch.ones(self.n, dtype=torch.bool) if mask is None else mask.to(torch.bool).cpu()
        )
        if self.mask.shape != (self.n,):
            raise LossartError(f"mask has {tuple(self.mask.shape)} entries, the model {self.n}")
        self._mask = self.mask.to(self.device, self.dtype)
        self.weights = flat.detach().to(self.device, self.dtype).clone().requires_grad_(True)
        x = x.to(self.dtype) if x.is_floating_point() else x
        y = y.to(self.dtype) if task == "regression" else y
        with torch.enable_grad():
            out = functional_call(self.model, self.layout.unflatten(self.weights), (x,))
            self.loss_tensor = task_loss(out.float() if self.dtype == torch.float32 else out,
                                         y, task)  # fmt: skip
            (self.grad,) = torch.autograd.grad(self.loss_tensor, self.weights, create_graph=True)
        self.loss = float(self.loss_tensor.detach())
        self.products = 0

    @property
    def dim(self) -> int:
        """How many coordinates the operator acts on."""
        return int(self.mask.sum())

    def gradient_norm(self) -> float:
        """|∇L| over the masked coordinates (0 at an exact critical point)."""
        return float((self.grad.detach() * self._mask).double().norm())

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """H v (float64 out, zero outside the mask) for a float64 or float32 vector v [P]."""
        v = v.to(self.device, self.dtype) * self._mask
        (hv,) = torch.autograd.grad(self.grad, self.weights, grad_outputs=v, retain_graph=True)
        self.products += 1
        return (hv.detach() * self._mask).double()

    def restricted(self, mask: torch.Tensor) -> RestrictedOperator:
        """The block of the coordinates in `mask` (within this operator's), e.g. one layer."""
        return RestrictedOperator(self, mask.to(torch.bool).cpu() & self.mask)

    def release(self) -> None:
        """Drop the kept gradient graph (its memory) once no more products are needed."""
        self.grad = self.grad.detach()
        self.loss_tensor = self.loss_tensor.detach()


class RestrictedOperator:
    """A diagonal block of a `HessianOperator`: products with v zeroed outside `mask`."""

    def __init__(self, parent: HessianOperator, mask: torch.Tensor) -> None:
        self.parent = parent
        self.mask = mask
        self.n = parent.n
        self._mask = mask.to(parent.device, torch.float64)

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        v = v.to(self._mask.device, torch.float64) * self._mask
        return self.parent.hvp(v) * self._mask
