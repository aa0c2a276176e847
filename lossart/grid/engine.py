"""The grid engine core: loss and accuracy at many points of a plane in weight space, exact BN.

A grid point (x, y) stands for the weights `w = origin + x*û + y*v̂`. At every point the model is
evaluated on the whole evaluation subset with batch normalization using that subset's own
statistics under those weights ("exact BN", DESIGN.md): identical to `ExactBN.evaluate`, never
stored running statistics.

Two strategies, picked per device (`strategy="auto"`):

- ``point`` (CPU): one point at a time. The point's weights are written into one preallocated flat
  buffer (the parameter dict handed to `functional_call` is a fixed set of views into it), then one
  forward pass over the subset in channels-last layout under `inference_mode`. On CPUs a single
  channels-last pass runs convolutions near the machine's matmul rate; batching points would turn
  them into grouped convolutions, measured at a quarter of that.
- ``vmap`` (CUDA): a block of B points per launch. The [B, P] weight block is built on the device
  and evaluated with `torch.func.vmap(functional_call)`; each vmapped slice normalizes with its own
  batch statistics (BN modules run without running statistics, so nothing is shared between
  points). B comes from free device memory unless given.

Both build a point's weights with the same float32 operations, `(origin + x*û) + y*v̂` with the
products and sums rounded separately, so the weights behind a grid cell are bitwise what
`origin + x*u_hat + y*v_hat` gives in torch, on any device and in either strategy.

When the subset's activations do not fit the memory budget, the per-point strategy evaluates the
subset in chunks with exact BN over the whole subset (`lossart.evaluation.ExactBN` with `chunk`):
statistics are gathered layer by layer across chunks, so values match the one-pass result up to
float rounding, at the price of roughly (number of BN layers)/2 extra partial forward passes.
The evaluation copy of the model and that chunked path come from `ExactBN`, the one exact-BN
evaluator; the per-point and vmap strategies here only decide how points reach it.

Large CPU jobs compile the per-point pass with `torch.compile` (`plan_compile`): the compiler
fuses each BN layer's statistics, normalization and the following ReLU, the memory-bound third
of the pass. Compiled values differ from eager ones by float32 rounding only.

Precision (`EngineConfig.dtype`, `lossart.precision`): `bfloat16` evaluates under autocast. The
point's weights are still built in float32 exactly as above (so a grid cell's weights do not
depend on the precision); each convolution and linear layer casts its weight to bfloat16 once per
pass (per block under vmap) and runs with float32 accumulation; BN computes its statistics in
float32 (the CPU kernels and the compiled graph accumulate bfloat16 inputs in float32) and the loss
is taken on float32 logits. On a CPU with AMX the convolutions run several times faster, so the
memory-bound BN and ReLU become most of the pass. Compiled, the bfloat16 pass computes BN as float32
sums (`lossart.evaluation.BatchStatsNorm`), which fuses into one reduction and one elementwise pass
per layer (bfloat16 in memory, float32 in registers; measured 1.6x the compiled `F.batch_norm`
form, benchmarks/RESULTS.md). `auto` resolves to bfloat16 where the hardware has the units, once
per engine (a grid run records its choice).

Dropout and other train-only behaviour stay off: the model runs in eval mode with BN modules that
have no running statistics, which makes BN use batch statistics (and makes evaluation
deterministic, unlike a whole-model `model.train()`).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from lossart.devices import resolve_device
from lossart.errors import LossartError
from lossart.evaluation import ExactBN, batch_stats_copy, evaluation_copy, loss_and_accuracy
from lossart.geometry.weights import ParamLayout
from lossart.grid.config import GridConfig
from lossart.options import check_value
from lossart.precision import precision, resolve_dtype

COMPILE_MIN_POINTS = 20000  # below this a job is over before compiling (~20-60 s) pays off
STRATEGIES = ("auto", "point", "vmap")


@dataclass(frozen=True)
class EngineConfig:
    """How to evaluate: device, precision, strategy and memory limits (None = chosen here)."""

    device: str = "cpu"
    dtype: str = "float32"
    strategy: str = "auto"
    batch_points: int | None = None  # points per vmap launch; None = from free memory
    # subset chunk for the per-point strategy; None = the whole subset if it fits
    chunk: int | None = None
    memory_fraction: float = 0.5  # share of free memory the engine may plan to use
    # torch.compile the per-point pass (fuses BN statistics, normalization and ReLU);
    # None = decided by `plan_compile` from the size of the whole job
    compile: bool | None = None


@dataclass(frozen=True)
class PointResults:
    """Loss and accuracy at each evaluated point (accuracy NaN for regression)."""

    loss: np.ndarray  # float32 [N]
    accuracy: np.ndarray  # float32 [N]


def point_weights(
    origin: torch.Tensor,
    u_hat: torch.Tensor,
    v_hat: torch.Tensor,
    xs: torch.Tensor,
    ys: torch.Tensor,
) -> torch.Tensor:
    """The [B, P] weight block of points (xs[b], ys[b]): `(origin + x*û) + y*v̂`, float32."""
    xs = xs.to(device=origin.device, dtype=origin.dtype)
    ys = ys.to(device=origin.device, dtype=origin.dtype)
    block = torch.outer(xs, u_hat)
    block.add_(origin)
    block.add_(torch.outer(ys, v_hat))
    return block


def channels_last_order(layout: ParamLayout) -> torch.Tensor | None:
    """Index map from a channels-last weight buffer to the flat vector (None: no 4-D weights).

    `buffer = flat[order]` stores each conv weight [O, I, kh, kw] as [O, kh, kw, I].
    """
    if not any(len(s) == 4 for s in layout.shapes):
        return None
    parts, offset = [], 0
    for shape, size in zip(layout.shapes, layout.sizes, strict=True):
        idx = torch.arange(offset, offset + size)
        if len(shape) == 4:
            idx = idx.view(shape).permute(0, 2, 3, 1).reshape(-1)
        parts.append(idx)
        offset += size
    return torch.cat(parts)


def channels_last_views(layout: ParamLayout, buf: torch.Tensor) -> dict[str, torch.Tensor]:
    """Parameter views into a channels-last buffer: 4-D weights come out channels-last strided."""
    out = {}
    for name, shape, chunk in zip(
        layout.names, layout.shapes, buf.split(layout.sizes), strict=True
    ):
        if len(shape) == 4:
            o, i, kh, kw = shape
            out[name] = chunk.view(o, kh, kw, i).permute(0, 3, 1, 2)
        else:
            out[name] = chunk.view(shape)
    return out


def count_flops(model: nn.Module, layout: ParamLayout, flat: torch.Tensor, x: torch.Tensor) -> int:
    """FLOPs of one forward pass over `x` (matmuls and convolutions, as FlopCounterMode counts)."""
    from torch.utils.flop_counter import FlopCounterMode

    m = evaluation_copy(model, torch.device("cpu"), channels_last=False)
    params = layout.unflatten(flat.detach().float().cpu())
    probe = x[: min(len(x), 16)].detach().float().cpu()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        functional_call(m, params, (probe,))
    # FLOPs of these models are linear in the batch; scale the probe up to the whole subset.
    return int(round(counter.get_total_flops() * len(x) / len(probe)))


def activation_bytes_per_sample(model: nn.Module, params: dict, x: torch.Tensor) -> int:
    """Peak activation bytes per sample of one forward pass, estimated from a 2-sample probe.

    Sums the two largest module outputs (what is alive at the widest point of a forward pass
    under inference_mode) and doubles it for the temporaries inside layers.
    """
    sizes: list[int] = []

    def hook(_m, _i, out):
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel() * out.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            functional_call(model, params, (x[:2],))
    finally:
        for h in handles:
            h.remove()
    sizes.sort(reverse=True)
    top = sum(sizes[:2]) if sizes else x[:2].numel() * 4
    return max(1, (2 * top + x[:2].numel() * x.element_size()) // 2)


def free_memory_bytes(device: torch.device) -> int:
    """Memory available for activations on `device` right now."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


