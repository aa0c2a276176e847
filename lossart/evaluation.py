"""Loss and accuracy of a model at any flat weight vector, with exact BN (DESIGN.md): one evaluator.

"Exact BN" means: normalize with the statistics of the evaluation subset itself under the weights
being evaluated. `ExactBN` holds a private evaluation copy of the model whose BN layers have no
running statistics, in eval mode (dropout off), so every forward pass normalizes with its own batch
statistics; the caller's model and buffers are never touched. Ways to evaluate:

- one pass over the whole subset (`outputs`), or a `[B, P]` block of weight vectors under
  `torch.func.vmap` (`outputs_many`), each vmapped slice with its own statistics;
- chunked (`chunk=`): a subset too large for one pass. Normalizing each chunk with its own
  statistics would change the values, so BN layers are settled one at a time in call order: a pass
  over all chunks runs the settled layers with the whole subset's statistics and stops at the first
  unsettled BN layer, whose input sums (float64) give its whole-subset mean and biased variance.
  After all L layers a last pass computes the outputs: equal to the one-pass result up to float
  rounding, at about L/2 + 1 passes instead of one;
- other inputs with a reference subset's statistics (`reference_outputs`): the test set of
  eval-curve and ensembles, the input sweep of `functions`. Statistics are those one training-mode
  pass over the reference subset leaves in BN's running buffers with momentum None (reset first):
  its mean and *unbiased* variance, what Garipov's `update_bn` computes; the other inputs then run
  in eval mode with them (in chunks; batch-independent), so they never use their own statistics.

Fixed statistics reach a BN layer as its `running_mean`/`running_var` buffers through
`functional_call`: a BN module without running statistics uses buffers given that way in eval mode.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, replace_all_batch_norm_modules_, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from lossart.errors import LossartError
from lossart.geometry.weights import ParamLayout

Params = dict[str, torch.Tensor]


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


def loss_and_accuracy(
    outputs: torch.Tensor, targets: torch.Tensor, task: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy as 0-d float32 tensors (vmap-friendly: no `.item()`)."""
    outputs = outputs.float()
    if task == "regression":
        loss = F.mse_loss(outputs.reshape(targets.shape), targets)
        return loss, torch.full((), float("nan"), device=outputs.device)
    loss = F.cross_entropy(outputs, targets)
    acc = (outputs.argmax(dim=-1) == targets).float().mean()
    return loss, acc


