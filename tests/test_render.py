"""Headless rendering (`lossart render`); the extension zip is tests/test_addon_package.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lossart.cli import main
from lossart.errors import LossartError
from lossart.render import (
    Look,
    blender_command,
    checked_size,
    render_still,
    render_video,
    resolve_source,
)

TINY = Look(samples=4, size=(96, 64), denoise=False, render_device="CPU")


@pytest.fixture(scope="module")
def bundle3(tmp_path_factory) -> Path:
    from lossart.terrain.synthetic import synthetic_bundle

    return synthetic_bundle(tmp_path_factory.mktemp("bundle") / "terrain", frames=3, size=33)


def _needs_bpy():
    pytest.importorskip(
        "bpy", reason="the bpy module (Blender as a Python module) is not installed"
    )


def test_cli_still_png(bundle3, tmp_path):
    _needs_bpy()
    import imageio.v3 as iio

    out = tmp_path / "still.png"
    code = main(
        [
            "render",
            str(bundle3),
            "--still",
            "--frame",
            "1",
            "--size",
            "96x64",
            "--samples",
            "4",
            "--no-denoise",
            "--render-device",
            "CPU",
            "--palette",
            "viridis",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    img = iio.imread(out)
    assert img.shape[:2] == (64, 96) and img.std() > 10  # an image, not a blank frame
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_still_compare_sheet_puts_the_flat_preview_beside_it(bundle3, tmp_path, capsys):
    _needs_bpy()
    import imageio.v3 as iio

    from lossart.render.compare import LABEL_HEIGHT

    out = tmp_path / "look.png"
    args = ["render", str(bundle3), "--still", "--frame", "1", "--size", "96x64", "--samples",
            "2", "--no-denoise", "--render-device", "CPU", "--out", str(out), "--compare"]
    assert main(args) == 0
    sheet_path = tmp_path / "compare-look.png"
    assert str(sheet_path) in capsys.readouterr().out
    still, sheet = iio.imread(out), iio.imread(sheet_path)
    assert sheet.shape[0] == still.shape[0] + LABEL_HEIGHT
    assert sheet.shape[1] > 1.5 * still.shape[1]  # the preview beside it, as tall
    np.testing.assert_array_equal(sheet[LABEL_HEIGHT:, : still.shape[1], :3], still[..., :3])
    right = sheet[LABEL_HEIGHT:, still.shape[1] + 10 :]
    assert right.std() > 10  # a map, not a blank
    assert main(["render", str(bundle3), "--video", "--compare"]) == 2
    assert "--compare: a contact sheet is made of a still" in capsys.readouterr().err


def test_video_is_mp4_with_three_frames_and_resumes(bundle3, tmp_path):
    _needs_bpy()
    import imageio_ffmpeg

    out = tmp_path / "renders" / "film.mp4"
    once = dict(duration=None, hold=0.0)  # one scene frame per bundle frame, no holds
    res = render_video(bundle3, out, fps=12, look=TINY, **once)
    assert (res.frames_rendered, res.frames_skipped) == (3, 0)
    frames = sorted((tmp_path / "renders" / "film_frames").glob("frame_*.png"))
    assert [f.name for f in frames] == ["frame_00001.png", "frame_00002.png", "frame_00003.png"]
    assert out.read_bytes()[4:8] == b"ftyp"
    nframes, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert nframes == 3
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["size"] == (96, 64) and meta["codec"] == "h264" and "yuv420p" in meta["pix_fmt"]
    reader.close()

    # an interrupted render: one frame lost; the rerun renders only that one
    kept = frames[0].stat().st_mtime_ns
    frames[1].unlink()
    res = render_video(bundle3, out, fps=12, look=TINY, **once)
    assert (res.frames_rendered, res.frames_skipped) == (1, 2)
    assert frames[0].stat().st_mtime_ns == kept

    # other settings do not reuse stale frames
    res = render_video(bundle3, out, fps=12, look=replace(TINY, palette="ice"), **once)
    assert res.frames_rendered == 3

    # slow motion: K-1 blended frames between rendered ones
    slow = render_video(
        bundle3,
        out,
        fps=12,
        interpolate=3,
        look=replace(TINY, palette="ice"),
        **once,
    )
    assert slow.frames_rendered == 0
    nslow, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert 7 <= nslow <= 9


def test_a_default_video_lasts_long_enough_to_watch(tmp_path, capsys):
    """12 recorded frames: the default video lasts DURATION seconds (not 12 frames), spread
    with interpolated heights, the first and the last frame held a second each."""
    _needs_bpy()
    import imageio_ffmpeg
    import numpy as np

    from lossart.render.video import DURATION, HOLD
    from lossart.terrain.synthetic import synthetic_bundle

    bundle = synthetic_bundle(tmp_path / "terrain", frames=12, size=9)
    out = tmp_path / "film.mp4"
    fps = 4  # few frames to render, the default duration all the same
    args = ["render", str(bundle), "--video", "--out", str(out), "--fps", str(fps),
            "--size", "64x36", "--samples", "1", "--no-denoise", "--render-device", "CPU"]
    assert main(args) == 0
    nframes, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert nframes / fps >= 8.0 and nframes == round(DURATION * fps)
    rendered = sorted((tmp_path / "film_frames").glob("frame_*.png"))
    assert len(rendered) == nframes - 2 * round(HOLD * fps) > 12  # in-between heights too
    pictures = [f for f in imageio_ffmpeg.read_frames(str(out))][1:]
    first = [np.frombuffer(p, np.uint8).astype(float) for p in pictures[: round(HOLD * fps) + 1]]
    assert max(np.abs(a - first[0]).mean() for a in first) < 1.0  # held
    capsys.readouterr()
    assert main([*args, "--speed", "0.5", "--duration", "9"]) == 2
    assert "--duration and --speed" in capsys.readouterr().err


def test_video_plan_spreads_any_number_of_frames_over_the_duration():
    from lossart.format.timeline import Timeline
    from lossart.render.video import plan_video

    for frames in (2, 3, 12, 25, 600):
        for fps, k in ((24, 1), (10, 2), (4, 1)):
            plan = plan_video(frames, fps, duration=12.0, hold=1.0, interpolate=k)
            assert abs(plan.video_frames(k) - 12 * fps) <= k  # the length asked for
            assert plan.hold_frames == fps
            # the add-on's timeline renders exactly the planned scene frames at that speed
            assert Timeline(frames, plan.speed).frame_count == plan.rendered
            assert Timeline(frames, float(np.float32(plan.speed))).frame_count == plan.rendered
    assert plan_video(1, 24).rendered == 1 and plan_video(1, 24).video_frames() == 12 * 24 - 1
    assert plan_video(5, 24, duration=None, speed=0.5, hold=0).rendered == 9
    with pytest.raises(LossartError, match="--duration 1: too short"):
        plan_video(5, 24, duration=1.0, hold=1.0)
    with pytest.raises(LossartError, match="--duration -2"):
        plan_video(5, 24, duration=-2.0)


def test_broken_bundle_is_one_line_error(bundle3, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(bundle3, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["schema_version"] = 7
    (bad / "manifest.json").write_text(json.dumps(m))
    assert main(["render", str(bad), "--still", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "schema_version 7 is newer" in err[0]


def test_bad_flags_and_unwritable_output(bundle3, tmp_path):
    with pytest.raises(LossartError, match="--size"):
        checked_size("96by64")
    with pytest.raises(LossartError, match="--palette"):
        render_still(bundle3, tmp_path / "x.png", look=Look(palette="rainbow"))
    with pytest.raises(LossartError, match="--frame 9"):
        render_still(bundle3, tmp_path / "x.png", frame=9)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(LossartError, match="--out"):
        render_still(bundle3, blocker / "x.png")
    with pytest.raises(LossartError, match="--out .*mp4"):
        render_video(bundle3, tmp_path / "x.gif")
    with pytest.raises(LossartError, match="neither a run folder"):
        resolve_source(tmp_path)


def test_no_bpy_and_no_blender_says_how_to_get_either(monkeypatch, tmp_path):
    import importlib.util
    import shutil

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bpy" else real(name, *a)
    )
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(LossartError, match=r"pip install bpy.*install Blender"):
        blender_command(tmp_path / "job.json")
    with pytest.raises(LossartError, match="--blender /no/such/blender"):
        blender_command(tmp_path / "job.json", "/no/such/blender")


def test_blender_executable_route_runs_the_addon(tmp_path):
    # with --blender, the same add-on code runs in `blender -b --python-expr`
    exe = tmp_path / "blender"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    cmd = blender_command(tmp_path / "job.json", str(exe))
    assert cmd[:3] == [str(exe), "-b", "--factory-startup"]
    assert "--python-expr" in cmd and "lossart.addon.headless" in cmd[-1]


def test_run_folder_renders_into_run_renders(bundle3, tmp_path):
    import shutil

    from lossart.render import default_out

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"format": "lossart-run"}))
    shutil.copytree(bundle3, run / "terrain")
    assert resolve_source(run) == (run / "terrain", run / "renders")
    assert default_out(run, ".mp4", "video") == run / "renders" / "video.mp4"


def test_killed_video_render_resumes(tmp_path):
    _needs_bpy()
    import os
    import signal
    import subprocess
    import sys
    import time

    from lossart.terrain.synthetic import synthetic_bundle

    bundle = synthetic_bundle(tmp_path / "terrain", frames=4, size=17)
    out = tmp_path / "renders" / "film.mp4"
    frames = out.parent / "film_frames"
    args = [
        "render",
        str(bundle),
        "--video",
        "--out",
        str(out),
        "--size",
        "64x48",
        "--samples",
        "2",
        "--speed",
        "1",  # one scene frame per bundle frame
    ]
    args += ["--no-denoise", "--render-device", "CPU", "--camera", TINY.camera_preset]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossart", *args],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (frames / "frame_00001.png").is_file() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 of lossart and its Blender
    proc.wait()
    done = len(list(frames.glob("frame_*.png")))
    assert 1 <= done < 4 and not out.exists()
    res = render_video(bundle, out, look=replace(TINY, size=(64, 48), samples=2), duration=None)
    assert res.frames_skipped == done and res.frames_rendered == 4 - done
    assert len(list(frames.glob("frame_*.png"))) == 4 and not list(frames.glob(".tmp_frame_*"))


STAND_IN_BLENDER = '''#!{python}
"""A stand-in for the `blender` executable: Blender's background command line over the bpy module.