class GridEngine:
    """Evaluates a model at points of one plane after another; holds the subset on the device.

    Build once per model and subset, call `set_plane` per frame, `evaluate(xs, ys)` per tile.
    """

    def __init__(
        self,
        model: nn.Module,
        layout: ParamLayout,
        x: torch.Tensor,
        y: torch.Tensor,
        task: str = "classification",
        config: EngineConfig | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        if self.config.strategy not in STRATEGIES:
            raise LossartError(
                f"strategy {self.config.strategy!r}: expected one of {', '.join(STRATEGIES)}"
            )
        self.device = resolve_device(self.config.device)
        # The precision every point of this engine is evaluated in (`auto` made concrete).
        self.dtype = resolve_dtype(self.config.dtype, self.device)
        self.layout = layout
        self.task = task
        self.strategy = self.config.strategy
        if self.strategy == "auto":
            self.strategy = "vmap" if self.device.type == "cuda" else "point"
        images = x.dim() == 4
        self.channels_last = images and self.strategy == "point"
        # The one exact-BN evaluator owns the evaluation copy (BN without running statistics,
        # eval mode) and the chunked path; the strategies below call its model directly.
        self.evaluator = ExactBN(model, layout, self.device, self.channels_last)
        self.model = self.evaluator.model
        x = x.to(self.device, dtype=torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self.x = x
        self.y = y.to(self.device)
        self.origin = self.u_hat = self.v_hat = None
        # The per-point strategy's weight buffer and the fixed parameter views into it.
        self._buf = torch.zeros(layout.numel, device=self.device)
        self._tmp = torch.empty_like(self._buf)
        self._perm = channels_last_order(layout) if self.channels_last else None
        if self._perm is not None:
            self._perm = self._perm.to(self.device)
            self._params = channels_last_views(layout, self._buf)
        else:
            self._params = layout.unflatten(self._buf)
        self._point_basis: tuple[torch.Tensor, ...] | None = None
        self._bytes_per_sample = activation_bytes_per_sample(self.model, self._params, self.x)
        self.chunk = self._choose_chunk()
        self.evaluator.chunk = self.chunk
        self.batch_points = self._choose_batch_points() if self.strategy == "vmap" else 1
        self._flops: int | None = None
        self._reference_model = model
        self._forward = None  # the compiled per-point pass, once `plan_compile` asks for it
        self.compiled = False
        if self.config.compile:
            self.plan_compile()

    # ---------------------------------------------------------------- planning

    def _budget(self) -> int:
        return int(free_memory_bytes(self.device) * self.config.memory_fraction)

    def _choose_chunk(self) -> int | None:
        n = len(self.x)
        if self.config.chunk is not None:
            if self.config.chunk <= 0:
                raise LossartError(
                    f"chunk {self.config.chunk}: expected a positive number of samples"
                )
            return None if self.config.chunk >= n else self.config.chunk
        fits = self._budget() // self._bytes_per_sample
        return None if fits >= n else max(1, int(fits))

    def _choose_batch_points(self) -> int:
        if self.config.batch_points is not None:
            check_value(GridConfig, "batch_points", self.config.batch_points)
            return self.config.batch_points
        per_point = self._bytes_per_sample * len(self.x) + 3 * 4 * self.layout.numel
        fits = self._budget() // per_point
        if fits < 1 and self.config.strategy == "auto":
            # Not even one point's pass fits: evaluate point by point in exact-BN chunks instead.
            self.strategy = "point"
            return 1
        return int(max(1, min(1024, fits)))

    @property
    def flops_per_point(self) -> int:
        """Forward-pass FLOPs over the whole subset at one point (counted once, then cached)."""
        if self._flops is None:
            flat = self.origin if self.origin is not None else self._buf
            self._flops = count_flops(self._reference_model, self.layout, flat, self.x)
        return self._flops

    def describe(self) -> str:
        parts = [f"{self.strategy} on {self.device}", self.dtype, f"subset {len(self.x)}"]
        if self.strategy == "vmap":
            parts.append(f"{self.batch_points} points/launch")
        if self.chunk:
            parts.append(f"exact-BN chunks of {self.chunk}")
        if self.compiled:
            parts.append("compiled")
        return ", ".join(parts)

    # ---------------------------------------------------------------- evaluation

    def set_plane(self, origin: torch.Tensor, u_hat: torch.Tensor, v_hat: torch.Tensor) -> None:
        """The plane the next points lie in: origin (w1) and orthonormal directions, flat [P]."""
        for name, t in (("origin", origin), ("u_hat", u_hat), ("v_hat", v_hat)):
            if t.dim() != 1 or t.numel() != self.layout.numel:
                raise LossartError(
                    f"plane {name} has shape {tuple(t.shape)}, expected ({self.layout.numel},)"
                )
        self.origin = origin.detach().to(self.device, torch.float32).contiguous()
        self.u_hat = u_hat.detach().to(self.device, torch.float32).contiguous()
        self.v_hat = v_hat.detach().to(self.device, torch.float32).contiguous()
        basis = (self.origin, self.u_hat, self.v_hat)
        # The per-point buffer holds conv weights in channels-last order (a fixed permutation),
        # so no convolution reorders its weights per point; elementwise, the values are the same.
        self._point_basis = basis if self._perm is None else tuple(t[self._perm] for t in basis)

    def weights_at(self, x: float, y: float) -> torch.Tensor:
        """The flat weights of point (x, y), built exactly as `evaluate` builds them."""
        self._write_point(x, y)
        if self._perm is None:
            return self._buf.clone()
        out = torch.empty_like(self._buf)
        out[self._perm] = self._buf
        return out

    def _write_point(self, x: float, y: float) -> None:
        if self.origin is None:
            raise LossartError("grid engine: set_plane must be called before evaluating points")
        xt = torch.tensor(x, dtype=torch.float32)
        yt = torch.tensor(y, dtype=torch.float32)
        origin, u_hat, v_hat = self._point_basis
        torch.mul(u_hat, xt.item(), out=self._buf)
        self._buf.add_(origin)
        torch.mul(v_hat, yt.item(), out=self._tmp)
        self._buf.add_(self._tmp)

    def evaluate(self, xs, ys) -> PointResults:
        """Loss and accuracy at points (xs[k], ys[k]) of the current plane."""
        xs = torch.as_tensor(np.asarray(xs, dtype=np.float64)).reshape(-1)
        ys = torch.as_tensor(np.asarray(ys, dtype=np.float64)).reshape(-1)
        if xs.shape != ys.shape:
            raise LossartError(f"grid engine: {len(xs)} x coordinates but {len(ys)} y coordinates")
        if self.origin is None:
            raise LossartError("grid engine: set_plane must be called before evaluating points")
        loss = np.empty(len(xs), dtype=np.float32)
        acc = np.empty(len(xs), dtype=np.float32)
        with torch.inference_mode(), precision(self.dtype, self.device):
            if self.strategy == "point":
                for k in range(len(xs)):
                    loss[k], acc[k] = self._evaluate_point(float(xs[k]), float(ys[k]))
            else:
                start = 0
                while start < len(xs):
                    stop = min(len(xs), start + self.batch_points)
                    try:
                        lo, ac = self._evaluate_block(xs[start:stop], ys[start:stop])
                    except torch.OutOfMemoryError:
                        # The memory estimate was optimistic (workspaces, fragmentation): halve.
                        if self.batch_points == 1:
                            raise LossartError(
                                f"out of {self.device} memory with one grid point per launch; "
                                "use a smaller --subset"
                            ) from None
                        self.batch_points = max(1, self.batch_points // 2)
                        if self.device.type == "cuda":
                            torch.cuda.empty_cache()
                        continue
                    loss[start:stop], acc[start:stop] = lo, ac
                    start = stop
        return PointResults(loss, acc)

    def plan_compile(self, job_points: int | None = None, force: bool | None = None) -> bool:
        """Compile the per-point pass when it pays; returns whether the engine is compiled.

        `force` (else `config.compile`) decides; where both are None, a CPU job of at least
        `COMPILE_MIN_POINTS` points compiles. Compiled and eager passes round differently (by a
        few float32 ulps), so callers decide once per grid, not by how much work is left.
        """
        wanted = force if force is not None else self.config.compile
        if wanted is None:
            wanted = (
                self.device.type == "cpu"
                and job_points is not None
                and job_points >= COMPILE_MIN_POINTS
            )
        if not wanted or self.strategy != "point" or self.chunk or self.compiled:
            return self.compiled
        params, x, y, task = self._params, self.x, self.y, self.task
        bf16, device_type = self.dtype == "bfloat16", self.device.type
        # bfloat16: BN as float32 sums, which the compiler fuses better than BN's own form.
        model = batch_stats_copy(self.model) if bf16 else self.model

        def forward() -> tuple[torch.Tensor, torch.Tensor]:
            # autocast inside the compiled function, so the graph is traced in bfloat16.
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                return loss_and_accuracy(functional_call(model, params, (x,)), y, task)

        # Inductor's C++ toolchain probe warns about CUDA on CPU-only machines: not news to users.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        self._forward = torch.compile(forward)
        self.compiled = True
        return True

    def _evaluate_point(self, x: float, y: float) -> tuple[float, float]:
        self._write_point(x, y)
        if self._forward is not None:
            try:
                lo, ac = self._forward()
                return lo.item(), ac.item()
            except Exception as exc:  # noqa: BLE001 - any compiler failure: fall back to eager
                print(
                    f"lossart: torch.compile failed ({type(exc).__name__}); evaluating eagerly",
                    file=sys.stderr,
                )
                self._forward, self.compiled = None, False
        out = self.evaluator.forward(self._params, self.x)
        lo, ac = loss_and_accuracy(out, self.y, self.task)
        return lo.item(), ac.item()

    def _evaluate_block(self, xs: torch.Tensor, ys: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        xs32 = xs.to(torch.float32)
        ys32 = ys.to(torch.float32)
        block = point_weights(self.origin, self.u_hat, self.v_hat, xs32, ys32)
        params = self.layout.unflatten(block)
        model, x, y, task = self.model, self.x, self.y, self.task

        def one(p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            return loss_and_accuracy(functional_call(model, p, (x,)), y, task)

        lo, ac = vmap(one)(params)
        return lo.float().cpu().numpy(), ac.float().cpu().numpy()


def grid_axis(lo: float, hi: float, n: int) -> np.ndarray:
    """Sample positions of one grid axis per bundle.md, `lo + j*(hi-lo)/(n-1)` (float64), with
    the last sample exactly `hi` (as `np.linspace`), so the window's edges are grid samples."""
    if n == 1:
        return np.array([lo], dtype=np.float64)
    j = np.arange(n, dtype=np.float64)
    out = lo + j * (hi - lo) / (n - 1)
    out[-1] = hi
    return out


def effective_gflops(flops_per_point: int, points_per_second: float) -> float:
    return flops_per_point * points_per_second / 1e9
