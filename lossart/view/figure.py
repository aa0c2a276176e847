"""The interactive figure (Plotly): the terrain as a 3-D surface beside its flat map, the path,
bends and optima, and for runs of several frames a slider and a play button.

The surface is drawn in the bundle's height mapping (z is the bundle's height, the vertical
scale its relief share of the window's width, as Blender draws it) and coloured with the look's
palette over the bundle's one height range, so frames compare; the z axis and the colour bar
are labelled in loss. Hover reads plane x, y and the loss and accuracy measured there (from the
run's grids), or the height alone for a bare bundle.
"""

from __future__ import annotations

import os

import numpy as np

from lossart import __version__
from lossart.format.kinds import TRAJECTORY
from lossart.format.presets import PALETTES
from lossart.terrain.preview import loss_ticks
from lossart.view.frames import FrameView, frame_view
from lossart.view.plan import ViewConfig, ViewPlan, plan_view
from lossart.view.source import ViewSource, open_source

BACKGROUND = "#0b0e1a"
FOREGROUND = "#d8dce8"
MAP_LINES = CONTOURS = 14
#: The evaluated points of an adaptive grid: a green no palette uses for its ground or path.
EVALUATED = "#00ff9c"
#: The seconds a play-through of all shown frames takes (each frame at least 0.12 s).
PLAY_SECONDS = 8.0


def colorscale(palette: str) -> list[list]:
    """The look's colour ramp (lossart.format.presets) as a Plotly colorscale."""
    return [[float(pos), colour] for pos, colour in PALETTES[palette][0]]


def plan_for(source: ViewSource, config: ViewConfig) -> ViewPlan:
    bundle = source.bundle
    return plan_view(
        bundle.width,
        bundle.height,
        len(bundle.frames),
        config,
        upsample=bundle.manifest.height.upsample,
        losses=source.grids is not None,
        surfaces_change=source.kind != TRAJECTORY.name,
        extra_values=_extra_values(source),
    )


def _extra_values(source: ViewSource) -> int:
    """Values a frame draws besides the surface and the map: the path in 3-D and 2-D, and an
    adaptive grid's evaluated points (counted in its last frame, usually the busiest)."""
    frame = source.bundle.frames[-1]
    count = 5 * (len(frame.path) + len(frame.points) + len(frame.bends))
    if source.grids is not None and source.grids.adaptive:
        evaluated = source.grids.frame(len(source.bundle.frames) - 1).evaluated
        count += 5 * int(evaluated.sum()) if evaluated is not None else 0
    return count


def view_figure(source: ViewSource | str | os.PathLike, config: ViewConfig | None = None):
    """The figure of a run or bundle (a `plotly.graph_objects.Figure`, e.g. for a notebook).

    `fig.layout.meta` records what was shown: the frames and lattice kept (`ViewPlan.record`),
    the kind and whether the hover's losses come from the run's grids."""
    import plotly.graph_objects as go

    config = (config or ViewConfig()).validate()
    if not isinstance(source, ViewSource):
        source = open_source(source, losses=config.losses)
    plan = plan_for(source, config)
    views = [frame_view(source, plan, pos) for pos in plan.positions]
    first = views[-1] if len(views) == 1 else views[0]
    traces = _traces(source, plan, first, config)
    fig = go.Figure(data=[t for t, _ in traces])
    changing = [k for k, (_, changes) in enumerate(traces) if changes]
    _layout(fig, source, plan, first, config)
    if len(views) > 1:
        fig.frames = [
            go.Frame(
                name=str(v.position),
                data=_changes(_traces(source, plan, v, config), changing),
                traces=changing,
                layout={"title": {"text": _title(v)}},
            )
            for v in views
        ]
        _player(fig, views)
    return fig


# ---------------------------------------------------------------- traces

#: What a frame changes in each kind of trace (the rest: styling, colour bar, hover templates,
#: stays as the first frame set it, and is not repeated in every frame).
FRAME_KEYS = ("x", "y", "z", "customdata", "text", "hovertext")


def _changes(traces: list, changing: list[int]) -> list:
    """The frame's new data of the traces that change, each as a trace of the same type."""
    out = []
    for k in changing:
        trace = traces[k][0]
        keys = [key for key in FRAME_KEYS if key in trace and trace[key] is not None]
        if trace.type in ("surface", "contour"):
            keys = [key for key in keys if key in ("z", "customdata")]
        out.append(type(trace)(**{key: trace[key] for key in keys}))
    return out



