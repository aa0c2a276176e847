"""How a path between weights is sampled (eval-curve, line, ensemble, sharpness) and when an
ensemble along it matches the endpoints': options declared once (lossart.options), so the
commands' flags and the library's one check come from the same ranges. No torch."""

from __future__ import annotations

from dataclasses import dataclass

from lossart.options import check_options, option


@dataclass(frozen=True)
class PathSampling:
    """`points` evenly spaced t per path, on a fixed `subset` of train examples (None: all)."""

    points: int = option(21, lo=2, hi=100_000, help="evenly spaced t per path (default 21)")
    #: at least 2: exact BN takes the statistics of the subset itself
    subset: int | None = option(
        2000, lo=2,
        help="train examples (fixed, seeded) for loss and BN statistics; also caps the test set",
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_options(self)


@dataclass(frozen=True)
class Matching:
    """When a path's ensemble counts as "as good as the endpoints'": within `tolerance`."""

    tolerance: float = option(
        0.005, lo=0.0, hi=1.0,
        help="accuracy margin for 'ensembles as well as the endpoints' (default 0.005)",
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_options(self)
