"""The `lossart` command line: a thin shell over the library.

Each subcommand parses flags and calls one documented library function; no logic lives here.
Errors raised as `LossartError` (or, from the bundle format the add-on shares, lossart.format, its
`BundleError`) print as one line (`lossart: error: ...`) with exit status 2; `--debug` shows the
traceback instead.

Layout: one section per pipeline area; each `@command` function adds its subparser and sets
`run` to the handler. Sections are independent of each other.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable

from lossart import __version__
from lossart.checks import (
    MAX_IMAGE_SIDE,
    integer,
    nonneg_int,
    positive_float,
    positive_int,
    real,
)
from lossart.errors import LossartError
from lossart.precision import DTYPE_HELP, DTYPES

IMAGE_SIDE = integer(1, MAX_IMAGE_SIDE)

_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def command(add: Callable[[argparse._SubParsersAction], None]):
    """Register a function that adds one subcommand to the parser."""
    _COMMANDS.append(add)
    return add


# ---------------------------------------------------------------- compute flags shared by commands
#
# One meaning per flag name across train, curve, eval-curve, grid, plane, terrain, ensemble and
# functions (README, "Compute flags"): --device is cpu | cuda | cuda:N | auto everywhere;
# --frames N is a count (curve), --select-frames SPEC picks recorded frames (grid, terrain);
# --resolution is N or WxH (grid, plane, functions), parsed by one function.

DEVICE_HELP = "cpu, cuda, cuda:N or auto (CUDA if there is a GPU); default cpu"  # devices.py accepts these
FRAMES_SPEC = "start:stop:step, i, or i,j,k"


def _device_name(text: str) -> str:
    """`--device` spelled as one of the accepted names (whether it exists is checked later)."""
    import re

    if not re.fullmatch(r"\s*(cpu|cuda|cuda:\d+|auto)\s*", text.lower()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda, cuda:N or auto")
    return text.strip()


def _device_flag(p: argparse.ArgumentParser, note: str = "") -> None:
    p.add_argument("--device", type=_device_name, default="cpu", help=DEVICE_HELP + note)


def _threads_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup, help: str) -> None:
    """`--threads` of the commands whose thread count is no config's own (lossart.options.Threads)."""
    from lossart.options import Threads, add_option_flags

    add_option_flags(p, Threads, helps={"threads": help})


def _dtype_flag(p: argparse.ArgumentParser, note: str) -> None:
    """`--dtype`, default auto: bfloat16 where the hardware has the units (lossart.precision)."""
    p.add_argument("--dtype", choices=DTYPES, default="auto", help=f"{DTYPE_HELP}; {note}")


def _device(args: argparse.Namespace) -> str:
    """`--device` checked, `auto` made concrete (lossart.devices.pick_device)."""
    from lossart.devices import pick_device

    return pick_device(args.device)


def _resolution_type(text: str) -> tuple[int, int]:
    """`--resolution N|WxH` as an argparse type: the one parser of grid, plane and functions
    (GridConfig's), refused at parse time in one line."""
    from lossart.grid.config import parse_resolution
    from lossart.options import OptionError

    try:
        return parse_resolution(text)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(f"{exc.value!r}: {exc.problem}") from None