def _hover(source: ViewSource) -> str:
    xy = "plane x %{x:.4g}, y %{y:.4g}"
    if source.grids is None:
        return xy + "<br>height %{z:.4f}<extra>bundle heights</extra>"
    return (
        xy + "<br>loss %{customdata[0]:.4g}<br>accuracy %{customdata[1]:.1%}"
        "<br>height %{z:.4f}<extra>measured</extra>"
    )


def _traces(source: ViewSource, plan: ViewPlan, v: FrameView, config: ViewConfig) -> list:
    """Every trace of one frame as (trace, changes from frame to frame), in a fixed order."""
    import plotly.graph_objects as go

    bundle = source.bundle
    _, path_colour, marker_colour, _ = PALETTES[config.palette]
    xs = bundle.xs[plan.cols].astype(np.float32)
    ys = bundle.ys[plan.rows].astype(np.float32)
    custom = None
    if v.loss is not None:
        custom = np.stack([v.loss, v.accuracy], axis=-1).astype(np.float32)
    scale = colorscale(config.palette)
    ticks, labels = loss_ticks(bundle)
    moving = source.kind != TRAJECTORY.name  # a trajectory's frames share one terrain
    surface = go.Surface(
        x=xs, y=ys, z=v.heights, customdata=_by_column(custom), surfacecolor=None,
        colorscale=scale, cmin=bundle.z_min, cmax=bundle.z_max,
        colorbar={"title": {"text": "loss"}, "tickvals": list(ticks), "ticktext": labels,
                  "x": 1.0, "len": 0.62, "y": 0.55, "thickness": 14},
        lighting={"ambient": 0.55, "diffuse": 0.75, "specular": 0.12, "roughness": 0.85,
                  "fresnel": 0.08},
        lightposition={"x": -1e5, "y": -1e5, "z": 8e4},
        hovertemplate=_hover(source), name="terrain", showlegend=False,
    )  # fmt: skip
    contour = go.Contour(
        x=xs, y=ys, z=v.heights, customdata=custom,
        colorscale=scale, zmin=bundle.z_min, zmax=bundle.z_max, showscale=False,
        contours={"start": bundle.z_min, "end": bundle.z_max,
                  "size": (bundle.z_max - bundle.z_min) / (MAP_LINES + 1), "showlabels": False,
                  "coloring": "heatmap"},
        line={"color": "rgba(255,255,255,0.35)", "width": 0.6},
        hovertemplate=_hover(source), name="map", showlegend=False, xaxis="x", yaxis="y",
    )  # fmt: skip
    has_path = len(v.path) > 0
    line = {"color": path_colour, "width": 6}
    path3 = go.Scatter3d(
        x=v.path[:, 0], y=v.path[:, 1], z=v.path[:, 2], name=_path_name(source),
        mode="lines+markers" if source.kind == TRAJECTORY.name else "lines",
        line=line, marker={"size": 3, "color": path_colour}, legendgroup="path",
        showlegend=has_path, hovertemplate="path: x %{x:.4g}, y %{y:.4g}<extra></extra>",
    )  # fmt: skip
    path2 = go.Scatter(
        x=v.path[:, 0], y=v.path[:, 1], mode=path3.mode, line={"color": path_colour, "width": 2.5},
        marker={"size": 5, "color": path_colour}, legendgroup="path", showlegend=False,
        name=path3.name, hoverinfo="skip",
    )  # fmt: skip
    names = [p[0] for p in v.points]
    point_text = [
        f"{p[0]}<br>plane x {p[1]:.4g}, y {p[2]:.4g}"
        + (f"<br>loss {p[4]:.4g}" if p[4] is not None else "")
        for p in v.points
    ]
    marker = {"size": 7, "color": marker_colour, "line": {"color": "#000000", "width": 1}}
    points3 = go.Scatter3d(
        x=[p[1] for p in v.points], y=[p[2] for p in v.points], z=[p[3] for p in v.points],
        mode="markers+text", text=names, textposition="top center",
        textfont={"color": marker_colour}, marker=marker, name=_points_name(source),
        legendgroup="points",
        hovertext=point_text, hovertemplate="%{hovertext}<extra></extra>",
    )  # fmt: skip
    points2 = go.Scatter(
        x=[p[1] for p in v.points], y=[p[2] for p in v.points], mode="markers+text",
        text=names, textposition="top right", textfont={"color": marker_colour},
        marker={**marker, "size": 9}, name=_points_name(source), legendgroup="points",
        showlegend=False,
        hovertext=point_text, hovertemplate="%{hovertext}<extra></extra>",
    )  # fmt: skip
    has_bends = len(v.bends_all) > 0
    bends3 = go.Scatter3d(
        x=v.bends[:, 0], y=v.bends[:, 1], z=v.bends[:, 2], mode="markers", name="bends",
        marker={"size": 5, "color": path_colour, "symbol": "diamond"}, legendgroup="bends",
        showlegend=has_bends, hovertemplate="bend: x %{x:.4g}, y %{y:.4g}<extra></extra>",
    )  # fmt: skip
    bends2 = go.Scatter(
        x=v.bends_all[:, 0], y=v.bends_all[:, 1], mode="markers", name="bends",
        marker={"size": 10, "color": path_colour, "symbol": "x-thin", "line": {"width": 2,
                "color": path_colour}}, legendgroup="bends", showlegend=False,
        hovertemplate="bend: x %{x:.4g}, y %{y:.4g}<extra></extra>",
    )  # fmt: skip
    out = [(surface, moving), (path3, True), (points3, True), (bends3, True)]
    out += [(contour, moving), (path2, True), (points2, True), (bends2, True)]
    if source.grids is not None and source.grids.adaptive:
        e = v.evaluated if v.evaluated is not None else np.zeros((0, 3))
        shown = True if config.show_evaluated else "legendonly"
        lift = 0.01 * (bundle.z_max - bundle.z_min)
        name = "evaluated points"
        out.append((go.Scatter3d(
            x=e[:, 0], y=e[:, 1], z=e[:, 2] + lift, mode="markers", name=name, visible=shown,
            marker={"size": 1.6, "color": EVALUATED}, legendgroup="evaluated",
            hovertemplate="evaluated: x %{x:.4g}, y %{y:.4g}<extra></extra>",
        ), True))  # fmt: skip
        out.append((go.Scatter(
            x=e[:, 0], y=e[:, 1], mode="markers", name=name, visible=shown, showlegend=False,
            marker={"size": 2.5, "color": EVALUATED}, legendgroup="evaluated", hoverinfo="skip",
        ), True))  # fmt: skip
    return out


