"""Pictures of a view page as a browser shows it (headless Chromium, software WebGL)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lossart.errors import LossartError
from lossart.view.browser import Browser

PLOT = "document.getElementById('lossart-view')"
READY = f"window.Plotly && {PLOT} && {PLOT}._fullLayout && {PLOT}._fullLayout.meta"


def wait_ready(page) -> None:
    """Until Plotly has drawn the figure (and WebGL a few frames)."""
    page.wait_for(READY)
    page.settle(4)


def slider_ticks(page) -> list[tuple[float, float]]:
    """Screen positions of the frame slider's steps, in order (none for a one-frame view)."""
    js = ("[...document.querySelectorAll('.slider-tick-rect')].map(e => {"
          "const b = e.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; })")  # fmt: skip
    return [tuple(t) for t in page.evaluate(js)]


def slide_to(page, step: int) -> None:
    """Click the slider at its `step`-th position, as a user would, and wait for the frame."""
    ticks = slider_ticks(page)
    if not 0 <= step < len(ticks):
        raise LossartError(f"--frame {step}: the page's slider has {len(ticks)} position(s)")
    page.click(*ticks[step])
    page.wait_for(f"{PLOT}._fullLayout.sliders[0].active === {step}")
    page.settle(4)
    time.sleep(0.2)  # the WebGL canvas is composited after the frame's draw


def screenshot_view(
    html: str | os.PathLike,
    out: str | os.PathLike,
    step: int | None = None,
    size: tuple[int, int] = (1280, 720),
) -> Path:
    """A PNG of the page `html` (at slider position `step`, default the first); console errors
    are an error."""
    with Browser(size=size) as browser:
        page = browser.open(html)
        wait_ready(page)
        if step is not None:
            slide_to(page, step)
        page.screenshot(out)
        problems = page.problems()
    if problems:
        raise LossartError(f"{html}: the browser reported {problems[0]}")
    return Path(out)