class _Renamed(argparse.Action):
    """An old flag spelling kept for one release: fills the new flag and says so on stderr."""

    def __init__(self, option_strings, dest, new: str, **kwargs) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(
            f"lossart: note: {option_string} is now {self.new} here; "
            "the old spelling goes away in the next release",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def _select_frames_flag(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """`--select-frames` as GridConfig declares it (parsed once into a FrameSelection; `help`:
    this command's words), and the old spelling `--frames`, hidden, for one release."""
    from lossart.grid.config import GridConfig
    from lossart.options import add_option_flags

    add_option_flags(p, GridConfig, ["select_frames"], helps={"select_frames": help} if help else None)
    parse = p._option_string_actions["--select-frames"].type
    p.add_argument("--frames", dest="select_frames", action=_Renamed, new="--select-frames",
                   type=parse, metavar="A:B:S", help=argparse.SUPPRESS)  # fmt: skip


# ---------------------------------------------------------------- foundation: models, train


def _model_args(pairs: list[str]) -> dict:
    """`--model-arg key=value` pairs to constructor kwargs (values parsed as JSON if they can)."""
    import json

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LossartError(f"--model-arg {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@command
def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo (name, parameters, description)")
    p.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from lossart.models import list_models

    rows = list_models()
    width = max(len(r.name) for r in rows)
    print(f"{'name':<{width}}  {'params':>11}  description")
    for r in rows:
        print(f"{r.name:<{width}}  {r.params:>11,d}  {r.description}")
    print("(parameters at CIFAR-10 shapes; also --model torchvision:NAME, "
          "or your own: --model package.module:factory)")
    return 0


@command
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one endpoint (optimum) and write its checkpoint",
        description="Train one optimum with SGD. Rerun the same command to resume (OUT.partial).",
    )
    p.add_argument(
        "--model",
        help="registry name (see `lossart models`) or package.module:factory; "
        "default: the dataset's (smallcnn for shapes, resnet20 for CIFAR-like images)",
    )
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra model constructor argument (repeatable), e.g. width=32",
    )
    p.add_argument(
        "--data",
        default="shapes",
        help="shapes | blobs2d | wave1d | cifar10 | cifar100 | mnist | fashion-mnist | svhn | "
        "npz:PATH | folder:PATH (default: shapes)",
    )
    p.add_argument(
        "--data-root", default="data", help="folder of torchvision datasets (default: data)"
    )
    p.add_argument(
        "--download", action="store_true", help="download a torchvision dataset if missing"
    )
    p.add_argument(
        "--image-size", type=IMAGE_SIDE, help="image side for folder:PATH datasets (default 64)"
    )
    from lossart.options import add_option_flags
    from lossart.training.config import TrainConfig

    add_option_flags(p, TrainConfig, ["epochs", "batch_size", "lr", "momentum", "wd", "schedule",
                                      "seed"])  # fmt: skip
    p.add_argument("--no-augment", action="store_true", help="train without crop/flip augmentation")
    _device_flag(p)
    _dtype_flag(p, "default auto, resolved once and kept in the checkpoint")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    add_option_flags(p, TrainConfig, ["threads"])
    add_option_flags(p, TrainConfig, ["snapshots"])
    p.add_argument("--out", required=True, help="checkpoint to write, e.g. a.pt")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from lossart.data import parse_data_spec
    from lossart.training.endpoints import TrainConfig, train_endpoint

    device = _device(args)
    cfg = TrainConfig(
        data=parse_data_spec(args.data, args.data_root, args.download, args.image_size),
        model=args.model,
        model_kwargs=_model_args(args.model_arg),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        wd=args.wd,
        schedule=args.schedule,
        seed=args.seed,
        augment=not args.no_augment,
        device=device,
        dtype=args.dtype,
        channels_last=args.channels_last,
        threads=args.threads,
        snapshots=args.snapshots,
        out=args.out,
    )
    ckpt = train_endpoint(cfg)
    m = ckpt.metrics
    acc = ""
    if m.get("test_accuracy") == m.get("test_accuracy"):  # not NaN: classification
        acc = f"test accuracy {m['test_accuracy']:.4f}, train accuracy {m['train_accuracy']:.4f}, "
    print(
        f"wrote {args.out}: {ckpt.model.name}, {acc}test loss {m['test_loss']:.4f}, "
        f"train loss {m['train_loss']:.4f} ({ckpt.extra.get('wall_s', 0.0):.1f} s training)"
    )
    snaps = ckpt.extra.get("snapshots")
    if snaps:
        steps = [r["step"] for r in snaps["records"]]
        print(f"snapshots: {snaps['count']} in {snaps['folder']}/ at steps {steps}")
    return 0


# ---------------------------------------------------------------- your own weights: import


def _weights_flags(p: argparse.ArgumentParser, required: bool = False) -> None:
    """--model and friends: the architecture of a plain state_dict file."""
    p.add_argument(
        "--model", required=required,
        help="the weights' architecture: a zoo name (lossart models), torchvision:NAME "
        "(e.g. torchvision:resnet18) or package.module:factory"
        + ("" if required else "; needed for files that are plain state_dicts"),
    )  # fmt: skip
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra model constructor argument (repeatable), e.g. width=32")
    p.add_argument("--num-classes", type=positive_int, help="model outputs (default: the data's classes)")
    p.add_argument("--input-shape", metavar="CxHxW",
                   help="model input shape, e.g. 3x32x32 (default: the data's)")  # fmt: skip


def _weights_options(args: argparse.Namespace) -> dict:
    from lossart.training.import_weights import parse_input_shape

    return {
        "model_kwargs": _model_args(args.model_arg),
        "num_classes": args.num_classes,
        "input_shape": parse_input_shape(args.input_shape) if args.input_shape else None,
    }


def _checkpoint_files(args: argparse.Namespace, paths: list[str], data: str | None) -> list[str]:
    """Checkpoints as they are; plain state_dicts imported beside them (a.pt -> a.lossart.pt)."""
    from lossart.training.import_weights import checkpoint_files

    out = []
    for path, ckpt in zip(paths, checkpoint_files(paths, args.model, data,
                                                  **_weights_options(args))):  # fmt: skip
        if str(ckpt) != str(path):
            print(f"imported {path} -> {ckpt} ({args.model})")
        out.append(str(ckpt))
    return out


@command
def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="wrap a plain PyTorch state_dict into a lossart checkpoint",
        description="Load STATE_DICT (torch.save(model.state_dict(), path), or a dict holding it "
        "under 'state_dict', 'model_state_dict' or 'model') into --model, evaluate it on --data "
        "as `lossart train` does, and write a checkpoint that curve, plane and grid take.",
    )
    p.add_argument("state_dict", metavar="STATE_DICT", help="the weights file")
    _weights_flags(p, required=True)
    p.add_argument("--data", required=True,
                   help="the data the weights were trained on: a lossart dataset name, "
                   "npz:PATH, folder:PATH or package.module:factory")  # fmt: skip
    p.add_argument("--data-root", default="data", help="folder of torchvision datasets")
    p.add_argument("--download", action="store_true", help="download a torchvision dataset")
    p.add_argument("--image-size", type=IMAGE_SIDE, help="image side for folder:PATH datasets")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed to record for these weights")
    p.add_argument("--device", type=_device_name, default="cpu", help="where to evaluate the metrics")
    _threads_flag(p, "CPU threads (default: 1 for the built-in data)")
    p.add_argument("--out", required=True, help="checkpoint to write, e.g. a_ckpt.pt")
    p.set_defaults(run=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from lossart.data import parse_data_spec
    from lossart.training.import_weights import import_state_dict

    ckpt = import_state_dict(
        args.state_dict,
        args.model,
        parse_data_spec(args.data, args.data_root, args.download, args.image_size),
        args.out,
        **_weights_options(args),
        device=args.device,
        seed=args.seed,
        threads=args.threads,
    )
    m = ckpt.metrics
    acc = ""
    if m.get("test_accuracy") == m.get("test_accuracy"):  # not NaN: classification
        acc = f"test accuracy {m['test_accuracy']:.4f}, train accuracy {m['train_accuracy']:.4f}, "
    print(f"wrote {args.out}: {ckpt.model.name} on {ckpt.data.name}, {acc}"
          f"test loss {m['test_loss']:.4f}, train loss {m['train_loss']:.4f}")  # fmt: skip
    return 0


# ---------------------------------------------------------------- curves: curve, eval-curve


@command
def _add_curve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "curve",
        help="train a low-loss curve between two endpoints, recording frames",
        description="Train the bends of a Bezier curve or polygonal chain between two checkpoints "
        "(Garipov et al. 2018), recording snapshots (frames) for a video. Rerunning the same "
        "command resumes an interrupted run.",
    )
    p.add_argument("w1", help="first endpoint: a checkpoint (lossart train, lossart import) "
                   "or a plain state_dict with --model and --data")
    p.add_argument("w2", help="second endpoint (same model)")
    p.add_argument("--out", required=True, help="run folder to create (or resume)")
    from lossart.geometry.specs import CurveSpec
    from lossart.options import add_option_flags
    from lossart.training.config import CurveConfig

    add_option_flags(p, CurveSpec)
    add_option_flags(p, CurveConfig, ["epochs", "lr", "wd", "momentum", "batch_size", "seed",
                                      "frames", "frame_spacing", "init_noise"])  # fmt: skip
    p.add_argument("--no-augment", action="store_true", help="train without data augmentation")
    p.add_argument("--data", help="dataset (default: the endpoints' dataset)")
    _weights_flags(p)
    _device_flag(p)
    _dtype_flag(p, "default auto, resolved once and kept in the run (a resumed curve keeps it)")
    add_option_flags(p, CurveConfig, ["threads"])
    p.set_defaults(run=_run_curve)


