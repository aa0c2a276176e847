"""What `lossart align` accepts: AlignConfig, each option declared once (lossart.options).
No torch: the command line is built from these declarations."""

from __future__ import annotations

from dataclasses import dataclass

from lossart.options import check_options, option

METHODS = ("weights", "activations")


@dataclass(frozen=True)
class AlignConfig:
    """Align `models` to `reference`. `out`: the output file for one model, a folder for several
    (each written as OUT/<stem>.pt). `subset`, `batch_size`: the train examples activation
    matching runs on."""

    reference: str
    models: tuple[str, ...]
    out: str
    method: str = option(
        "weights", choices=METHODS,
        help="weights: weight matching (default); activations: correlation of activations on "
        "--subset train examples",
    )  # fmt: skip
    seed: int = option(0, lo=0, help="weights: the order groups are visited")
    max_rounds: int = option(
        100, lo=1, hi=100_000, help="weights: at most this many rounds over all groups (default 100)"
    )
    subset: int = option(1000, lo=1, help="activations: train examples (fixed, seeded); default 1000")
    batch_size: int = option(250, lo=1, cli=False, help="activations: examples per forward pass")
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_options(self)
