"""What `lossart hessian` (and the Hessian of `plane --around`, `eval-curve --sharpness`)
accepts: HessianConfig, each option declared once (lossart.options). No torch: the command
line is built from these declarations."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lossart.geometry.specs import IGNORE
from lossart.options import check_options, option, option_error, threads_option

#: The precisions Lanczos runs in (lossart.curvature.operator maps them to torch's)
HESSIAN_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class HessianConfig:
    """What to compute and on which subset (the fields before `device` decide the numbers)."""

    k: int = option(2, lo=1, hi=1000, help="top eigenpairs (default 2)")  # the plane needs 2
    subset: int | None = option(
        512, lo=2,
        help="train examples (fixed, seeded) of the loss whose Hessian is taken, one exact-BN "
        "pass; its graph is kept in memory, which grows with it (default 512)",
    )  # fmt: skip  # None: all
    subset_seed: int = 0
    ignore: str | None = option(
        "biasbn", choices=IGNORE, cli=False, help="biasbn: biases and BN held fixed, as random "
        "planes do; None: every parameter"
    )  # fmt: skip
    smallest: bool = False  # also the most negative eigenvalue
    trace_samples: int = option(
        30, lo=0, hi=100_000, help="Hutchinson probes for the trace (0: no trace; default 30)"
    )
    per_layer: bool = False  # top eigenvalue of each parameter tensor's block
    density: bool = False  # stochastic Lanczos quadrature
    density_probes: int = option(2, lo=1, hi=1000, help="SLQ probes (default 2)")
    density_steps: int = option(40, lo=2, hi=10_000, help="SLQ steps per probe (default 40)")
    steps: int = option(
        80, lo=2, hi=100_000,
        help="most Lanczos steps (Hessian-vector products) for the eigenvalues (default 80)",
    )  # fmt: skip
    layer_steps: int = option(20, lo=1, cli=False, help="most products per layer block")
    tol: float = option(
        1e-3, lo=0.0, hi=1.0, lo_open=True, hi_open=True,
        help="residual |Hx - λx| / λ_max at which eigenpairs count as converged (default 1e-3)",
    )  # fmt: skip
    dtype: str = option("float32", choices=HESSIAN_DTYPES, help="float32 (default) or float64")
    seed: int = option(0, lo=0, help="start vector and probes (default 0)")
    device: str = "cpu"
    threads: int | None = threads_option("CPU threads (default: torch's choice)")

    def __post_init__(self) -> None:
        """Ranges before any work (lossart.options); one Hutchinson probe gives no variance."""
        check_options(self)
        if self.trace_samples == 1:
            raise option_error(self, "trace_samples", "expected 0 (no trace) or at least 2")

    def check(self) -> HessianConfig:
        """The config itself, checked at construction (kept for callers that chain it)."""
        return self

    def key(self) -> dict[str, Any]:
        """The settings that make the numbers (what a stored result must match to be reused)."""
        d = asdict(self)
        for name in ("device", "threads"):
            d.pop(name)
        return d
