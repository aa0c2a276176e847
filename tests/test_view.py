"""`lossart view`: the page of every run kind, hover values from the grids, decimation within the
budget, bare bundles, and the page in a real browser (headless Chromium, software WebGL)."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from view_fixtures import make_run

from lossart.cli import main
from lossart.errors import LossartError
from lossart.grid.files import read_frame_grid
from lossart.view import ViewConfig, open_source, view_figure, write_view
from lossart.view.browser import find_chromium
from lossart.view.plan import plan_view


def decode(value) -> np.ndarray:
    """A trace array as plotly.py holds it (numpy) or encodes it ({"dtype", "bdata", "shape"})."""
    return np.asarray(value, dtype=np.float64)


def script_sources(text: str) -> list[str]:
    """The src of every <script> element of a page."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Scripts(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "script":
                found.extend(v for k, v in attrs if k == "src")

    Scripts().feed(text)
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("view")
    return {
        "curve": make_run(base / "curve", "curve", frames=3, adaptive=True).root,
        "plane3": make_run(base / "plane3", "plane3", upsample=2).root,
        "around": make_run(base / "around", "around").root,
        "trajectory": make_run(base / "trajectory", "trajectory", frames=4).root,
    }


def test_curve_run_has_a_slider_and_measured_losses(runs):
    fig = view_figure(runs["curve"])
    meta = fig.layout.meta
    assert meta["kind"] == "curve" and meta["losses"] and meta["adaptive"]
    assert meta["frames_shown"] == meta["frames_total"] == 3 and meta["lattice"] == [25, 19]
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0", "1", "2"]
    assert [b.label for b in fig.layout.updatemenus[0].buttons][0].endswith("play")
    assert [f.layout.title.text for f in fig.frames][2].startswith("frame 2 · step 20 · epoch 1.00")
    # hover reads the grid's loss and accuracy at every node, frame by frame
    for frame in fig.frames:
        surface = frame.data[0]
        grid = read_frame_grid(runs["curve"] / "grids", int(frame.name))
        custom = decode(surface.customdata)  # [column][row]: what gl3d's hover reads
        np.testing.assert_allclose(custom[..., 0].T, grid.loss, rtol=1e-6)
        np.testing.assert_allclose(custom[..., 1].T, grid.accuracy, rtol=1e-6)
        np.testing.assert_allclose(decode(frame.data[4].customdata)[..., 0], grid.loss, rtol=1e-6)
        assert surface.hovertemplate is None and surface.colorbar.len is None  # data only
    assert "loss %{customdata[0]" in fig.data[0].hovertemplate
    # the evaluated points of the adaptive grid: in the legend, hidden until asked for
    evaluated = [t for t in fig.data if t.name == "evaluated points"]
    assert len(evaluated) == 2 and evaluated[0].visible == "legendonly"
    mask = read_frame_grid(runs["curve"] / "grids", 0).evaluated
    assert len(evaluated[0].x) == mask.sum()
    shown = view_figure(runs["curve"], ViewConfig(show_evaluated=True))
    assert [t.visible for t in shown.data if t.name == "evaluated points"] == [True, True]


def test_surface_is_in_the_bundle_height_mapping_and_palette(runs):
    from lossart.format.bundle import load_bundle
    from lossart.format.presets import PALETTES

    bundle = load_bundle(runs["curve"] / "terrain")
    fig = view_figure(runs["curve"], ViewConfig(palette="ice"))
    surface = fig.data[0]
    np.testing.assert_allclose(decode(surface.z), bundle.heights(0), rtol=1e-6)
    assert (surface.cmin, surface.cmax) == (bundle.z_min, bundle.z_max)
    assert [c[1] for c in surface.colorscale] == [c for _, c in PALETTES["ice"][0]]
    ratio = fig.layout.scene.aspectratio
    assert ratio.z == pytest.approx(bundle.relief) and ratio.y == pytest.approx(12 / 16)
    path = fig.data[1]
    assert len(path.x) == 40 and path.line.color == PALETTES["ice"][1]
    assert [t.text for t in fig.data if t.name == "optima"][0] == ("w1", "w2")


def test_upsampled_plane_keeps_measured_nodes(runs):
    fig = view_figure(runs["plane3"])
    meta = fig.layout.meta
    assert meta["kind"] == "plane3" and not fig.frames and not fig.layout.sliders
    assert meta["lattice"] == [25, 19] == meta["nodes"]  # the measured nodes, not the upsampled
    grid = read_frame_grid(runs["plane3"] / "grids", 0)
    np.testing.assert_allclose(decode(fig.data[0].customdata)[..., 0].T, grid.loss, rtol=1e-6)
    np.testing.assert_allclose(decode(fig.data[0].x), grid.xs, rtol=1e-6)
    assert fig.data[2].text == ("w1", "w2", "w3")
    assert fig.layout.title.text == "plane through three optima"


