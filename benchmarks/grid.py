"""Grid engine throughput against a reference per-point loop and the machine's matmul rate.

    python benchmarks/grid.py [--quick] [--device cpu|cuda] [--subset N]

For each model (the demo's `smallcnn` on 16×16 images, `resnet20-noskip` at 32×32 on the real
CIFAR-10 subset where present, else random images) it prints points/s and effective GFLOP/s
(FLOPs of one forward pass over the subset, counted with FlopCounterMode, per second) of

- the engine (`GridEngine`, the strategy `lossart grid` picks for the device; on a CPU eager and
  compiled with torch.compile, as `lossart grid` runs grids of 20000+ points), and
- a reference loop in the original mode-connectivity code's style: weights copied into the model
  (`load_flat_`), BN statistics recomputed by a training-mode pass over the subset, then an
  eval-mode pass, autograd left on;

then the machine's fp32 matmul rate (torch.mm on large square matrices; on CUDA also bf16 and the
memory bandwidth of a large device copy), measured in the same run. The last two lines are, for
resnet20-noskip, `engine/reference <ratio>` and `engine/matmul <ratio>` (compiled engine on a CPU;
the eager engine's ratios are printed just before them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lossart.geometry.weights import ParamLayout, flat_params, load_flat_  # noqa: E402
from lossart.grid.engine import EngineConfig, GridEngine  # noqa: E402
from lossart.models import ModelSpec, create_model  # noqa: E402

MM_REPS = 3
CIFAR = REPO.parent / "shared" / "data" / "cifar10-subset.npz"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(fns: dict[str, callable], device: torch.device, rounds: int) -> dict[str, float]:
    """Fastest seconds per call of each function, the functions interleaved round by round.

    Interleaving and keeping the best round make the ratios robust to other load on a shared
    machine: each contender gets its quietest moment, and all see the same conditions.
    """
    for fn in fns.values():  # warm-up
        fn()
    sync(device)
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def matmul_fn(device: torch.device, dtype: torch.dtype, n: int):
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    c = torch.empty(n, n, device=device, dtype=dtype)

    def run() -> None:  # several products per call: a timed call about as long as an engine call
        for _ in range(MM_REPS):
            torch.mm(a, b, out=c)

    return run


def copy_fn(device: torch.device):
    src = torch.empty(2**28, device=device)  # 1 GiB
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


def subset_for(name: str, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Inputs for `name`: shapes / real CIFAR-10 subset where present, else random images."""
    g = torch.Generator().manual_seed(0)
    if name == "smallcnn":
        from lossart.data import load_dataset
        from lossart.data.batches import eval_subset

        x, y = eval_subset(load_dataset("shapes"), "train", n, device=device)
        return x, y, "shapes 16x16"
    if CIFAR.is_file():
        from lossart.data import load_dataset
        from lossart.data.batches import eval_subset

        x, y = eval_subset(load_dataset(f"npz:{CIFAR}"), "train", n, device=device)
        return x, y, "CIFAR-10 subset 32x32"
    x = torch.randn(n, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    return x, y, "random 32x32 images"


def reference_point(model, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    """The original code's way: copy weights in, recompute BN stats in train mode, eval pass."""
    load_flat_(model, w)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass, as the original bn_update
    model.train()
    model(x)
    model.eval()
    out = model(x)
    loss = F.cross_entropy(out, y)
    (out.argmax(1) == y).float().mean().item()
    return loss.item()


def bench_model(name: str, shape, classes: int, args, device: torch.device, mm: dict) -> dict:
    """Interleaved best-of timings of the engine(s), the reference loop and the matmul."""
    spec = ModelSpec(name, classes, shape, {})
    torch.manual_seed(0)
    model = create_model(spec).to(device)
    layout = ParamLayout.of(model)
    w1 = flat_params(model)
    g = torch.Generator().manual_seed(1)
    u = torch.randn(layout.numel, generator=g)
    u /= u.norm()
    v = torch.randn(layout.numel, generator=g)
    v = v - (v @ u) * u
    v /= v.norm()
    u, v = u.to(device), v.to(device)
    x, y, what = subset_for(name, args.subset, device)

    configs = [("engine", EngineConfig(device=str(device)))]
    if device.type == "cuda":
        configs += [
            ("engine tf32", EngineConfig(device=str(device), dtype="tf32")),
            ("engine bf16", EngineConfig(device=str(device), dtype="bfloat16")),
        ]
    else:
        configs += [("engine compiled", EngineConfig(device=str(device), compile=True))]
    if device.type == "cpu" and not args.quick:
        configs += [
            ("engine vmap", EngineConfig(device=str(device), strategy="vmap", batch_points=4)),
        ]
    print(f"{name}: {layout.numel:,} parameters, subset {len(x)} ({what})")
    fns, points, described = {}, {}, {}
    for label, cfg in configs:
        engine = GridEngine(model, layout, x, y, "classification", cfg)
        engine.set_plane(w1, u, v)
        b = engine.batch_points if device.type == "cuda" else 2
        xs = [0.1 * (k % 7) for k in range(b)]
        ys = [0.05 * (k % 5) for k in range(b)]
        fns[label] = lambda e=engine, xs=xs, ys=ys: e.evaluate(xs, ys)
        points[label], described[label] = b, engine.describe()
        flops = engine.flops_per_point
    ws = [w1 + 0.1 * k * u for k in range(3)]
    fns["reference"] = lambda: [reference_point(model, w, x, y) for w in ws[:2]]
    points["reference"] = 2
    fns.update(mm)
    best = best_of(fns, device, args.rounds)
    rates = {k: points[k] / best[k] for k in points}
    for k, r in rates.items():
        tail = f"  [{described[k]}]" if k in described else ""
        print(f"  {k:<16} {r:10.2f} points/s {flops * r / 1e9:9.1f} GFLOP/s{tail}")
    print(f"  FLOPs/point       {flops / 1e9:.3f} GFLOP ({flops / len(x) / 1e6:.1f} MFLOP/sample)")
    return {"rates": rates, "best": best, "flops": flops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a short run (under a minute on 2 cores)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument(
        "--subset", type=int, default=None, help="samples (default 256; 1024 on CUDA)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds")
    args = parser.parse_args()
    os.environ.setdefault("LOSSART_QUIET", "1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks/grid.py: --device cuda but CUDA is not available")
    if args.subset is None:
        args.subset = 1024 if device.type == "cuda" else 256
    if args.rounds is None:
        args.rounds = 3 if args.quick else 8
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}")
    n = 8192 if device.type == "cuda" else 2048
    mm = {"matmul fp32": matmul_fn(device, torch.float32, n)}
    if device.type == "cuda":
        mm["matmul bf16"] = matmul_fn(device, torch.bfloat16, n)
        mm["memory copy"] = copy_fn(device)
    bench_model("smallcnn", (3, 16, 16), 6, args, device, {})
    r = bench_model("resnet20-noskip", (3, 32, 32), 10, args, device, mm)
    mm_rate = 2 * n**3 * MM_REPS / r["best"]["matmul fp32"] / 1e9
    print(f"matmul fp32     {mm_rate:10.1f} GFLOP/s (torch.mm {n}x{n}, interleaved)")
    if device.type == "cuda":
        print(
            f"matmul bf16     {2 * n**3 * MM_REPS / r['best']['matmul bf16'] / 1e9:10.1f} GFLOP/s"
        )
        print(
            f"memory copy     {2 * 2**30 / r['best']['memory copy'] / 1e9:10.1f} GB/s (1 GiB, read+write)"
        )
    rates = r["rates"]
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    eager = rates["engine"]
    print(f"eager engine/reference {eager / rates['reference']:.2f}")
    print(f"eager engine/matmul {eager * r['flops'] / 1e9 / mm_rate:.2f}")
    # The ratio lines: the engine as `lossart grid` runs a real-size grid (compiled on a CPU).
    best = rates.get("engine compiled", eager)
    print(f"engine/reference {best / rates['reference']:.2f}")
    print(f"engine/matmul {best * r['flops'] / 1e9 / mm_rate:.2f}")


if __name__ == "__main__":
    main()
