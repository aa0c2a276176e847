"""Cost of one curve-training step against one ordinary training step of the same model.

    .venv/bin/python benchmarks/curve_step.py [--model smallcnn] [--batch 128] [--threads 1]

A curve step forms φ(t) from the bends, evaluates the model functionally at it
(`torch.func.functional_call`) and back-propagates into the bends through the curve
coefficients. The reference, measured in the same run on the same inputs and thread count, is a
plain SGD step on the module's own parameters. Prints ms per step (best of `--repeat` rounds)
and the ratio curve/plain, which is what functional evaluation and the curve cost.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LOSSART_QUIET", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lossart.geometry.curves import CurveSpec, init_bends  # noqa: E402
from lossart.geometry.weights import ParamLayout, flat_params  # noqa: E402
from lossart.models import ModelSpec, create_model  # noqa: E402
from lossart.training.curve import curve_objective  # noqa: E402

SHAPES = {"smallcnn": (4, (3, 16, 16)), "resnet20-noskip": (10, (3, 32, 32))}


def best_ms(fn, steps: int, repeat: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        best = min(best, (time.perf_counter() - t) / steps)
    return 1000 * best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smallcnn", choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kind", default="bezier", choices=["bezier", "polychain"])
    ap.add_argument("--bends", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    classes, shape = SHAPES[args.model]
    model = create_model(ModelSpec(args.model, classes, shape)).train()
    x = torch.randn(args.batch, *shape)
    y = torch.randint(0, classes, (args.batch,))

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def plain() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    layout = ParamLayout.of(model)
    w1 = flat_params(model)
    w2 = w1 + 0.01 * torch.randn_like(w1)
    spec = CurveSpec(args.kind, args.bends)
    bends = init_bends(spec, w1, w2).requires_grad_(True)
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    copt = torch.optim.SGD([bends], lr=1e-3, momentum=0.9)
    ts = iter(torch.rand(10_000).tolist())

    def curve() -> None:
        objective, _ = curve_objective(
            model, layout, buffers, spec, w1, bends, w2, next(ts), x, y, "classification", 5e-4
        )
        copt.zero_grad(set_to_none=True)
        objective.backward()
        copt.step()

    ref = best_ms(plain, args.steps, args.repeat)
    cur = best_ms(curve, args.steps, args.repeat)
    print(
        f"{args.model} batch {args.batch}, {args.threads} thread(s), {layout.numel:,} parameters, "
        f"{spec.kind} with {spec.bends} bend(s)"
    )
    print(f"  plain training step (reference): {ref:8.2f} ms")
    print(f"  curve training step:             {cur:8.2f} ms   ratio {cur / ref:.2f}")


if __name__ == "__main__":
    main()
