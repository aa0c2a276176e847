"""Progress bars with rates and ETA for every long job (tqdm), quiet when asked or not a terminal."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm


def progress(total: int | None = None, desc: str = "", unit: str = "it", **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr; `LOSSART_QUIET=1` or `disable=True` hides it (tests, workers)."""
    disable = kwargs.pop("disable", None)
    if disable is None:
        disable = os.environ.get("LOSSART_QUIET") == "1"
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
        disable=disable,
        **kwargs,
    )