def _run_curve(args: argparse.Namespace) -> int:
    import time

    from lossart.training.curve import CurveConfig, train_curve

    start = time.perf_counter()
    w1, w2 = _checkpoint_files(args, [args.w1, args.w2], args.data)
    cfg = CurveConfig(
        w1=w1, w2=w2, out=args.out, kind=args.kind, bends=args.bends, epochs=args.epochs,
        lr=args.lr, wd=args.wd, momentum=args.momentum, batch_size=args.batch_size, seed=args.seed,
        frames=args.frames, frame_spacing=args.frame_spacing, init_noise=args.init_noise,
        augment=not args.no_augment, data=args.data, device=_device(args), threads=args.threads,
        dtype=args.dtype,
    )  # fmt: skip
    cr = train_curve(cfg)
    last = cr.frames[-1]
    print(f"curve run {cr.run.root}: {cr.spec.kind} with {cr.spec.bends} bend(s), {cr.total_steps} steps, "
          f"{len(cr.frames)} frames; final train loss {last.train_loss:.4f} "
          f"({time.perf_counter() - start:.1f} s)")
    print(f"next: lossart eval-curve {cr.run.root}")
    return 0


@command
def _add_eval_curve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-curve",
        help="loss and accuracy along the trained curve and the straight segment",
        description="Evaluate both paths at evenly spaced t with BN statistics recomputed at every "
        "point; writes RUN/analyses/eval_curve.{csv,json,png} and prints the barriers.",
    )
    p.add_argument("run_dir", metavar="RUN", help="curve run folder (lossart curve)")
    from lossart.analyses.sampling import PathSampling
    from lossart.options import add_option_flags

    add_option_flags(p, PathSampling)
    p.add_argument("--sharpness", action="store_true",
                   help="also the top Hessian eigenvalue at points along both paths "
                   "(RUN/analyses/sharpness.{json,png})")  # fmt: skip
    add_option_flags(p, PathSampling, ["points"], prefix="sharpness-", defaults={"points": 5})
    _hessian_flags(p, "sharpness-")
    _device_flag(p)
    _threads_flag(p, "CPU threads (default: 1 for the built-in data, else torch's default)")
    p.set_defaults(run=_run_eval_curve)


def _run_eval_curve(args: argparse.Namespace) -> int:
    from lossart.analyses.eval_curve import evaluate_curve_run

    res = evaluate_curve_run(args.run_dir, points=args.points, subset=args.subset,
                             device=_device(args), threads=args.threads)
    print(res.table())
    print(f"train subset {res.train_subset}, test {res.test_size}; wrote {res.files['csv']}, "
          f"{res.files['json']}, {res.files['png']}")
    if args.sharpness:
        from lossart.analyses.sharpness import sharpness_run
        from lossart.curvature.config import HessianConfig

        cfg = HessianConfig(**_hessian_options(args, "sharpness-"), device=_device(args),
                            threads=args.threads)  # fmt: skip
        sharp = sharpness_run(args.run_dir, args.sharpness_points, cfg)
        print(sharp.table())
        print(f"wrote {sharp.files['json']}, {sharp.files['png']}")
    return 0


@command
def _add_line(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "line",
        help="loss and accuracy on the straight line between any two checkpoints",
        description="Evaluate (1-t)A + tB at evenly spaced t with BN statistics recomputed at "
        "every point, as eval-curve does its segment; writes OUT/line.{csv,json,png} and prints "
        "the barrier (max train loss along the line minus the mean of the endpoints').",
    )
    p.add_argument("checkpoints", nargs=2, metavar="CKPT",
                   help="two checkpoints of one model (plain state_dicts with --model, --data)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for line.{csv,json,png}")
    from lossart.analyses.sampling import PathSampling
    from lossart.options import add_option_flags

    add_option_flags(p, PathSampling)
    _weights_flags(p)
    p.add_argument("--data", help="the data of plain state_dicts (see lossart import)")
    p.add_argument("--beside", nargs="+", metavar="DIR", default=[],
                   help="earlier `lossart line --out DIR` results to draw on the same plot "
                   "(OUT/line-compare.png), e.g. A->B beside A->B-aligned")
    _device_flag(p)
    _threads_flag(p, "CPU threads (default: 1 for the built-in data, else torch's default)")
    p.set_defaults(run=_run_line)


def _run_line(args: argparse.Namespace) -> int:
    from lossart.analyses.line import evaluate_line

    a, b = _checkpoint_files(args, args.checkpoints, args.data)
    if args.beside:
        from lossart.analyses.line_compare import read_line

        for folder in args.beside:
            read_line(folder)  # before the work: a missing folder is a one-line error now
    res = evaluate_line(a, b, args.out, points=args.points, subset=args.subset,
                        device=_device(args), threads=args.threads)
    print(res.table())
    print(f"train subset {res.train_subset}, test {res.test_size}; wrote {res.files['csv']}, "
          f"{res.files['json']}, {res.files['png']}")
    if args.beside:
        from pathlib import Path

        from lossart.analyses.line_compare import label_of, plot_lines, read_line

        png = plot_lines([*args.beside, args.out], Path(args.out) / "line-compare.png")
        for folder in [*args.beside, args.out]:
            data = read_line(folder)
            print(f"{label_of(data)}: barrier {data['barrier']:.4f} (test {data['test_barrier']:.4f})")
        print(f"wrote {png}")
    return 0

# ---------------------------------------------------------------- curvature: hessian


HESSIAN_FLAGS = ("subset", "steps", "tol")  # what plane and eval-curve offer with a prefix


def _hessian_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The Hessian's subset flags (hessian; plane --directions hessian; eval-curve --sharpness),
    from HessianConfig's declarations: `--hessian-subset` and so on with `prefix`."""
    from lossart.curvature.config import HessianConfig
    from lossart.options import add_option_flags

    add_option_flags(p, HessianConfig, HESSIAN_FLAGS, prefix=prefix)


def _hessian_options(args: argparse.Namespace, prefix: str = "") -> dict:
    from lossart.curvature.config import HessianConfig
    from lossart.options import options_from_args

    return options_from_args(HessianConfig, args, HESSIAN_FLAGS, prefix=prefix)


