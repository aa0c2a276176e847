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

then the machine's fp32 and bf16 matmul rates (torch.mm on large square matrices; on CUDA also
the memory bandwidth of a large device copy), measured in the same run. For resnet20-noskip it
prints `engine/reference <ratio>` and `engine/matmul <ratio>` (compiled engine on a CPU; the eager
engine's ratios just before them), then the bfloat16 engine (`--dtype bfloat16`, compiled on a
CPU as `lossart grid` runs it, eager beside it):

- `engine/bf16_vs_fp32`: its points/s ÷ the float32 engine's (both compiled on a CPU), same run;
- `engine/bf16_matmul`: its effective FLOP rate ÷ the bf16 matmul rate, same run;
- `engine/bf16_max_log10`: the largest |log10 loss| difference from float32 over a 10×10 lattice
  spread across the 16:9 window of a trained run's last frame (`--run`: a curve run, or any run
  `lossart grid` reads, e.g. `lossart plane --around CKPT`; default the real subject's run,
  /work/runs/subject/video or renders/resnet20-noskip/video), or `n/a`.
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
# The shared folder beside the checkout (/work/main) or beside its worktree folder (/work/wt/x).
CIFAR = next((p for p in (REPO.parent / "shared" / "data" / "cifar10-subset.npz",
                          REPO.parents[1] / "shared" / "data" / "cifar10-subset.npz")
              if p.is_file()), REPO.parent / "shared" / "data" / "cifar10-subset.npz")  # fmt: skip
TRAINED_RUNS = (
    REPO.parent / "runs" / "subject" / "video",
    REPO.parents[1] / "runs" / "subject" / "video",
    REPO / "renders" / "resnet20-noskip" / "video",
)


def cpu_name() -> str:
    """/proc/cpuinfo's model name and whether the CPU has AMX bfloat16 units."""
    name = "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                        name)  # fmt: skip
    except OSError:
        pass
    amx = torch.cpu.get_capabilities().get("amx_bf16")
    return f"{name} ({'AMX bf16' if amx else 'no AMX'})"


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
        configs += [
            ("engine compiled", EngineConfig(device=str(device), compile=True)),
            ("engine bf16", EngineConfig(device=str(device), dtype="bfloat16", compile=False)),
            ("engine bf16 compiled",
             EngineConfig(device=str(device), dtype="bfloat16", compile=True)),
        ]  # fmt: skip
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
        print(f"  {k:<21} {r:10.2f} points/s {flops * r / 1e9:9.1f} GFLOP/s{tail}")
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
    parser.add_argument("--run", help="trained curve run for engine/bf16_max_log10")
    parser.add_argument("--accuracy-subset", type=int, default=128,
                        help="samples per point for engine/bf16_max_log10 (default 128)")
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
        name = f"{cpu_name()}, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}")
    n = 8192 if device.type == "cuda" else 2048
    mm = {"matmul fp32": matmul_fn(device, torch.float32, n),
          "matmul bf16": matmul_fn(device, torch.bfloat16, n)}  # fmt: skip
    if device.type == "cuda":
        mm["memory copy"] = copy_fn(device)
    bench_model("smallcnn", (3, 16, 16), 6, args, device, {})
    r = bench_model("resnet20-noskip", (3, 32, 32), 10, args, device, mm)
    mm_rate = 2 * n**3 * MM_REPS / r["best"]["matmul fp32"] / 1e9
    print(f"matmul fp32     {mm_rate:10.1f} GFLOP/s (torch.mm {n}x{n}, interleaved)")
    mm_bf16 = 2 * n**3 * MM_REPS / r["best"]["matmul bf16"] / 1e9
    print(f"matmul bf16     {mm_bf16:10.1f} GFLOP/s")
    if device.type == "cuda":
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
    # bfloat16: as `lossart grid --dtype bfloat16` runs a real-size grid (compiled on a CPU).
    label = "engine bf16" if device.type == "cuda" else "engine bf16 compiled"
    bf16 = rates[label]
    if device.type == "cpu":
        print(f"eager bf16_vs_fp32 {rates['engine bf16'] / eager:.2f}")
    print(f"engine/bf16_vs_fp32 {bf16 / best:.2f}")
    print(f"engine/bf16_matmul {bf16 * r['flops'] / 1e9 / mm_bf16:.2f}")
    diff = bf16_max_log10(args, device)
    print(f"engine/bf16_max_log10 {'n/a' if diff is None else f'{diff:.5f}'}")


def bf16_max_log10(args, device: torch.device) -> float | None:
    """Largest |log10 loss| difference, bfloat16 vs float32, over 10×10 points of a trained
    run's last frame (a curve run or any run `lossart grid` reads), spread evenly across its
    16:9 window (edges included); None: no run."""
    import numpy as np

    from lossart.geometry.plane import fit_aspect
    from lossart.grid.engine import grid_axis
    from lossart.grid.planes import grid_source
    from lossart.runs import open_run

    path = Path(args.run) if args.run else next((p for p in TRAINED_RUNS if p.is_dir()), None)
    if path is None or not (path / "run.json").is_file():
        tried = [str(path)] if path else [str(p) for p in TRAINED_RUNS]
        print(f"  (no trained curve run at {' or '.join(tried)}: pass --run RUN)")
        return None
    source = grid_source(open_run(path))
    last = source.frames[-1]
    plane = source.plane(last)
    window = fit_aspect(source.window(0.2), 16 / 9)
    gx, gy = np.meshgrid(grid_axis(*window.x_range, 10), grid_axis(*window.y_range, 10))
    from lossart.data import load_dataset
    from lossart.data.batches import eval_subset

    x, y = eval_subset(load_dataset(source.data_spec), "train", args.accuracy_subset, device=device)
    layout = ParamLayout.of(source.model)
    loss = {}
    for dtype in ("float32", "bfloat16"):
        cfg = EngineConfig(device=str(device), dtype=dtype, compile=device.type == "cpu")
        engine = GridEngine(source.model, layout, x, y, "classification", cfg)
        engine.set_plane(plane.origin, plane.u_hat, plane.v_hat)
        loss[dtype] = engine.evaluate(gx.ravel(), gy.ravel()).loss
    diff = np.abs(np.log10(loss["bfloat16"]) - np.log10(loss["float32"]))
    print(f"  {path} frame {last}: 100 points, subset {len(x)}, loss "
          f"{loss['float32'].min():.3g}..{loss['float32'].max():.3g}; |dlog10| median "
          f"{np.median(diff):.5f}, max {diff.max():.5f}")
    return float(diff.max())


if __name__ == "__main__":
    main()