def _by_column(custom: np.ndarray | None) -> np.ndarray | None:
    """A surface's per-node hover data as plotly.js's gl3d hover reads it: [column][row], while
    z is [row][column] (found with the browser test: row-major customdata showed the loss of
    the transposed node)."""
    return None if custom is None else np.ascontiguousarray(custom.transpose(1, 0, 2))


def _points_name(source: ViewSource) -> str:
    return {"around": "network", "trajectory": "start and optimum"}.get(source.kind, "optima")


def _path_name(source: ViewSource) -> str:
    return {"trajectory": "trajectory", "curve": "curve"}.get(source.kind, "path")


# ---------------------------------------------------------------- layout


def _title(v: FrameView) -> str:
    return v.title


def _layout(fig, source: ViewSource, plan: ViewPlan, first: FrameView, config: ViewConfig) -> None:
    bundle = source.bundle
    (x0, x1), (y0, y1) = bundle.x_range, bundle.y_range
    ticks, labels = _spaced(*loss_ticks(bundle, count=3), 0.4 * (bundle.z_max - bundle.z_min))
    share = bundle.relief
    axis = {"color": FOREGROUND, "gridcolor": "#2a3048", "zerolinecolor": "#2a3048",
            "backgroundcolor": BACKGROUND, "showbackground": True}  # fmt: skip
    losses = "the run's grids" if source.grids is not None else None
    notes = [plan.note()]
    if losses:
        notes.append("hover: the loss and accuracy measured at each node (RUN/grids)")
    else:
        notes.append(source.note or "heights only")
    if source.grids is not None and source.grids.adaptive:
        notes.append(
            f"adaptive grid (tolerance {source.grids.meta.adaptive:g} in log10 loss): "
            "'evaluated points' in the legend shows where the loss was computed"
        )
    notes.append(f"heights: {bundle.height_label()}; lossart {__version__}")
    fig.update_layout(
        title={"text": _title(first), "x": 0.02, "font": {"size": 16}},
        paper_bgcolor=BACKGROUND, plot_bgcolor=BACKGROUND, font={"color": FOREGROUND},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"x": 0.62, "y": 0.98, "bgcolor": "rgba(0,0,0,0)", "itemclick": "toggle"},
        scene={
            "domain": {"x": [0.0, 0.6], "y": [0.12, 1.0]},
            "xaxis": {**axis, "title": {"text": "plane x"}, "range": [x0, x1]},
            "yaxis": {**axis, "title": {"text": "plane y"}, "range": [y0, y1]},
            "zaxis": {**axis, "title": {"text": "loss"}, "tickvals": list(ticks),
                      "ticktext": labels, "range": [bundle.z_min, bundle.z_max + 0.05 * (bundle.z_max - bundle.z_min)]},
            "aspectmode": "manual",
            "aspectratio": {"x": 1.0, "y": (y1 - y0) / (x1 - x0), "z": share},
            "camera": {"eye": {"x": -0.35, "y": -1.0, "z": 1.45}, "center": {"x": 0, "y": 0, "z": -0.2}},
        },
        xaxis={"domain": [0.64, 0.93], "range": [x0, x1], "title": {"text": "plane x"},
               "gridcolor": "#2a3048", "zeroline": False, "constrain": "domain"},
        yaxis={"domain": [0.22, 0.88], "range": [y0, y1], "title": {"text": "plane y"},
               "gridcolor": "#2a3048", "zeroline": False, "scaleanchor": "x", "constrain": "domain"},
        annotations=[{
            "text": "<br>".join(notes), "xref": "paper", "yref": "paper", "x": 0.64, "y": 0.0,
            "xanchor": "left", "yanchor": "bottom", "showarrow": False, "align": "left",
            "font": {"size": 10, "color": "#8e95ad"},
        }],
        meta={
            "lossart_view": 1,
            "kind": source.kind,
            "losses": source.grids is not None,
            "adaptive": bool(source.grids is not None and source.grids.adaptive),
            "palette": config.palette,
            "bundle": str(bundle.root),
            **plan.record(),
        },
    )  # fmt: skip