@command
def _add_hessian(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hessian",
        help="top eigenvalues, eigenvectors and trace of the loss Hessian at a checkpoint",
        description="Lanczos with full reorthogonalization on Hessian-vector products of the "
        "exact-BN training loss over a fixed subset, restricted to the parameters random planes "
        "move (conv and linear weights; biases and BN too with --keep-bn): the top --k "
        "eigenpairs, the trace (Hutchinson, deflated by the Lanczos basis), optionally the most "
        "negative eigenvalue, each layer's top eigenvalue and the spectral density. Writes "
        "A.hessian.json and A.hessian.pt (the eigenvectors) beside the checkpoint, or into --out; "
        "a stored result for the same checkpoint and settings is reused.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="a lossart checkpoint")
    p.add_argument("--out", metavar="DIR", help="write DIR/hessian.{json,pt} (e.g. a run's analyses/) "
                   "instead of beside the checkpoint")  # fmt: skip
    from lossart.curvature.config import HessianConfig
    from lossart.options import add_option_flags

    add_option_flags(p, HessianConfig, ["k"])
    p.add_argument("--smallest", action="store_true",
                   help="also the most negative eigenvalue (negative curvature: a saddle)")
    add_option_flags(p, HessianConfig, ["trace_samples"])
    p.add_argument("--per-layer", action="store_true", help="top eigenvalue of each layer's block")
    p.add_argument("--density", action="store_true",
                   help="spectral density by stochastic Lanczos quadrature (A.hessian.png)")
    add_option_flags(p, HessianConfig, ["density_probes", "density_steps"])
    p.add_argument("--keep-bn", action="store_true", help="include biases and BN parameters")
    add_option_flags(p, HessianConfig, ["seed", "dtype"])
    p.add_argument("--recompute", action="store_true", help="ignore a stored result")
    _hessian_flags(p)
    _device_flag(p)
    add_option_flags(p, HessianConfig, ["threads"])
    p.set_defaults(run=_run_hessian)


def _run_hessian(args: argparse.Namespace) -> int:
    from lossart.curvature.config import HessianConfig
    from lossart.curvature.files import hessian_files
    from lossart.options import options_from_args

    cfg = HessianConfig(
        **options_from_args(HessianConfig, args), ignore=None if args.keep_bn else "biasbn",
        smallest=args.smallest, per_layer=args.per_layer, density=args.density,
        device=_device(args),
    )  # fmt: skip
    result, paths, reused = hessian_files(args.checkpoint, cfg, args.out, reuse=not args.recompute)
    print(result.table())
    print(("reused " if reused else "wrote ") + ", ".join(str(p) for p in paths.values()))
    return 0


# ---------------------------------------------------------------- grid engine: grid, plane


def _grid_flags(p: argparse.ArgumentParser) -> None:
    """The grid options' flags, generated from GridConfig's declarations, and the run-only ones."""
    from lossart.grid.config import GridConfig
    from lossart.options import add_option_flags

    add_option_flags(p, GridConfig, list(GridConfig.FLAGS))
    _device_flag(p, note="; under torchrun cuda is each rank's local GPU")
    add_option_flags(p, GridConfig, ["dtype"], defaults={"dtype": "auto"}, helps={"dtype": (
        f"{DTYPE_HELP}; default auto: grid.json's, else by the hardware; kept in grid.json"
    )})  # fmt: skip
    p.add_argument("--shard", metavar="i/n", default=None,
                   help="do only shard i of n (scheduler job arrays); any shard assembles finished frames")
    p.add_argument("--overwrite", action="store_true", help="discard existing grids made with other settings")
    p.add_argument("--force", action="store_true", help="run a grid estimated to be absurdly large anyway")


def _grid_config(args: argparse.Namespace):
    from lossart.grid.config import GridConfig
    from lossart.options import options_from_args

    return GridConfig(
        select_frames=getattr(args, "select_frames", None),
        device=_device(args),
        shard=args.shard,
        overwrite=args.overwrite,
        force=args.force,
        dtype=args.dtype,
        **options_from_args(GridConfig, args, list(GridConfig.FLAGS)),
    )


def _print_grid_summary(s) -> None:
    if os.environ.get("RANK", "0") != "0":
        return
    w, h = s.spec["resolution"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    who = f"rank 0 of {world}: " if world > 1 else ""
    what = "unit" if s.adaptive is not None else "tile"
    print(
        f"grid {w}x{h}, {len(s.frames)} frame(s): {who}{s.tiles_computed} {what}(s), {s.points_computed} points "
        f"in {s.seconds:.1f} s ({s.points_per_second:.2f} points/s, "
        f"{s.flops_per_point * s.points_per_second / 1e9:.1f} GFLOP/s effective, "
        f"{s.flops_per_point / 1e9:.3f} GFLOP/point; {s.engine})"
    )
    if s.adaptive and s.adaptive[1]:
        got, total = s.adaptive
        print(
            f"adaptive: {got:,} of {total:,} points evaluated ({total / max(got, 1):.1f}x fewer)"
        )
    if s.waiting:
        print(
            f"frames waiting for other shards' units of a level: {s.waiting[:20]} "
            f"(rerun this shard once they finish)"
        )
    if s.assembled:
        print(f"assembled frames: {s.assembled[:20]}{' ...' if len(s.assembled) > 20 else ''}")
    if s.upgraded:
        more = " ..." if len(s.upgraded) > 20 else ""
        print(f"coordinates added to frames: {s.upgraded[:20]}{more} (grids from an older lossart)")


@command
def _add_grid(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grid",
        help="loss grids in the plane of every curve frame (resumable; torchrun for many workers)",
        description=(
            "Evaluate loss and accuracy with exact BN on a grid in each selected frame's plane, over "
            "one window for all frames. Work is written tile by tile: rerun to resume after any "
            "interruption. Many workers: torchrun --nproc-per-node N -m lossart grid RUN ..."
        ),
    )
    p.add_argument("run_dir", metavar="RUN", help="a curve run folder (or a plane run)")
    _select_frames_flag(p)
    _grid_flags(p)
    p.set_defaults(run=_run_grid)


def _run_grid(args: argparse.Namespace) -> int:
    from lossart.grid.run_grid import grid_run

    _print_grid_summary(grid_run(args.run_dir, _grid_config(args)))
    return 0


@command
def _add_plane(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plane",
        help="the loss grid in the plane of three optima (a run of kind plane3)",
        description="Copy three checkpoints into a new run folder and evaluate the grid in their plane.",
    )
    p.add_argument("checkpoints", nargs="*", metavar="CKPT",
                   help="three checkpoints of one model (plain state_dicts with --model, --data)")
    p.add_argument("--around", metavar="CKPT",
                   help="instead: Li et al.'s random filter-normalized plane around this one "
                   "checkpoint (a run of kind around)")  # fmt: skip
    from lossart.grid.config import AroundPlane
    from lossart.options import add_option_flags

    add_option_flags(p, AroundPlane, ["seed", "span"])
    p.add_argument("--keep-bn", action="store_true",
                   help="--around: keep bias and BN directions (default: zeroed, as Li et al.)")
    add_option_flags(p, AroundPlane, ["directions"])
    _hessian_flags(p, "hessian-")
    p.add_argument("--out", required=True, metavar="RUN", help="the run folder to create (or resume)")
    _weights_flags(p)
    p.add_argument("--data", help="the data of plain state_dicts (see lossart import)")
    _grid_flags(p)
    p.set_defaults(run=_run_plane)


def _run_plane(args: argparse.Namespace) -> int:
    if args.around is not None:
        from lossart.grid.around import around_run

        if args.checkpoints:
            raise LossartError("plane: give three checkpoints or --around CKPT, not both")
        (path,) = _checkpoint_files(args, [args.around], args.data)
        from lossart.curvature.config import HessianConfig

        ignore = None if args.keep_bn else "biasbn"
        seed = 0 if args.seed is None else args.seed
        span = 1.0 if args.span is None else args.span
        hessian = HessianConfig(**_hessian_options(args, "hessian-"), device=_device(args))
        summary = around_run(path, args.out, _grid_config(args), seed, span, ignore,
                             args.directions or "random", hessian)  # fmt: skip
        _print_grid_summary(summary)
        return 0
    from lossart.grid.plane3 import plane_run

    if args.seed is not None or args.span is not None or args.keep_bn or args.directions:
        raise LossartError("plane: --seed, --span, --keep-bn and --directions go with --around CKPT")
    if len(args.checkpoints) != 3:
        raise LossartError(
            f"plane: expected three checkpoints (or --around CKPT), got {len(args.checkpoints)}"
        )
    paths = _checkpoint_files(args, args.checkpoints, args.data)
    _print_grid_summary(plane_run(paths, args.out, _grid_config(args)))
    return 0


@command
def _add_trajectory(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trajectory",
        help="the loss grid in the plane of a training trajectory (PCA of --snapshots)",
        description="Li et al.'s trajectory plot: the first two principal directions of the "
        "snapshots (lossart train --snapshots N) relative to the final weights span a plane "
        "through them; every snapshot is drawn at its projection (the final one at (0, 0)), the "
        "window holds them all plus --margin, and the grid is evaluated there (a run of kind "
        "trajectory: lossart grid, terrain and render work on it as on any run).",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint trained with --snapshots")
    p.add_argument("--out", required=True, metavar="RUN", help="the run folder to create (or resume)")
    from lossart.grid.config import TrajectoryConfig
    from lossart.options import add_option_flags

    add_option_flags(p, TrajectoryConfig)
    p.add_argument("--keep-bn", action="store_true",
                   help="let the directions move biases and BN parameters (default: zeroed, as Li et al.)")
    p.add_argument("--no-centre", action="store_true",
                   help="PCA without subtracting the snapshots' mean (default: centred, as Li et "
                   "al.'s scikit-learn PCA)")  # fmt: skip
    _grid_flags(p)
    p.set_defaults(run=_run_trajectory)


def _run_trajectory(args: argparse.Namespace) -> int:
    from lossart.grid.trajectory import TrajectoryConfig, trajectory_run

    config = TrajectoryConfig(components=args.components,
                              ignore=None if args.keep_bn else "biasbn",
                              centre=not args.no_centre)  # fmt: skip
    result = trajectory_run(args.checkpoint, args.out, _grid_config(args), config)
    if os.environ.get("RANK", "0") == "0":
        print(result.summary())
    _print_grid_summary(result.grid)
    return 0


# ---------------------------------------------------------------- terrain: terrain, validate


@command
def _add_terrain(sub: argparse._SubParsersAction) -> None:
    from lossart.options import add_option_flags
    from lossart.terrain.heightfield import TerrainConfig

    p = sub.add_parser(
        "terrain",
        help="turn a run's loss grids into smoothed log-loss heightfields (RUN/terrain/)",
        description="Write the terrain bundle (docs/bundle.md) that the Blender add-on reads: "
        "the clipped loss mapped to heights (by default log10 of the loss above the run's lowest "
        "loss, so optima read as wells), smoothed, one height range for all frames.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run folder with grids/ (after `lossart grid`)")
    add = p.add_argument
    add_option_flags(p, TerrainConfig, ["transform", "excess_offset", "relief", "sigma",
                                        "frame_sigma"])  # fmt: skip
    cap = p.add_mutually_exclusive_group()
    add_option_flags(cap, TerrainConfig, ["loss_cap", "cap_quantile"])
    add_option_flags(p, TerrainConfig, ["loss_floor", "upsample", "path_samples"])
    _select_frames_flag(p, f"grid frames to use: {FRAMES_SPEC} (default: all)")
    add("--out", default=None, help="bundle folder (default RUN/terrain)")
    add("--preview", action="store_true", help="also write preview/frame_XXXXX.png maps")
    add("--export-mesh", type=nonneg_int, default=None, metavar="FRAME",
        help="also write frame FRAME as a mesh (terrain/mesh/)")  # fmt: skip
    add("--mesh-format", choices=("ply", "gltf", "obj", "stl"), default=None,
        help="ply (default), gltf (.glb), obj (with the path), stl (a closed slab for printing)")
    add("--ascii", action="store_true", help="ascii PLY instead of binary")
    p.set_defaults(run=_run_terrain)


def _run_terrain(args: argparse.Namespace) -> int:
    from lossart.options import options_from_args
    from lossart.runs import open_run
    from lossart.terrain.build import build_terrain
    from lossart.terrain.heightfield import TerrainConfig

    chosen = options_from_args(TerrainConfig, args)
    if chosen["loss_cap"] is not None:  # a fixed cap: no quantile (the flags exclude each other)
        chosen["cap_quantile"] = None
    config = TerrainConfig(**chosen)
    result = build_terrain(
        args.run_dir,
        config,
        out=args.out,
        select_frames=args.select_frames,
        preview=args.preview,
        export_mesh=args.export_mesh,
        mesh_format=args.mesh_format,
        mesh_ascii=args.ascii,
    )
    open_run(args.run_dir).record_command("terrain")
    print(result.summary())
    return 0


@command
def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a terrain bundle against docs/bundle.md",
        description="Check every rule of the bundle format; print each problem and exit 1, "
        "or print a one-line summary and exit 0.",
    )
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder or its manifest.json")
    p.set_defaults(run=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from lossart.terrain.bundle_validate import validate_bundle

    report = validate_bundle(args.bundle)
    for problem in report.problems:
        print(f"{report.root}: {problem}")
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


# ---------------------------------------------------------------- view: the page in a browser


@command
def _add_view(sub: argparse._SubParsersAction) -> None:
    from lossart.render.options import add_look_flags

    p = sub.add_parser(
        "view",
        help="one self-contained interactive HTML page of a run or bundle (no Blender)",
        description="Write an offline HTML page (plotly.js inside): the terrain as a 3-D surface "
        "beside its flat map, the path, bends and optima; hover reads plane x, y and the loss "
        "measured there (from RUN/grids; a bare bundle shows heights). Runs of several frames "
        "get a frame slider and a play button. Frames and nodes are thinned to fit --budget-mb; "
        "the page says what was kept.",
    )
    p.add_argument("source", metavar="RUN|BUNDLE", help="run folder or bundle folder/manifest")
    p.add_argument("--out", metavar="FILE.html",
                   help="the page (default RUN/renders/view.html, or BUNDLE/view.html)")  # fmt: skip
    p.add_argument("--max-side", type=integer(2, 2001), default=201, metavar="N",
                   help="at most N surface nodes along a side (default 201)")  # fmt: skip
    p.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                   help="at most N frames, evenly spaced (default: all that fit the budget)")  # fmt: skip
    p.add_argument("--budget-mb", type=positive_float, default=20.0, metavar="MB",
                   help="the page's data, plotly.js (4.7 MB) aside (default 20)")  # fmt: skip
    p.add_argument("--heights-only", action="store_true",
                   help="leave the run's grids out: hover shows heights")  # fmt: skip
    p.add_argument("--show-evaluated", action="store_true",
                   help="adaptive grids: show the evaluated points at open (else a legend click)")  # fmt: skip
    p.add_argument("--screenshot", metavar="FILE.png",
                   help="also write a PNG of the page as headless Chromium shows it")  # fmt: skip
    p.add_argument("--frame", type=nonneg_int, default=None, metavar="K",
                   help="--screenshot at the slider's K-th position (default the first)")  # fmt: skip
    add_look_flags(p, ["palette"], title="look (as lossart render's)")
    p.set_defaults(run=_run_view)


def _run_view(args: argparse.Namespace) -> int:
    from lossart.view import ViewConfig, write_view

    config = ViewConfig(
        palette=args.palette, max_side=max(args.max_side, 2), min_side=min(61, args.max_side),
        budget_mb=args.budget_mb, max_frames=args.max_frames, losses=not args.heights_only,
        show_evaluated=args.show_evaluated,
    )  # fmt: skip
    result = write_view(args.source, args.out, config)
    print(result.summary())
    if args.screenshot:
        from lossart.view.screenshot import screenshot_view

        print(f"wrote {screenshot_view(result.path, args.screenshot, step=args.frame)}")
    return 0


# ---------------------------------------------------------------- render: render, addon


@command
def _add_render(sub: argparse._SubParsersAction) -> None:
    from lossart.render.options import DEPRECATED_FLAGS, add_look_flags

    p = sub.add_parser(
        "render",
        help="render a terrain bundle in Blender: a still PNG or an H.264 MP4",
        description="Render RUN's terrain bundle (or a bundle folder) through Blender: the bpy "
        "module when installed, else a blender executable. Cycles on the GPU when there is one. "
        "Video frames go to <out>_frames/; an interrupted render resumes where it stopped.",
    )
    p.add_argument("source", metavar="RUN|BUNDLE", help="run folder or bundle folder/manifest")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--still", action="store_true", help="render one frame to a PNG")
    mode.add_argument("--video", action="store_true", help="render all frames, encode an MP4 "
                      "(the camera orbits unless --camera says otherwise)")
    p.add_argument("--out", help="output .png/.mp4 (default RUN/renders/still_*.png, video.mp4)")
    p.add_argument("--frame", type=nonneg_int, help="bundle frame for --still (default: the last)")
    p.add_argument("--fps", type=integer(1, 240), default=24, help="video frame rate (default 24)")
    p.add_argument(
        "--duration", type=real(0.0, 86400.0, lo_open=True), default=None, metavar="S",
        help="video length in seconds whatever the number of recorded frames: they are spread "
        "over it with interpolated heights between them (default 12; --speed instead plays "
        "them at that speed)",
    )
    p.add_argument(
        "--hold", type=real(0.0, 3600.0), default=1.0, metavar="S",
        help="video: seconds the first and the last frame stay on screen (default 1)",
    )
    p.add_argument(
        "--compare", action="store_true",
        help="still: also write compare-<name>.png, the still beside the flat preview of the "
        "same frame",
    )
    p.add_argument(
        "--interpolate", type=integer(1, 64), default=1, metavar="K",
        help="K-times slow motion: K-1 blended frames between rendered ones (default 1)",
    )
    p.add_argument(
        "--caption", action="store_true",
        help="video: write each frame's epoch, step and training loss into the picture",
    )
    p.add_argument("--blender", metavar="PATH", help="render with this Blender executable")
    add_look_flags(p, deprecated=DEPRECATED_FLAGS)
    p.set_defaults(run=_run_render)

    a = sub.add_parser("addon", help="the Blender extension: build its installable zip")
    asub = a.add_subparsers(dest="addon_command", metavar="ACTION", required=True)
    b = asub.add_parser("build", help="write lossart-<version>.zip for Blender's Install from Disk")
    b.add_argument("--out", default="dist", metavar="DIR", help="folder for the zip (default dist)")
    b.add_argument(
        "--blender", metavar="PATH",
        help="build with this Blender executable (default: the bpy module's builder, else blender)",
    )
    b.set_defaults(run=_run_addon_build)


def _run_render(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from lossart.render import render_still, render_video
    from lossart.render.options import given_look_options, look_from_args
    from lossart.render.video import DURATION

    look = look_from_args(args)
    if args.compare and not args.still:
        raise LossartError("--compare: a contact sheet is made of a still (use it with --still)")
    if args.still:
        res = render_still(
            args.source, args.out, args.frame, look, blender=args.blender, compare=args.compare
        )
        print(f"{res.out}  ({res.device}, {res.seconds:.1f} s)")
        if res.compare:
            print(f"{res.compare}  (beside the flat preview)")
    else:
        speed = "playback_speed" in given_look_options(args)
        if speed and args.duration is not None:
            raise LossartError("--duration and --speed both set the video's length: give one")
        duration = None if speed else (DURATION if args.duration is None else args.duration)
        if "camera_preset" not in given_look_options(args):  # a video moves: the eased orbit
            look = replace(look, camera_preset="orbit")
        res = render_video(
            args.source, args.out, fps=args.fps, interpolate=args.interpolate, look=look,
            caption=args.caption, blender=args.blender, duration=duration, hold=args.hold,
        )
        print(
            f"{res.out}  ({res.frames_rendered} frames rendered, {res.frames_skipped} reused, "
            f"{res.device}, {res.seconds:.1f} s)"
        )
    return 0


def _run_addon_build(args: argparse.Namespace) -> int:
    from lossart.render.addon_build import build_addon

    print(build_addon(args.out, blender=args.blender))
    return 0


# ---------------------------------------------------------------- demo


@command
def _add_demo(sub: argparse._SubParsersAction) -> None:
    from lossart.demo import DEMO_LOOK_FLAGS
    from lossart.render.options import add_look_flags

    p = sub.add_parser(
        "demo",
        help="the whole pipeline on the built-in data: a rendered still and video",
        description="Train two small conv nets on the built-in shapes data, a Bezier curve between "
        "them with recorded frames, per-frame loss grids, the terrain bundle, and Blender renders "
        "(a still and an MP4 of the curve being trained). Rerun to resume.",
    )
    p.add_argument("--out", help="output folder (default renders/demo; with --subject "
                   "renders/SUBJECT)")
    real = p.add_argument_group(
        "a real subject (lossart.subjects): the seed's setup at a size the machine can do")
    real.add_argument("--subject", help="e.g. resnet20-noskip: two endpoints, a curve, video "
                      "and still grids, analyses, bundles, still, video and GIF")
    real.add_argument("--data", default="cifar10",
                      help="with --subject: cifar10 (needs --download once) or npz:PATH")
    real.add_argument("--download", action="store_true", help="with --subject: fetch --data")
    real.add_argument("--data-root", default="data",
                      help="with --subject: where cifar10 is or goes (default data)")
    real.add_argument("--endpoints", nargs=2, metavar=("A.pt", "B.pt"),
                      help="with --subject: seed w1 and w2 with these checkpoints (no training)")
    real.add_argument("--curve", metavar="RUN",
                      help="with --subject: seed the curve with this curve run (hard links)")
    _threads_flag(real, "with --subject on the CPU: cores to use")
    real.add_argument("--report", metavar="DIR",
                      help="print the markdown table of stage commands and wall times from "
                      "DIR/demo.json, and exit")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="a one-minute smoke version")
    speed.add_argument("--quality", action="store_true",
                       help="bigger and prettier: more frames, finer grids, 1280x720 renders")
    from lossart.demo import DemoConfig, DemoSettings
    from lossart.options import add_option_flags

    # no default: the preset's sizes unless a flag is given
    add_option_flags(p, DemoSettings, list(DemoSettings.FLAGS),
                     defaults=dict.fromkeys(DemoSettings.FLAGS))
    add_option_flags(p, DemoConfig, ["seed"])
    p.add_argument("--device", type=_device_name, default="cpu", help="cpu or cuda for the compute stages")
    _dtype_flag(p, "with --subject: training and grids (default auto)")
    p.add_argument("--no-render", action="store_true", help="stop after the terrain bundle")
    add_look_flags(p, DEMO_LOOK_FLAGS, defaults=False,
                   title="look options (default: the preset's; see lossart render --help)")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lossart.demo import DEMO_LOOK_FLAGS, DemoConfig, DemoSettings, run_demo
    from lossart.render.options import look_values

    if args.report:
        from lossart.pipeline import times_table

        print(times_table(args.report), end="")
        return 0
    if args.subject:
        return _run_subject(args)
    overrides = {k: getattr(args, k) for k in DemoSettings.FLAGS if getattr(args, k) is not None}
    overrides.update(look_values(args, DEMO_LOOK_FLAGS))
    preset = "quick" if args.quick else "quality" if args.quality else "default"
    seed = 1 if args.seed is None else args.seed
    result = run_demo(DemoConfig(Path(args.out or "renders/demo"), preset, args.device, seed,
                                 not args.no_render, overrides))
    print(f"demo ({preset}) in {result.out}:")
    for name, secs in result.stage_seconds.items():
        print(f"  {name:<11} {secs:7.1f} s")
    print(f"  {'total':<11} {sum(result.stage_seconds.values()):7.1f} s")
    if result.barrier:
        print(f"barrier (train loss): curve {result.barrier['curve']:.3f}, "
              f"segment {result.barrier['segment']:.3f}")
    page = result.out / "lossart-demo.html"
    for label, path in (("still", result.still), ("video", result.video),
                        ("page", page if page.is_file() else None)):  # fmt: skip
        if path:
            print(f"{label}: {path}")
    print(f"run folder: {result.run} (try: lossart ensemble {result.run})")
    return 0

def _run_subject(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lossart.subjects import SubjectConfig, run_subject

    toy = [f"--{k}" for k in ("frames", "resolution", "subset", "size", "samples", "palette")
           if getattr(args, k, None) is not None] + [
        f for f, v in (("--quick", args.quick), ("--quality", args.quality)) if v]
    if toy:
        raise LossartError(f"--subject {args.subject}: {', '.join(toy)} set the toy demo's "
                           "sizes; a subject's sizes are its preset's (lossart/subjects.py)")
    cfg = SubjectConfig(args.subject, args.data, args.download, args.data_root, args.device,
                        Path(args.out or f"renders/{args.subject}"),
                        tuple(args.endpoints) if args.endpoints else None, args.curve,
                        not args.no_render, args.threads, dtype=args.dtype)
    result = run_subject(cfg, on_stage=lambda name: print(f"subject: {name}", flush=True))
    print(f"{args.subject} in {result.out} (stages run now: {', '.join(result.ran) or 'none'})")
    for name, secs in result.stage_seconds.items():
        print(f"  {name:<13} {secs:8.1f} s")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0


# ---------------------------------------------------------------- alignment: align


@command
def _add_align(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "align",
        help="permute networks' hidden units to match a reference (Git Re-Basin)",
        description="Rename the hidden units of each MODEL to match REFERENCE without changing its "
        "function: weight matching (alternating linear assignment per permutation group) or "
        "activation matching on train examples. The groups are read from the network itself "
        "(torch.fx). Writes an ordinary checkpoint per model, recorded as aligned to REFERENCE, "
        "and its permutation beside it (OUT.perm.json). Rerunning continues an interrupted match.",
    )
    p.add_argument("reference", metavar="REFERENCE", help="the checkpoint to align to (A)")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="checkpoints of the same model to permute (B, C, ...)")
    p.add_argument("--out", required=True,
                   help="the aligned checkpoint (one MODEL), or a folder for several (OUT/<name>)")
    from lossart.alignment.config import AlignConfig
    from lossart.options import add_option_flags

    add_option_flags(p, AlignConfig)
    _weights_flags(p)
    p.add_argument("--data", help="the data of plain state_dicts (see lossart import)")
    _device_flag(p)
    _threads_flag(p, "CPU threads (default: torch's)")
    p.set_defaults(run=_run_align)


def _run_align(args: argparse.Namespace) -> int:
    from lossart.alignment import AlignConfig, align_checkpoints

    if args.threads:
        from lossart.devices import set_process_threads

        set_process_threads(args.threads)
    ref, *models = _checkpoint_files(args, [args.reference, *args.models], args.data)
    from lossart.options import options_from_args

    cfg = AlignConfig(reference=ref, models=tuple(models), out=args.out, device=_device(args),
                      **options_from_args(AlignConfig, args))  # fmt: skip
    result = align_checkpoints(cfg)
    for m in result.models:
        how = "already aligned, kept" if m.reused else f"{m.rounds} round(s), {m.seconds:.1f} s"
        print(f"{m.source} -> {m.out}: L2 distance to {ref} {m.l2_before:.4f} -> "
              f"{m.l2_after:.4f} ({m.groups} groups, {how}); permutation {m.permutation}")
    return 0


# ---------------------------------------------------------------- analyses: ensemble, functions


@command
def _add_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="test accuracy of the ensemble of w1 and a point moving along the path",
        description="The seed's Figure 8: the two-network ensemble {w1, phi(t)} on the test set as t "
        "goes from 0 to 1, for the trained curve and the straight segment, against the ensemble of "
        "the two endpoints. Writes RUN/analyses/ensemble.{csv,json,png}.",
    )
    p.add_argument("run_dir", metavar="RUN", help="curve run folder (lossart curve)")
    from lossart.analyses.sampling import Matching, PathSampling
    from lossart.options import add_option_flags

    add_option_flags(p, PathSampling)
    add_option_flags(p, Matching)
    _device_flag(p)
    p.set_defaults(run=_run_ensemble)


def _run_ensemble(args: argparse.Namespace) -> int:
    from lossart.analyses.ensemble import ensemble_run

    result = ensemble_run(args.run_dir, args.points, args.subset, _device(args))
    print(result.table())
    t_curve = result.first_t_matching("curve", args.tolerance)
    t_seg = result.first_t_matching("segment", args.tolerance)
    print(f"ensemble first within {100 * args.tolerance:.1f} points of the endpoint ensemble at "
          f"t = {t_curve} on the curve, t = {t_seg} on the segment")
    print("wrote " + ", ".join(result.files.values()))
    return 0


@command
def _add_functions(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "functions",
        help="predictive functions of points along a curve on 1-D regression (seed Figure 7)",
        description="Draw the functions of points along the trained curve over the data (a curve "
        "trained on --data wave1d), next to the loss plane of the final curve with the points "
        "marked. Writes RUN/analyses/functions.{png,npz}.",
    )
    p.add_argument("run_dir", metavar="RUN", help="curve run folder trained on 1-D regression data")
    p.add_argument("--t", type=real(0.0, 1.0), nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="points on the curve (default 0 0.25 0.5 0.75 1)")
    p.add_argument("--resolution", metavar="N|WxH", default="41", type=_resolution_type,
                   help="loss plane grid points per side, square or WxH, when RUN has no grid of "
                   "the final frame (default 41)")
    _device_flag(p)
    p.set_defaults(run=_run_functions)


def _run_functions(args: argparse.Namespace) -> int:
    from lossart.analyses.functions import functions_run

    if any(not 0.0 <= t <= 1.0 for t in args.t):
        raise LossartError(f"--t: expected values in [0, 1], got {args.t}")
    result = functions_run(args.run_dir, tuple(args.t), args.resolution, _device(args))
    for t, loss in zip(result.ts, result.train_loss):
        print(f"t = {t:4.2f}: train MSE {loss:.4f}")
    print(f"spread of the functions (std across t): {result.spread.mean():.3f} on average, "
          f"{result.spread.max():.3f} at most")
    print("wrote " + ", ".join(result.files.values()))
    return 0


# ---------------------------------------------------------------- entry point


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `lossart grid: error: argument --margin: ...` (exit 2)."""

    def error(self, message: str):
        import re

        one_line = " ".join(message.split())
        # "argument --lr: 'nan': expected ..." (lossart.checks' types) reads as the library's own
        # errors: "--lr nan: expected ..."
        m = re.fullmatch(r"argument (\S+?)(?:/\S+)?: '(.*?)': (expected .*)", one_line)
        if m:
            one_line = f"{m[1]} {m[2]}: {m[3]}"
        self.exit(2, f"lossart: error: {one_line} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lossart",
        description="Train low-loss curves between networks and render their loss landscapes.",
    )
    parser.add_argument("--version", action="version", version=f"lossart {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def _user_error(exc: Exception) -> str | None:
    """One-line errors: ours, and the format's (it ships in the add-on's zip, without lossart)."""
    if isinstance(exc, LossartError):
        return _for_cli(exc)
    from lossart.format.bundle import BundleError

    return str(exc) if isinstance(exc, BundleError) else None


#: What the file system says about a place, not a bug: a full disk, a read-only or forbidden
#: folder, a file where a folder should be (and the reverse). Named with the file, in one line.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
    errno.EISDIR, errno.ENAMETOOLONG, errno.EMFILE, errno.ENFILE,
}  # fmt: skip


def _environment_error(exc: Exception) -> str | None:
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = exc.filename if exc.filename is not None else "a file lossart writes"
        what = exc.strerror or str(exc)
        if "rerun" not in what:
            what += " (nothing that was complete before is lost; fix this and rerun to resume)"
        return f"{where}: {what}"
    return None


def _for_cli(exc: Exception) -> str:
    """The error's line as the command line says it: an option's field named by its flag."""
    from lossart.options import OptionError

    return exc.for_cli() if isinstance(exc, OptionError) else str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad flag (2, one line on stderr), --help or --version (0)
        return exc.code if isinstance(exc.code, int) else 1
    if not getattr(args, "run", None):
        parser.print_help()
        return 1
    from lossart.interrupts import exit_status, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            result = args.run(args)
    except Exception as exc:
        debug = args.debug or os.environ.get("LOSSART_DEBUG") == "1"
        line = _user_error(exc) or _environment_error(exc)
        if not line or debug:
            raise
        print(f"lossart: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (lossart.interrupts)
        what = "terminated (SIGTERM)" if exit_status(exc) == 143 else "interrupted"
        print(f"lossart: {what}; progress so far is saved, rerun the same command to resume",
              file=sys.stderr)
        return exit_status(exc)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
