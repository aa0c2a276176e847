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
        what = "losses from the run's grids" if m.get("losses") else (self.note or "heights only")
        line = (
            f"{self.path}: {self.bytes / 1e6:.1f} MB, {m.get('kind')}, "
            f"{m.get('frames_shown')} of {m.get('frames_total')} frame(s), surface "
            f"{m['lattice'][0]}x{m['lattice'][1]} of {m['nodes'][0]}x{m['nodes'][1]} nodes, {what}"
        )
        return line


def default_view_path(source: ViewSource) -> Path:
    if source.run is not None and source.bundle.root.resolve() == source.run.terrain.resolve():
        return source.run.renders / DEFAULT_NAME
    return source.bundle.root / DEFAULT_NAME


#: On a window taller than wide (a phone held upright), the map goes under the 3-D view.
PORTRAIT = """
(function () {
  var gd = document.getElementById('{plot_id}');
  var tall = null;
  function fit() {
    var now = window.innerWidth < 0.9 * window.innerHeight;
    if (now === tall) return;
    var first = tall === null;
    tall = now;
    if (first && !now) return;  // wide: the layout as written
    var update = now ? {
      'scene.domain.x': [0, 1], 'scene.domain.y': [0.5, 1],
      'xaxis.domain': [0.12, 0.82], 'yaxis.domain': [0.2, 0.46],
      'legend.x': 0.0, 'legend.y': 1.0, 'annotations[0].visible': false
    } : {
      'scene.domain.x': [0, 0.6], 'scene.domain.y': [0.12, 1],
      'xaxis.domain': [0.64, 0.93], 'yaxis.domain': [0.22, 0.88],
      'legend.x': 0.62, 'legend.y': 0.98, 'annotations[0].visible': true
    };
    if (gd.layout.sliders && gd.layout.sliders.length) {
      update['sliders[0].x'] = now ? 0.3 : 0.13;
      update['sliders[0].len'] = now ? 0.7 : 0.47;
    }
    Plotly.restyle(gd, {'colorbar.y': now ? 0.33 : 0.55, 'colorbar.len': now ? 0.28 : 0.62}, [0]);
    Plotly.relayout(gd, update);
  }
  window.addEventListener('resize', fit);
  fit();
})();
"""


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
        post_script=PORTRAIT,
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
