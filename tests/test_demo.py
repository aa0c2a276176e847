"""`lossart demo` end to end at toy sizes: still, video, plots, run folder, resume."""

from __future__ import annotations

import json

import pytest

from lossart.demo import PRESETS, DemoConfig, run_demo

TINY = {
    "model_width": 4, "endpoint_epochs": 2, "curve_epochs": 1, "frames": 3, "resolution": 7,
    "subset": 48, "upsample": 1, "size": (64, 36), "samples": 2, "fps": 3, "interpolate": 1,
    "duration": None, "hold": 0.0,  # one rendered frame per curve frame: a cheap video
}


def test_demo_produces_still_video_and_a_run_every_command_can_use(tmp_path):
    pytest.importorskip("bpy", reason="rendering needs the bpy module (Python 3.11)")
    import imageio.v3 as iio
    import imageio_ffmpeg

    out = tmp_path / "demo"
    result = run_demo(DemoConfig(out, "quick", overrides=TINY))
    assert result.still == out / "lossart-demo.png" and result.still.stat().st_size > 0
    assert result.video == out / "lossart-demo.mp4"
    assert imageio_ffmpeg.count_frames_and_secs(str(result.video))[0] == 3
    meta = iio.improps(result.still)
    assert meta.shape[:2] == (36, 64)
    assert (out / "loss-along-path.png").is_file() and (out / "terrain-preview.png").is_file()
    run = json.loads((out / "run" / "run.json").read_text())
    assert run["kind"] == "curve"
    assert (out / "run" / "terrain" / "manifest.json").is_file()
    assert set(result.stage_seconds) == {
        "endpoints", "curve", "eval-curve", "grid", "terrain", "view", "render"}  # fmt: skip
    assert "Plotly.newPlot" in (out / "lossart-demo.html").read_text()
    # Resume: a second run finds the endpoints, frames and grids on disk and redoes none of them.
    kept = [*(out / "endpoints").glob("*.pt"), *(out / "run" / "grids").rglob("*.npz"),
            *(out / "run" / "curve" / "frames").glob("*.pt")]
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    again = run_demo(DemoConfig(out, "quick", overrides=TINY, render=False))
    assert again.barrier == pytest.approx(result.barrier)
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps


def test_unknown_setting_is_one_line_error():
    from lossart.errors import LossartError

    with pytest.raises(LossartError, match="demo setting"):
        DemoConfig(overrides={"no_such": 1}).settings()
    with pytest.raises(LossartError, match="--preset"):
        DemoConfig(preset="nope").settings()
    assert set(PRESETS) == {"quick", "default", "quality"}