Accepts what `lossart render --blender` passes (-b, --factory-startup, --python-exit-code N,
--python-expr EXPR) and refuses anything else, so the test fails if lossart's command changes.
"""
import sys, traceback
args = sys.argv[1:]
code, expr = 0, None
while args:
    a = args.pop(0)
    if a in ("-b", "--background", "--factory-startup"):
        continue
    if a == "--python-exit-code":
        code = int(args.pop(0))
    elif a == "--python-expr":
        expr = args.pop(0)
    else:
        sys.exit(f"stand-in blender: unexpected argument {{a!r}}")
import bpy  # noqa: F401  (Blender has it loaded before any script runs)
try:
    exec(compile(expr, "<python-expr>", "exec"), {{"__name__": "__main__"}})
except SystemExit:
    raise
except BaseException:
    traceback.print_exc()
    sys.exit(code)
'''


def test_still_through_a_blender_executable(bundle3, tmp_path):
    """`--blender PATH` runs the same add-on code in a separate Blender process, end to end."""
    _needs_bpy()
    import sys

    import imageio.v3 as iio

    exe = tmp_path / "blender"
    exe.write_text(STAND_IN_BLENDER.format(python=sys.executable))
    exe.chmod(0o755)
    out = tmp_path / "via-exe.png"
    result = render_still(bundle3, out=out, frame=0, look=Look(
        samples=4, size=(96, 64), denoise=False, render_device="CPU"), blender=str(exe))
    assert result.out == out
    img = iio.imread(out)
    assert img.shape[:2] == (64, 96) and img.std() > 10


def test_captions_name_each_frames_training_state(bundle3, tmp_path):
    import imageio.v3 as iio
    import numpy as np

    from lossart.format.timeline import Timeline
    from lossart.render.captions import caption_frames, frame_caption
    from lossart.render.source import check_bundle

    bundle = check_bundle(bundle3)
    assert frame_caption(bundle.frames[2]).startswith(f"epoch {bundle.frames[2].epoch:.2f}")
    assert f"train loss {bundle.frames[2].train_loss:.3f}" in frame_caption(bundle.frames[2])
    frames = tmp_path / "frames"
    frames.mkdir()
    blank = np.full((90, 160, 3), 40, dtype=np.uint8)
    for f in range(1, 6):  # speed 0.5: scene frames 1..5 show bundle positions 0, .5, 1, 1.5, 2
        iio.imwrite(frames / f"frame_{f:05d}.png", blank)
    out = caption_frames(frames, bundle, Timeline(len(bundle.frames), speed=0.5, frame_start=1))
    captioned = [iio.imread(out / f"frame_{f:05d}.png") for f in range(1, 6)]
    for img in captioned:
        assert np.array_equal(img[:45], blank[:45])  # the picture is untouched above the caption
        assert (img[70:] != 40).any()  # text in the bottom rows
    # nearest bundle frame: positions 0, .5, 1, 1.5, 2 -> frames 0, 1, 1, 2, 2
    same = [np.array_equal(captioned[i], captioned[i + 1]) for i in range(4)]
    assert same == [False, True, False, True]
    assert np.array_equal(iio.imread(frames / "frame_00003.png"), blank)  # rendered frames stay clean


def test_blended_frames_carry_one_caption_not_two(bundle3, tmp_path):
    """Slow motion blends the clean pictures, then writes the nearer frame's words: blending
    captioned pictures ghosted two captions over each other."""
    import imageio.v3 as iio
    import numpy as np
    from PIL import Image

    from lossart.format.timeline import Timeline
    from lossart.render.captions import caption_frames, draw_caption, frame_caption
    from lossart.render.source import check_bundle

    bundle = check_bundle(bundle3)
    frames = tmp_path / "frames"
    frames.mkdir()
    shades = {1: 20, 2: 200, 3: 90}  # scene frames 1..3 show bundle frames 0, 1, 2
    for f, v in shades.items():
        iio.imwrite(frames / f"frame_{f:05d}.png", np.full((90, 160, 3), v, dtype=np.uint8))
    out = caption_frames(frames, bundle, Timeline(len(bundle.frames), frame_start=1), blend=4)
    names = sorted(p.name for p in out.glob("frame_*.png"))
    assert names == [f"frame_{n:05d}.png" for n in range(1, 10)]  # (3 - 1) * 4 + 1

    def expected(shade: float, frame: int) -> np.ndarray:
        img = Image.fromarray(np.full((90, 160, 3), round(shade), dtype=np.uint8), "RGB")
        draw_caption(img, frame_caption(bundle.frames[frame]))
        return np.asarray(img)

    # frame 2 is a quarter of the way from scene frame 1 to 2: frame 0's words only
    got = iio.imread(out / "frame_00002.png")
    assert np.array_equal(got, expected(0.75 * 20 + 0.25 * 200, 0))
    assert not np.array_equal(got, expected(0.75 * 20 + 0.25 * 200, 1))
    # frame 4, three quarters of the way: the next frame's words
    assert np.array_equal(iio.imread(out / "frame_00004.png"), expected(0.25 * 20 + 0.75 * 200, 1))
    assert np.array_equal(iio.imread(out / "frame_00009.png"), expected(90, 2))  # the last as is


def test_a_video_orbits_unless_the_camera_is_given(bundle3, tmp_path, monkeypatch):
    """`render --video` moves the camera (orbit) by default; `--camera` still decides."""
    import lossart.render as render

    asked = []
    monkeypatch.setattr(render, "render_video", lambda *a, look, **kw: asked.append(look) or
                        (_ for _ in ()).throw(SystemExit(0)))  # fmt: skip
    for extra, camera in (([], "orbit"), (["--camera", "overview"], "overview")):
        with pytest.raises(SystemExit):
            main(["render", str(bundle3), "--video", "--out", str(tmp_path / "v.mp4"), *extra])
        assert asked.pop().camera_preset == camera
