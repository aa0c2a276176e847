"""`lossart view`: the figure as one self-contained HTML page (plotly.js embedded, no network)."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossart.atomic import write_bytes
from lossart.checks import output_file
from lossart.view.figure import BACKGROUND, view_figure
from lossart.view.plan import ViewConfig
from lossart.view.source import ViewSource, open_source

#: The default page name inside RUN/renders/ (or inside a bare bundle's folder).
DEFAULT_NAME = "view.html"


@dataclass
class ViewResult:
    """What `write_view` wrote."""

    path: Path
    bytes: int
    meta: dict[str, Any] = field(default_factory=dict)  # the figure's layout.meta
    note: str = ""  # why losses are not shown, where they are not

    def summary(self) -> str:
        m = self.meta
        what = "losses from the run's grids" if m.get("losses") else "heights only"
        line = (
            f"{self.path}: {self.bytes / 1e6:.1f} MB, {m.get('kind')}, "
            f"{m.get('frames_shown')} of {m.get('frames_total')} frame(s), surface "
            f"{m['lattice'][0]}x{m['lattice'][1]} of {m['nodes'][0]}x{m['nodes'][1]} nodes, {what}"
        )
        return line + (f" ({self.note})" if self.note and not m.get("losses") else "")


def default_view_path(source: ViewSource) -> Path:
    if source.run is not None and source.bundle.root.resolve() == source.run.terrain.resolve():
        return source.run.renders / DEFAULT_NAME
    return source.bundle.root / DEFAULT_NAME


def page_html(fig, title: str) -> str:
    """The page: plotly.js inline (works offline), the figure filling the window."""
    body = fig.to_html(
        include_plotlyjs=True,
        full_html=True,
        auto_play=False,
        include_mathjax=False,
        default_width="100%",
        default_height="100vh",
        div_id="lossart-view",
        config={"displaylogo": False, "responsive": True, "scrollZoom": True},
    )
    head = (
        f"<head><title>{html.escape(title)}</title>"
        f"<style>html, body {{ margin: 0; background: {BACKGROUND}; overflow: hidden; }}</style>"
    )
    return body.replace("<head>", head, 1)


def write_view(
    source: ViewSource | str | os.PathLike,
    out: str | os.PathLike | None = None,
    config: ViewConfig | None = None,
) -> ViewResult:
    """Write the interactive page of a run or bundle (default RUN/renders/view.html)."""
    config = (config or ViewConfig()).validate()
    if not isinstance(source, ViewSource):
        source = open_source(source, losses=config.losses)
    target = output_file(out) if out is not None else default_view_path(source)
    fig = view_figure(source, config)
    name = source.run.root.name if source.run is not None else source.bundle.root.name
    data = page_html(fig, f"lossart · {name} · {fig.layout.title.text}").encode("utf-8")
    write_bytes(target, data)
    return ViewResult(target, len(data), dict(fig.layout.meta), source.note)
