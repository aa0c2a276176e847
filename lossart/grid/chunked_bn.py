"""Exact BN over a subset too large for one pass: statistics gathered layer by layer across chunks.

Normalizing each chunk with its own statistics would change the values (every chunk would see
slightly different means and variances, and the loss would depend on the chunk size). Instead,
BN layers are settled one at a time in call order: a pass over all chunks runs the layers already
settled with the whole subset's statistics and stops at the first unsettled BN layer, whose input
sums (float64) give that layer's whole-subset mean and biased variance. After all L layers are
settled a last pass computes the outputs. The result equals one pass over the whole subset with
training-mode BN up to float rounding; the cost is about L/2 + 1 forward passes instead of one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from lossart.errors import LossartError


class _Stop(Exception):
    """Raised by the collecting hook to cut a pass short at the layer being settled."""


def chunked_exact_bn_outputs(
    model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Outputs of `model` (BN without running statistics) over `x`, BN statistics of all of `x`."""
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    settled: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    sums: dict[str, torch.Tensor | None] = {"s": None, "q": None}
    count = [0]
    state: dict[str, nn.Module | None] = {"target": None}
    calls: dict[nn.Module, int] = {}

    def pre_hook(m, inputs):
        calls[m] = calls.get(m, 0) + 1
        if calls[m] > 1:
            raise LossartError(
                "chunked exact BN: a BatchNorm module is called twice per forward pass"
            )
        if m in settled:
            return None
        inp = inputs[0].double()
        dims = [d for d in range(inp.dim()) if d != 1]
        s, q = inp.sum(dims), (inp * inp).sum(dims)
        sums["s"] = s if sums["s"] is None else sums["s"] + s
        sums["q"] = q if sums["q"] is None else sums["q"] + q
        count[0] += inp.numel() // inp.shape[1]
        state["target"] = m
        raise _Stop

    def hook(m, inputs, _out):
        mean, var = settled[m]
        return F.batch_norm(inputs[0], mean, var, m.weight, m.bias, False, 0.0, m.eps)

    handles = [m.register_forward_pre_hook(pre_hook) for m in bns]
    handles += [m.register_forward_hook(hook) for m in bns]
    try:
        for _layer in range(len(bns) + 1):
            sums["s"] = sums["q"] = None
            count[0] = 0
            state["target"] = None
            outputs = []
            for start in range(0, len(x), chunk):
                calls.clear()
                try:
                    outputs.append(functional_call(model, params, (x[start : start + chunk],)))
                except _Stop:
                    pass
            target = state["target"]
            if target is None:
                return torch.cat(outputs)
            mean = sums["s"] / count[0]
            var = (sums["q"] / count[0] - mean * mean).clamp_min(0.0)
            settled[target] = (mean.float(), var.float())
        raise LossartError(
            "chunked exact BN: BN layers did not settle (a layer is skipped per chunk?)"
        )
    finally:
        for h in handles:
            h.remove()