def private_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the model's buffers, so training-mode BN updates never reach the caller's model."""
    return {name: b.clone() for name, b in model.named_buffers()}


def evaluation_copy(
    model: nn.Module, device: torch.device | str | None = None, channels_last: bool = False
) -> nn.Module:
    """A private copy of `model` whose BN layers always normalize with batch statistics.

    BN modules lose their running statistics (so training-mode behaviour is the only behaviour and
    vmap never writes a shared buffer); the rest of the model is in eval mode (no dropout).
    """
    m = copy.deepcopy(model)
    if device is not None:
        m = m.to(device)
    replace_all_batch_norm_modules_(m)
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    return m


class BatchStatsNorm(nn.Module):
    """Batch normalization with the batch's own statistics, as sums in float32: the compiled
    bfloat16 pass's form of an evaluation copy's BN layer (`batch_stats_copy`).

    Mean and biased variance per channel come from one pass of float32 sums of `x - k` and its
    square, `k` a per-channel shift (the first sample's channel mean) that keeps the variance
    free of cancellation; normalization and the affine map are one multiply-add. Equal to BN's
    batch-statistics output up to float32 rounding. Compiled, this fuses into a plain reduction
    and one elementwise pass, measured 1.6x faster than the compiled Welford form of
    `F.batch_norm` (benchmarks/RESULTS.md).
    """

    def __init__(self, bn: _BatchNorm) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = bn.weight, bn.bias, bn.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        dims = [d for d in range(x.dim()) if d != 1]
        k = xf[:1].mean(dims, keepdim=True)
        d = xf - k
        m1 = d.mean(dims, keepdim=True)
        var = ((d * d).mean(dims, keepdim=True) - m1 * m1).clamp_min(0.0)
        scale = torch.rsqrt(var + self.eps)
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.weight is not None:
            scale = scale * self.weight.view(shape)
        shift = -(k + m1) * scale
        if self.bias is not None:
            shift = shift + self.bias.view(shape)
        return (xf * scale + shift).to(x.dtype)


def batch_stats_copy(model: nn.Module) -> nn.Module:
    """A copy of an evaluation copy with every BN layer a `BatchStatsNorm` (same parameter
    names, so the same `functional_call` parameters drive it). For one pass over a whole
    subset only: it has no running-statistics buffers, so the chunked path cannot use it."""
    m = copy.deepcopy(model)
    for parent in list(m.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _BatchNorm):
                setattr(parent, name, BatchStatsNorm(child))
    return m


@dataclass
class BNStatistics:
    """Per BN layer (by module name): mean and biased variance of its input over a subset."""

    mean: dict[str, torch.Tensor] = field(default_factory=dict)
    var: dict[str, torch.Tensor] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        self.mean[name], self.var[name], self.count[name] = mean, var, count

    def buffers(self, unbiased: bool = False) -> dict[str, torch.Tensor]:
        """The statistics as BN buffers for `functional_call`; `unbiased`: as running_var holds."""
        out = {}
        for name, mean in self.mean.items():
            var, n = self.var[name], self.count[name]
            if unbiased and n > 1:
                var = var * (n / (n - 1))
            out[f"{name}.running_mean"] = mean
            out[f"{name}.running_var"] = var
        return out


class _Stop(Exception):
    """Raised by the collecting hook to cut a pass short at the layer being settled."""


def _bn_modules(model: nn.Module) -> dict[nn.Module, str]:
    return {m: name for name, m in model.named_modules() if isinstance(m, _BatchNorm)}


def _once_per_pass(calls: dict[nn.Module, int], m: nn.Module) -> None:
    calls[m] = calls.get(m, 0) + 1
    if calls[m] > 1:
        raise LossartError("exact BN: a BatchNorm module is called twice per forward pass")


def _one_pass_statistics(
    model: nn.Module, params: Params, x: torch.Tensor
) -> tuple[torch.Tensor, BNStatistics]:
    """Outputs of one batch-statistics pass over `x` and the statistics each BN layer used."""
    names = _bn_modules(model)
    stats = BNStatistics()
    calls: dict[nn.Module, int] = {}

    def record(m, inputs):
        _once_per_pass(calls, m)
        inp = inputs[0]
        dims = [d for d in range(inp.dim()) if d != 1]
        var, mean = torch.var_mean(inp.float(), dim=dims, correction=0)
        stats.add(names[m], mean, var, inp.numel() // inp.shape[1])

    handles = [m.register_forward_pre_hook(record) for m in names]
    try:
        out = functional_call(model, params, (x,))
    finally:
        for h in handles:
            h.remove()
    return out, stats


def _layerwise_statistics(
    model: nn.Module, params: Params, x: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, BNStatistics]:
    """Outputs over `x` in chunks with every BN layer at the statistics of all of `x`, settled
    layer by layer (module docstring), and those statistics."""
    names = _bn_modules(model)
    stats = BNStatistics()
    sums: dict[str, torch.Tensor | None] = {"s": None, "q": None}
    count = [0]
    target: list[nn.Module | None] = [None]
    calls: dict[nn.Module, int] = {}

    def collect(m, inputs):
        _once_per_pass(calls, m)
        if names[m] in stats.mean:
            return None
        inp = inputs[0].double()
        dims = [d for d in range(inp.dim()) if d != 1]
        s, q = inp.sum(dims), (inp * inp).sum(dims)
        sums["s"] = s if sums["s"] is None else sums["s"] + s
        sums["q"] = q if sums["q"] is None else sums["q"] + q
        count[0] += inp.numel() // inp.shape[1]
        target[0] = m
        raise _Stop

    handles = [m.register_forward_pre_hook(collect) for m in names]
    try:
        for _layer in range(len(names) + 1):
            sums["s"] = sums["q"] = None
            count[0], target[0] = 0, None
            fixed = {**params, **stats.buffers()}
            outputs = []
            for start in range(0, len(x), chunk):
                calls.clear()
                try:
                    outputs.append(functional_call(model, fixed, (x[start : start + chunk],)))
                except _Stop:
                    pass
            if target[0] is None:
                return torch.cat(outputs), stats
            mean = sums["s"] / count[0]
            var = (sums["q"] / count[0] - mean * mean).clamp_min(0.0)
            stats.add(names[target[0]], mean.float(), var.float(), count[0])
        raise LossartError("exact BN: BN layers did not settle (a layer is skipped per chunk?)")
    finally:
        for h in handles:
            h.remove()


def exact_bn_outputs(
    model: nn.Module, params: Params, x: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """Outputs of an evaluation copy at `params` over `x`, BN at the statistics of all of `x`."""
    if chunk is None or chunk >= len(x):
        return functional_call(model, params, (x,))
    return _layerwise_statistics(model, params, x, chunk)[0]


class ExactBN:
    """One model evaluated at any flat weight vector with exact BN (module docstring).

    `chunk`: evaluate subsets in chunks of this many samples, still exact (None: one pass).
    """

    def __init__(
        self,
        model: nn.Module,
        layout: ParamLayout | None = None,
        device: torch.device | str | None = None,
        channels_last: bool = False,
        chunk: int | None = None,
    ) -> None:
        if chunk is not None and chunk < 1:
            raise LossartError(f"chunk {chunk}: expected a positive number of samples")
        self.layout = layout or ParamLayout.of(model)
        self.model = evaluation_copy(model, device, channels_last)
        self.chunk = chunk

    def params(self, flat: torch.Tensor) -> Params:
        return self.layout.unflatten(flat)

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Outputs at `params` (parameter tensors by name) over the whole subset `x`."""
        return exact_bn_outputs(self.model, params, x, self.chunk)

    @torch.no_grad()
    def outputs(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Outputs at weights `flat` on `x`, BN normalizing with the statistics of `x`."""
        return self.forward(self.params(flat), x)

    @torch.no_grad()
    def outputs_many(self, block: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Outputs `[B, N, ...]` at each row of a `[B, P]` block, each with its own statistics."""
        model = self.model
        return vmap(lambda p: functional_call(model, p, (x,)))(self.layout.unflatten(block))

    def outputs_and_statistics(
        self, flat: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, BNStatistics]:
        """`outputs(flat, x)` and the BN statistics of `x` behind them."""
        params = self.params(flat)
        with torch.no_grad():
            if self.chunk is None or self.chunk >= len(x):
                return _one_pass_statistics(self.model, params, x)
            return _layerwise_statistics(self.model, params, x, self.chunk)

    @torch.no_grad()
    def outputs_with(
        self, flat: torch.Tensor, stats: BNStatistics, x: torch.Tensor, chunk: int = 1000
    ) -> torch.Tensor:
        """Outputs on `x` in eval mode with fixed statistics (running_var unbiased, as BN's)."""
        fixed = {**self.params(flat), **stats.buffers(unbiased=True)}
        return torch.cat([functional_call(self.model, fixed, (xs,)) for xs in x.split(chunk)])

    def reference_outputs(
        self, flat: torch.Tensor, reference: torch.Tensor, x: torch.Tensor, chunk: int = 1000
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs at `flat` on the `reference` subset (exact BN) and on `x` with its statistics."""
        ref_out, stats = self.outputs_and_statistics(flat, reference)
        return ref_out, self.outputs_with(flat, stats, x, chunk)

    def evaluate(
        self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, task: str = "classification"
    ) -> EvalResult:
        """Loss and accuracy at `flat` over the whole subset `(x, y)` with exact BN."""
        out = self.outputs(flat, x)
        return EvalResult(task_loss(out, y, task).item(), task_accuracy(out, y, task))

    def evaluate_with_reference(
        self,
        flat: torch.Tensor,
        reference: tuple[torch.Tensor, torch.Tensor],
        other: tuple[torch.Tensor, torch.Tensor],
        task: str = "classification",
    ) -> tuple[EvalResult, EvalResult]:
        """(reference subset, other set) results at `flat`; the other set uses the reference's
        statistics (the test set of eval-curve: train-subset statistics at that point)."""
        ref_out, out = self.reference_outputs(flat, reference[0], other[0])
        return (
            EvalResult(task_loss(ref_out, reference[1], task).item(),
                       task_accuracy(ref_out, reference[1], task)),
            EvalResult(task_loss(out, other[1], task).item(), task_accuracy(out, other[1], task)),
        )  # fmt: skip


def evaluate_exact_bn(
    model: nn.Module,
    layout: ParamLayout,
    flat: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    task: str = "classification",
) -> EvalResult:
    """Loss and accuracy at `flat` over the whole subset `(x, y)` in one exact-BN pass."""
    return ExactBN(model, layout, device=x.device).evaluate(flat, x, y, task)