def test_around_and_trajectory(runs):
    around = view_figure(runs["around"])
    assert around.layout.meta["kind"] == "around" and around.data[2].text == ("w",)
    assert around.layout.title.text == "random plane around one network"
    traj = view_figure(runs["trajectory"])
    assert traj.layout.meta["kind"] == "trajectory" and len(traj.frames) == 4
    # the terrain is drawn once; frames reveal the route snapshot by snapshot
    assert all(0 not in f.traces and 4 not in f.traces for f in traj.frames)
    assert [len(f.data[0].x) for f in traj.frames] == [1, 2, 3, 4]
    assert traj.frames[3].layout.title.text.startswith("snapshot 3 · step 15")
    assert traj.layout.sliders[0].currentvalue.prefix == "snapshot "


def test_hessian_plane_says_so(tmp_path):
    run = make_run(tmp_path / "hess", "around")
    run.update(around={"directions": "hessian"})
    assert view_figure(run.root).layout.title.text.startswith("plane of the Hessian's top two")


def test_bare_bundle_opens_with_heights_only(tmp_path):
    run = make_run(tmp_path / "run", "curve", frames=2).root
    bundle = tmp_path / "shared-bundle"
    shutil.copytree(run / "terrain", bundle)
    assert open_source(bundle).grids is not None  # its source_run is still there
    shutil.rmtree(run)
    source = open_source(bundle)
    assert source.grids is None and "heights only" in source.note
    result = write_view(bundle)
    assert result.path == bundle / "view.html" and not result.meta["losses"]
    fig = view_figure(bundle)
    assert fig.data[0].customdata is None and "height %{z" in fig.data[0].hovertemplate
    assert "heights only" in fig.layout.annotations[0].text


def test_page_is_offline_and_cli_writes_it(runs, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["view", str(runs["curve"]), "--out", str(out), "--palette", "viridis"]) == 0
    assert "3 of 3 frame(s)" in capsys.readouterr().out
    text = out.read_text()
    assert script_sources(text) == []  # nothing loaded from elsewhere: plotly.js is inline
    assert "Plotly.newPlot" in text and "plotly.js v" in text
    assert main(["view", str(runs["curve"])]) == 0
    assert (runs["curve"] / "renders" / "view.html").is_file()


def test_decimation_fits_the_budget_and_is_recorded():
    # the real subject's video grid: 25 frames of 109x61 fit without thinning
    plan = plan_view(109, 61, 25, ViewConfig(), losses=True)
    assert len(plan.positions) == 25 and plan.shape == (109, 61) and plan.estimate_bytes < 20e6
    # 600 frames of 300x300: nodes thinned to the floor, then frames, first and last kept
    plan = plan_view(300, 300, 600, ViewConfig(), losses=True)
    assert plan.estimate_bytes <= plan.budget_bytes and plan.shape[0] >= 61
    assert plan.positions[0] == 0 and plan.positions[-1] == 599 and len(plan.positions) < 600
    assert "of 600 frames (evenly spaced" in plan.note() and "every 5th node" in plan.note()
    # max_side thins a large still; the last node is always kept
    plan = plan_view(401, 401, 1, ViewConfig(max_side=101), losses=True)
    assert plan.shape == (101, 101) and plan.cols[-1] == 400


def test_page_of_many_frames_stays_small(tmp_path):
    run = make_run(tmp_path / "long", "curve", frames=10, size=(41, 31))
    result = write_view(run.root, tmp_path / "long.html", ViewConfig(budget_mb=0.1, min_side=21))
    meta = result.meta
    assert meta["frames_total"] == 10 and 2 <= meta["frames_shown"] < 10
    assert meta["positions"][0] == 0 and meta["positions"][-1] == 9
    assert meta["lattice"] == [21, 16] and meta["node_step"] == 2
    assert result.bytes < 4.9e6 + 0.2e6  # plotly.js + the budget (and the page around them)
    assert "of 10 frames" in result.path.read_text()


def test_bad_input_is_one_line(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["curve"], run)
    grid = np.load(run / "grids" / "frame_00000.npz")
    arrays = {k: grid[k] for k in grid.files}
    arrays["xs"] = arrays["xs"] * 2
    np.savez(run / "grids" / "frame_00000.npz", **arrays)
    with pytest.raises(LossartError, match="not the one the bundle was made from"):
        open_source(run)
    assert main(["view", str(run), "--heights-only", "--out", str(tmp_path / "h.html")]) == 0
    (run / "grids" / "frame_00002.npz").unlink()
    with pytest.raises(LossartError, match="frame_00002.npz: missing, but the bundle shows"):
        open_source(run)
    assert main(["view", str(tmp_path / "nothing")]) == 2
    assert main(["view", str(run), "--palette", "nope"]) == 2
    err = capsys.readouterr().err
    assert "neither a run folder" in err and "--palette" in err and "Traceback" not in err
    with pytest.raises(LossartError, match="palette"):
        ViewConfig(palette="nope").validate()


