"""Grid evaluation strategies on a GPU against the GPU's own matmul rate, and a GPU render.

    python benchmarks/gpu.py [--json OUT.json] [--subset 1024] [--dry-run]
                             [--render BUNDLE_OR_RUN --size 1920x1080]

resnet20-noskip over `--subset` images (the shared CIFAR-10 subset where present, else random
32×32 images), random weights in a random plane. Each strategy evaluates the same points after
a warm-up; the figure is points/s and effective GFLOP/s (FLOPs of one forward pass over the
subset × points/s) against the fp32, TF32 and bf16 `torch.mm` rates measured in the same run:

- `vmap B` (the CUDA default, B points per launch, fp32), for several B and the engine's own
  choice from free memory; `vmap tf32`, `vmap bf16` at that B;
- `point` (one channels-last pass per point, the CPU default) in fp32 and bf16, and compiled
  (`torch.compile` of the per-point pass) in bf16;
- `graph B`: the vmap block captured once in a CUDA graph and replayed with new coordinates
  (launch overhead removed), where capture works.

Also the relative loss differences of TF32 and bf16 against fp32 at the same points. With
`--render`, the still of that bundle rendered with Cycles (device auto: a GPU if any) at
`--size`. `--dry-run` runs every part that needs no CUDA at tiny sizes on the CPU and says
what it skipped. Everything is printed and, with `--json`, written to one JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lossart.geometry.weights import ParamLayout, flat_params  # noqa: E402
from lossart.grid.engine import (  # noqa: E402
    EngineConfig,
    GridEngine,
    loss_and_accuracy,
    point_weights,
)
from lossart.models import ModelSpec, create_model  # noqa: E402
from lossart.precision import precision  # noqa: E402

CIFAR = REPO.parent / "shared" / "data" / "cifar10-subset.npz"
TARGET_POINTS_PER_S = 800  # issue 15: resnet20-noskip over 1024 images on an H100/H200


def dump(args, report: dict) -> None:
    """Write the report so far: a step killed at its time limit still leaves its figures."""
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, rounds: int) -> float:
    """Best seconds per call after one warm-up call."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_rates(device: torch.device, n: int, rounds: int) -> dict[str, float]:
    """GFLOP/s of torch.mm n×n in fp32 (TF32 off), TF32 and bf16 (the last two on CUDA)."""
    out = {}
    kinds = [("fp32", torch.float32, False)]
    if device.type == "cuda":
        kinds += [("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)]
    old = torch.backends.cuda.matmul.allow_tf32
    try:
        for name, dtype, tf32 in kinds:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            c = torch.empty(n, n, device=device, dtype=dtype)
            s = timed(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), device, rounds)
            out[name] = 2 * n**3 / s / 1e9
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return out


def setup(subset: int, device: torch.device):
    torch.manual_seed(0)
    model = create_model(ModelSpec("resnet20-noskip", 10, (3, 32, 32), {}))
    layout = ParamLayout.of(model)
    w1 = flat_params(model)
    g = torch.Generator().manual_seed(1)
    u = torch.randn(layout.numel, generator=g)
    u /= u.norm()
    v = torch.randn(layout.numel, generator=g)
    v -= (v @ u) * u
    v /= v.norm()
    if CIFAR.is_file():
        from lossart.data import load_dataset
        from lossart.data.batches import eval_subset

        x, y = eval_subset(load_dataset(f"npz:{CIFAR}"), "train", subset, device="cpu")
        what = "CIFAR-10 subset"
    else:
        x = torch.randn(subset, 3, 32, 32, generator=g)
        y = torch.randint(0, 10, (subset,), generator=g)
        what = "random images"
    return model, layout, w1, u, v, x, y, what


def coordinates(n: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(3)
    xy = (g.random((n, 2)) * 2 - 1) * 2.0
    return xy[:, 0], xy[:, 1]


def graph_runner(e: GridEngine, block: int):
    """A CUDA graph of one vmap block: static coordinates in, static losses out."""
    from torch.func import functional_call, vmap

    xs = torch.zeros(block, device=e.device)
    ys = torch.zeros(block, device=e.device)
    model, x, y, task, layout = e.model, e.x, e.y, e.task, e.layout

    def one(p):
        return loss_and_accuracy(functional_call(model, p, (x,)), y, task)

    def step():
        params = layout.unflatten(point_weights(e.origin, e.u_hat, e.v_hat, xs, ys))
        return vmap(one)(params)

    with torch.inference_mode(), precision("float32", e.device):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step()

    def run(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        losses = []
        with torch.inference_mode():
            for k in range(0, len(px), block):
                xs.copy_(torch.as_tensor(px[k : k + block], dtype=torch.float32))
                ys.copy_(torch.as_tensor(py[k : k + block], dtype=torch.float32))
                graph.replay()
                losses.append(out[0].float().cpu().numpy())
        return np.concatenate(losses)

    return run


def strategies(args, device: torch.device) -> list[tuple[str, dict, int]]:
    """(label, EngineConfig fields, points per timed call)."""
    if args.dry_run:
        return [
            ("vmap 2", {"strategy": "vmap", "batch_points": 2}, 2),
            ("point", {"strategy": "point"}, 2),
            ("point bf16", {"strategy": "point", "dtype": "bfloat16"}, 2),
        ]
    blocks = [16, 32, 64, 128, 256]
    out = [(f"vmap {b}", {"strategy": "vmap", "batch_points": b}, 2 * b) for b in blocks]
    out += [
        ("vmap auto", {"strategy": "vmap"}, 0),
        ("vmap tf32", {"strategy": "vmap", "dtype": "tf32"}, 0),
        ("vmap bf16", {"strategy": "vmap", "dtype": "bfloat16"}, 0),
        ("point", {"strategy": "point"}, 32),
        ("point bf16", {"strategy": "point", "dtype": "bfloat16"}, 32),
        ("point bf16 compiled", {"strategy": "point", "dtype": "bfloat16", "compile": True}, 32),
    ]
    return out


def bench(args, device: torch.device, report: dict) -> None:
    model, layout, w1, u, v, x, y, what = setup(args.subset, device)
    report["model"] = {"name": "resnet20-noskip", "subset": args.subset, "images": what}
    n = 512 if args.dry_run else 8192
    mm = matmul_rates(device, n, args.rounds)
    report["matmul_gflops"] = mm
    print(f"matmul {n}x{n} GFLOP/s: " + ", ".join(f"{k} {r:.0f}" for k, r in mm.items()))
    rows: dict[str, dict] = {}
    flops = None
    skipped = []
    for label, cfg, count in strategies(args, device):
        if device.type != "cuda" and cfg.get("dtype") == "tf32":
            skipped.append(f"{label}: needs CUDA")
            continue
        try:
            e = GridEngine(model, layout, x, y, "classification", EngineConfig(str(device), **cfg))
            e.set_plane(w1, u, v)
            flops = flops or e.flops_per_point
            k = count or 2 * e.batch_points
            px, py = coordinates(k)
            best = timed(lambda e=e, px=px, py=py: e.evaluate(px, py), device, args.rounds)
            rate = k / best
            rows[label] = {
                "points_per_s": rate,
                "gflops": flops * rate / 1e9,
                "engine": e.describe(),
                "points": k,
            }
            print(
                f"  {label:<22} {rate:9.1f} points/s {flops * rate / 1e9:9.1f} GFLOP/s  [{e.describe()}]"
            )
            if label == "vmap auto":
                report["auto_batch_points"] = e.batch_points
        except Exception as exc:  # noqa: BLE001 - one strategy failing must not end the check
            rows[label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            print(f"  {label:<22} failed: {rows[label]['error']}")
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            report["strategies"] = rows
            dump(args, report)
    if device.type == "cuda":
        block = report.get("auto_batch_points", 64)
        label = f"graph {block}"
        try:
            e = GridEngine(
                model,
                layout,
                x,
                y,
                "classification",
                EngineConfig(str(device), strategy="vmap", batch_points=block),
            )
            e.set_plane(w1, u, v)
            run = graph_runner(e, block)
            px, py = coordinates(2 * block)
            ref = e.evaluate(px, py).loss
            got = run(px, py)
            best = timed(lambda: run(px, py), device, args.rounds)
            rate = len(px) / best
            rows[label] = {
                "points_per_s": rate,
                "gflops": flops * rate / 1e9,
                "max_rel_vs_vmap": float(np.max(np.abs(got - ref) / ref)),
            }
            print(
                f"  {label:<22} {rate:9.1f} points/s {flops * rate / 1e9:9.1f} GFLOP/s  [CUDA graph replay]"
            )
        except Exception as exc:  # noqa: BLE001
            rows[label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            print(f"  {label:<22} failed: {rows[label]['error']}")
    else:
        skipped.append("CUDA graphs: need CUDA")
    if args.dry_run:
        skipped.append("compiled per-point pass: dry run (compiling takes 20-60 s)")
    report["strategies"] = rows
    report["flops_per_point"] = flops
    rates = {k: r["points_per_s"] for k, r in rows.items() if "points_per_s" in r}
    if rates:
        best = max(rates, key=rates.get)
        report["best"] = {"strategy": best, "points_per_s": rates[best]}
        report["best"]["vs_matmul_fp32"] = flops * rates[best] / 1e9 / mm["fp32"]
        if "bf16" in mm:
            report["best"]["vs_matmul_bf16"] = flops * rates[best] / 1e9 / mm["bf16"]
        report["best"]["target_points_per_s"] = TARGET_POINTS_PER_S
        report["best"]["target_met"] = device.type == "cuda" and rates[best] >= TARGET_POINTS_PER_S
        print(f"best: {best} {rates[best]:.1f} points/s "
              f"({report['best']['vs_matmul_fp32']:.2f}x the fp32 matmul rate)")  # fmt: skip
    report["precision"] = precision_differences(model, layout, w1, u, v, x, y, device, args)
    report.setdefault("skipped", []).extend(skipped)


def precision_differences(model, layout, w1, u, v, x, y, device, args) -> dict:
    """Relative loss differences of tf32 (CUDA) and bf16 against fp32 at the same points."""
    px, py = coordinates(4 if args.dry_run else 64)
    out = {}
    ref = None
    for dtype in ("float32", "tf32", "bfloat16"):
        if dtype == "tf32" and device.type != "cuda":
            continue
        e = GridEngine(
            model, layout, x, y, "classification", EngineConfig(str(device), dtype=dtype)
        )
        e.set_plane(w1, u, v)
        loss = e.evaluate(px, py).loss.astype(np.float64)
        if ref is None:
            ref = loss
            continue
        rel = np.abs(loss - ref) / ref
        out[dtype] = {
            "median_rel": float(np.median(rel)),
            "max_rel": float(rel.max()),
            "max_log10": float(np.abs(np.log10(loss / ref)).max()),
        }
        print(f"  {dtype} vs fp32: median rel {np.median(rel):.2e}, max rel {rel.max():.2e}")
    return out


def render(args, report: dict) -> None:
    from lossart.render import Look, checked_size, render_still

    size = (64, 36) if args.dry_run else checked_size(args.size)
    samples = 2 if args.dry_run else args.samples
    look = Look(samples=samples, size=size, render_device="CPU" if args.dry_run else "auto")
    out = Path(
        args.render_out
        or (Path(args.json).parent if args.json else Path(".")) / "device_check_still.png"
    )
    res = render_still(args.render, out, look=look)
    report["render"] = {
        "size": list(size),
        "samples": samples,
        "device": res.device,
        "seconds": res.seconds,
        "out": str(res.out),
    }
    print(f"render {size[0]}x{size[1]}, {samples} samples: {res.device}, {res.seconds:.1f} s")


def blender_available() -> bool:
    import importlib.util
    import shutil

    return importlib.util.find_spec("bpy") is not None or shutil.which("blender") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--subset", type=int, default=None, help="images (default 1024)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--device", default=None, help="default cuda (cpu in a dry run)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--render", help="also render the still of this run or bundle")
    parser.add_argument("--render-out", help="PNG path of that still")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--no-bench", action="store_true", help="only the render")
    args = parser.parse_args()
    os.environ.setdefault("LOSSART_QUIET", "1")
    args.subset = args.subset or (16 if args.dry_run else 1024)
    args.rounds = args.rounds or (1 if args.dry_run else 3)
    device = torch.device(args.device or ("cpu" if args.dry_run else "cuda"))
    report: dict = {"dry_run": args.dry_run, "torch": torch.__version__, "skipped": []}
    if device.type == "cuda" and not torch.cuda.is_available():
        report["skipped"].append("GPU benchmark: CUDA is not available")
        print("benchmarks/gpu.py: CUDA is not available; use --dry-run on a CPU-only machine")
        args.no_bench = True
    if device.type == "cuda" and torch.cuda.is_available():
        report["device"] = torch.cuda.get_device_name(device)
    else:
        report["device"] = f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {report['device']}; torch {torch.__version__}")
    failed = False
    if not args.no_bench:
        try:
            bench(args, device, report)
        except Exception:  # noqa: BLE001 - the report says what failed
            report["bench_error"] = traceback.format_exc()[-2000:]
            print(report["bench_error"])
            failed = True
    if args.render and args.dry_run and not blender_available():
        report["skipped"].append("render: neither the bpy module nor a blender executable here")
    elif args.render:
        try:
            render(args, report)
        except Exception:  # noqa: BLE001
            report["render_error"] = traceback.format_exc()[-2000:]
            print(report["render_error"])
            failed = True
    for line in report["skipped"]:
        print(f"skipped: {line}")
    dump(args, report)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