def _spaced(ticks, labels: list[str], gap: float) -> tuple[list[float], list[str]]:
    """Loss ticks at least `gap` apart in height (the short z axis crowds them), the lowest and
    the highest kept first."""
    order = sorted(range(len(ticks)), key=lambda k: (k not in (0, len(ticks) - 1), k))
    kept: list[int] = []
    for k in order:
        if all(abs(ticks[k] - ticks[q]) >= gap for q in kept):
            kept.append(k)
    kept.sort()
    return [float(ticks[k]) for k in kept], [labels[k] for k in kept]


def _player(fig, views: list[FrameView]) -> None:
    """The frame slider and the play/pause buttons (Plotly's animation of the frames)."""
    ms = int(max(120, 1000 * PLAY_SECONDS / len(views)))
    still = {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
             "transition": {"duration": 0}}  # fmt: skip
    play = {"mode": "immediate", "fromcurrent": True, "frame": {"duration": ms, "redraw": True},
            "transition": {"duration": 0}}  # fmt: skip
    what = "snapshot" if views[0].title.startswith("snapshot") else "frame"
    fig.update_layout(
        sliders=[{
            "active": 0, "x": 0.13, "len": 0.47, "y": 0.02, "yanchor": "bottom",
            "currentvalue": {"prefix": f"{what} ", "font": {"color": FOREGROUND}},
            "font": {"color": FOREGROUND}, "bgcolor": "#3a4160", "activebgcolor": "#7ff3ff",
            "steps": [{"method": "animate", "label": v.label, "args": [[str(v.position)], still]}
                      for v in views],
        }],
        updatemenus=[{
            "type": "buttons", "direction": "left", "x": 0.0, "y": 0.02, "xanchor": "left",
            "yanchor": "bottom", "showactive": False, "bgcolor": "#3a4160",
            "font": {"color": "#000000"},
            "buttons": [
                {"label": "▶ play", "method": "animate", "args": [None, play]},
                {"label": "❚❚", "method": "animate", "args": [[None], still]},
            ],
        }],
    )  # fmt: skip
