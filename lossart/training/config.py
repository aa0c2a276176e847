"""What `lossart train` and `lossart curve` accept: TrainConfig and CurveConfig, each option
declared once (lossart.options). No torch: the command line is built from these declarations,
and commands that never touch torch (`lossart terrain`) build it too.

The fields that decide a result are compared on every rerun (lossart.training.loop.settings_of);
`run_option` fields (and options declared with `setting=False`) only change how it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lossart.checks import output_dir
from lossart.geometry.specs import CurveSpec
from lossart.options import check_options, option, run_option, threads_option

if TYPE_CHECKING:
    from lossart.data import DataSpec
    from lossart.models import ModelSpec

SCHEDULES = ("garipov", "cosine", "constant")
SPACINGS = ("uniform", "log")


@dataclass
class TrainConfig:
    """One endpoint's training. `None` fields take the dataset's defaults (`train_defaults`).

    The fields that decide the result (`settings_of`) are stored in the checkpoint and compared
    on every rerun; `run_option` fields only change how the training runs.
    """

    data: str | DataSpec = "shapes"
    model: str | ModelSpec | None = None  # registry name, "pkg.mod:factory", or a full spec
    model_kwargs: dict[str, Any] = run_option(default_factory=dict)  # part of `model` resolved
    epochs: int | None = option(
        help="default: per dataset (12 for shapes, 200 for CIFAR-like)", lo=1
    )
    batch_size: int | None = option(help="default: per dataset", lo=1)
    lr: float | None = option(help="base learning rate; default: per dataset", lo=0.0, lo_open=True)
    momentum: float = option(0.9, help="SGD momentum in [0, 1)", lo=0.0, hi=1.0, hi_open=True)
    wd: float | None = option(help="weight decay; default: per dataset", lo=0.0)
    schedule: str = option(
        "garipov", choices=SCHEDULES,
        help="garipov: flat for half, linear to 1%% at 90%% (default); cosine; constant",
    )  # fmt: skip
    seed: int = option(0, help="seed: different seeds give independent optima", lo=0)
    augment: bool = True
    snapshots: int | None = option(
        lo=2, metavar="N",
        help="keep N copies of the weights evenly spaced by step along training, the initial "
        "and final ones included, in OUT.snapshots/ (for `lossart trajectory`)",
    )  # fmt: skip  # None: no snapshots
    device: str = run_option(default="cpu")
    # auto, float32 or bfloat16 (forward under autocast); resolved once, kept in the resume state
    # and the checkpoint (`extra["dtype"]`); the library's default is float32, the CLI's auto
    dtype: str = run_option(default="float32")
    channels_last: bool = run_option(default=False)
    out: str | Path = run_option(default="endpoint.pt")
    # train metrics on a fixed subset this large (un-augmented)
    train_eval_size: int = option(
        10000, setting=False, cli=False, lo=1, help="train metrics on a fixed subset this large"
    )
    save_every_s: float = run_option(default=120.0)
    progress: bool = run_option(default=True)
    threads: int | None = threads_option(
        "CPU threads for torch (1 is fastest for small models on a busy machine; default: 1 for "
        "the built-in data, else torch's choice)"
    )

    def __post_init__(self) -> None:
        """Ranges and finiteness, checked before any work (NaN lr "diverges" otherwise)."""
        check_options(self)


@dataclass
class CurveConfig:
    """What `lossart curve` was asked for. Defaults follow Garipov et al. (lr 0.015, wd 5e-4).

    The fields that decide the result (`settings_of`: all but the `run_option` ones, with `data`
    resolved to the dataset's spec) are recorded in run.json and state.pt; a rerun must match them.
    """

    w1: str = run_option()
    w2: str = run_option()
    out: str = run_option()
    kind: str = "bezier"  # declared on CurveSpec (kind, bends), checked by building one
    bends: int = 1
    epochs: int = option(10, lo=1, help="training epochs (default 10)")
    lr: float = option(0.015, lo=0.0, lo_open=True, help="base learning rate (garipov schedule)")
    wd: float = option(5e-4, lo=0.0, help="weight decay on the curve point's weights")
    momentum: float = option(0.9, lo=0.0, hi=1.0, hi_open=True, help="SGD momentum in [0, 1)")
    batch_size: int = option(128, lo=1, help="minibatch size (default 128)")
    seed: int = option(1, lo=0, help="seed of t sampling, data order, init noise")
    frames: int = option(
        50, lo=2, hi=100_000, metavar="N",
        help="how many snapshots of the bends to record, first and last included "
        "(a count; grid and terrain pick among them with --select-frames)",
    )  # fmt: skip
    frame_spacing: str = option("uniform", choices=SPACINGS, help="uniform (default) or log")
    init_noise: float = option(
        0.0, lo=0.0, help="initial noise on the bends, as a fraction of |w2 - w1| (default 0)"
    )
    schedule: str = option("garipov", choices=SCHEDULES, cli=False, help="learning-rate schedule")
    augment: bool = True
    loss_window: int = option(50, lo=1, cli=False, help="steps in the running train loss")
    data: str | DataSpec | None = None  # default: the endpoints' dataset
    device: str = run_option(default="cpu")
    # auto, float32 or bfloat16 (forward under autocast); resolved once, kept in state.pt and
    # run.json (`curve_dtype`); the library's default is float32, the CLI's auto
    dtype: str = run_option(default="float32")
    threads: int | None = threads_option()
    save_every_s: float = run_option(default=120.0)
    progress: bool = run_option(default=True)

    def __post_init__(self) -> None:
        """Ranges before any work; the curve's kind and bends are CurveSpec's."""
        check_options(self)
        CurveSpec(self.kind, self.bends)

    def check(self) -> None:
        """What needs the file system: the run folder must be writable."""
        if self.out:
            output_dir(self.out)