# ---------------------------------------------------------------- in a real browser


def chromium() -> str:
    """Chromium, or a skip (a one-line reason); under CI (.ci/run sets CI) a failure instead."""
    exe = find_chromium()
    if exe:
        return exe
    if os.environ.get("CI"):
        pytest.fail("no Chromium under CI: .ci/run installs it (scripts/install-browser)")
    pytest.skip("no Chromium on PATH (apt-get install chromium) for the viewer's browser test")


def changed(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The share of pixels inside `box` (x, y, w, h) that differ between two screenshots."""
    x, y, w, h = box
    pa, pb = a[y : y + h, x : x + w].astype(int), b[y : y + h, x : x + w].astype(int)
    return float((np.abs(pa - pb).sum(axis=-1) > 30).mean())


def assert_measured(label: str, grid) -> None:
    """A hover label's loss is the grid's loss at the node of the label's plane x, y."""
    found = re.search(r"plane x (\S+), y (\S+)loss (\S+)accuracy", label)
    assert found, label
    x, y, loss = (float(v) for v in found.groups())
    j, i = np.abs(grid.xs - x).argmin(), np.abs(grid.ys - y).argmin()
    assert loss == pytest.approx(float(grid.loss[i, j]), rel=1e-3), label


def hover_3d(page, scene: list[int]) -> str:
    """The hover label over the middle of the 3-D scene (WebGL picking takes a few moves)."""
    x, y, w, h = scene
    for k in range(8):
        page.mouse("mouseMoved", x + w * 0.5 + k, y + h * 0.5)
        page.settle()
        labels = page.evaluate("[...document.querySelectorAll('.hovertext')].map(e => e.textContent)")
        if labels:
            return labels[0]
    raise AssertionError("no hover label over the 3-D surface")


@pytest.mark.browser
def test_page_in_headless_chromium(runs, tmp_path):
    from PIL import Image

    from lossart.view.browser import Browser
    from lossart.view.figure import BACKGROUND
    from lossart.view.screenshot import slide_to, slider_ticks, wait_ready

    exe = chromium()
    page_path = write_view(runs["curve"], tmp_path / "view.html").path
    with Browser(exe, size=(1280, 720)) as browser:
        page = browser.open(page_path)
        wait_ready(page)
        scene = page.evaluate(
            "(() => { const b = document.querySelector('#scene').getBoundingClientRect();"
            " return [b.x, b.y, b.width, b.height].map(Math.round); })()"
        )
        first = np.asarray(Image.open(io.BytesIO(page.screenshot(tmp_path / "a.png"))).convert("RGB"))
        # the surface is drawn: most of the 3-D scene is not the background
        bg = np.array([int(BACKGROUND[k : k + 2], 16) for k in (1, 3, 5)])
        x, y, w, h = scene
        region = first[y : y + h, x : x + w].astype(int)
        painted = (np.abs(region - bg).sum(axis=-1) > 24).mean()  # axes alone paint ~3%
        assert painted > 0.15, f"the 3-D scene is nearly blank ({painted:.1%} painted)"
        # hover on the flat map reads the measured loss
        box = page.evaluate(
            "(() => { const b = document.querySelector('.xy .nsewdrag').getBoundingClientRect();"
            " return [b.x, b.y, b.width, b.height]; })()"
        )
        page.mouse("mouseMoved", box[0] + box[2] * 0.5, box[1] + box[3] * 0.5)
        page.settle()
        hover = page.evaluate("[...document.querySelectorAll('.hoverlayer .hovertext')].map(e => e.textContent)")
        assert hover and "loss" in hover[0] and "measured" in hover[0], hover
        assert_measured(hover[0], read_frame_grid(runs["curve"] / "grids", 0))
        page.mouse("mouseMoved", 2, 2)
        # hover on the 3-D surface: plane x, y and the loss the grid holds at that node
        assert_measured(hover_3d(page, scene), read_frame_grid(runs["curve"] / "grids", 0))
        page.mouse("mouseMoved", 2, 2)
        # the slider's last position: another frame, another picture where the terrain is
        assert len(slider_ticks(page)) == 3
        slide_to(page, 2)
        last = np.asarray(Image.open(io.BytesIO(page.screenshot(tmp_path / "b.png"))).convert("RGB"))
        title = page.evaluate("document.getElementById('lossart-view')._fullLayout.title.text")
        assert title.startswith("frame 2 ·"), title
        share = changed(first, last, scene)
        assert share > 0.01, f"slider moved but the 3-D scene changed in only {share:.2%} of pixels"
        # held upright, like a phone: the map moves under the 3-D view
        page.resize(412, 860)
        domain = "document.getElementById('lossart-view')._fullLayout.scene.domain.y"
        page.wait_for(f"{domain}[0] === 0.5")
        page.settle()
        assert page.problems() == [], page.problems()
