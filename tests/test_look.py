"""One look-options type (lossart.format.look.Look) behind the CLI flags, the render job, the
scene properties and the import operator; one check; one timeline (scene frame <-> bundle)."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from lossart.addon.headless import RenderJob
from lossart.cli import build_parser, main
from lossart.errors import LossartError
from lossart.format.look import Look, LookError, flag
from lossart.format.timeline import Timeline

bpy_needed = pytest.mark.skipif(
    __import__("importlib").util.find_spec("bpy") is None,
    reason="the bpy module (Blender as a Python module) is not installed",
)


def _render_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["render"]


def _parsed_default(f, action):
    value = action.default
    return f.metadata["parse"](value) if "parse" in f.metadata else value


# ---------------------------------------------------------------- one set of options, one default
def test_every_look_field_is_a_render_flag_with_the_same_default():
    import argparse

    actions = {a.dest: a for a in _render_parser()._actions
               if a.option_strings and a.help != argparse.SUPPRESS}
    for f in fields(Look):
        action = actions[f.name]
        assert flag(f.name) in action.option_strings, f.name
        assert _parsed_default(f, action) == f.default, f.name
        assert f.metadata["help"] in action.help
    # and nothing left over: every look flag is a field
    look_group = next(g for g in _render_parser()._action_groups if g.title.startswith("look"))
    assert sorted(a.dest for a in look_group._group_actions) == sorted(
        Look.names() + ["show_bends", "render_device"]  # + the hidden old spellings
    )
    from lossart.render.options import look_from_args

    assert look_from_args(build_parser().parse_args(["render", "b", "--still"])) == Look()


def test_every_look_field_is_a_job_key_and_survives_json():
    job = RenderJob(mode="still", bundle="b", look=Look()).to_dict()
    assert list(job["look"]) == Look.names()
    assert job["look"] == {f.name: (list(f.default) if isinstance(f.default, tuple) else f.default)
                           for f in fields(Look)}
    odd = Look(palette="ice", camera_preset="orbit", path_glow=0.5, show_bends=True,
               playback_speed=0.25, frame_start=5, engine="eevee", render_device="CPU",
               samples=3, size=(64, 48), denoise=False, contours=True, height_scale=2.0)
    back = RenderJob.from_dict(json.loads(json.dumps(RenderJob("video", "b", odd).to_dict())))
    assert back.look == odd and back.mode == "video"


def test_a_job_from_another_version_is_refused_in_one_line():
    d = RenderJob("still", "b", Look()).to_dict()
    with pytest.raises(LookError, match="render job: format .* version 1"):
        RenderJob.from_dict({**d, "version": 1})
    with pytest.raises(LookError, match="unknown option.*fog"):
        RenderJob.from_dict({**d, "look": {**d["look"], "fog": 1}})


# ---------------------------------------------------------------- one check, one message
BAD = [
    ("palette", "rainbow", ["--palette", "rainbow"]),
    ("camera_preset", "drone", ["--camera", "drone"]),
    ("playback_speed", 0.0, ["--speed", "0"]),
    ("samples", 0, ["--samples", "0"]),
    ("size", (8, 8), ["--size", "8x8"]),
    ("path_glow", -1.0, ["--glow", "-1"]),
    ("height_scale", -0.5, ["--height-scale", "-0.5"]),
    ("engine", "workbench", ["--engine", "workbench"]),
    ("render_device", "TPU", ["--render-device", "TPU"]),
    ("frame_start", -1, ["--frame-start", "-1"]),
]


@pytest.mark.parametrize("name, value, argv", BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_refused_identically_by_cli_job_and_addon(name, value, argv, tmp_path,
                                                                 capsys):
    with pytest.raises(LookError) as addon:
        Look(**{name: value}).validate()
    message = str(addon.value)
    assert "\n" not in message and name in message and flag(name) in message
    # the CLI refuses it before looking at the source or starting Blender
    assert main(["render", str(tmp_path), "--still", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lossart: error: {message}"]
    # the job reader (what headless Blender reports back) says the same
    job = RenderJob("still", "b", Look()).to_dict()
    bad = {**job["look"], name: list(value) if isinstance(value, tuple) else value}
    with pytest.raises(LookError) as read:
        RenderJob.from_dict({**job, "look": bad})
    assert str(read.value) == message


def test_size_text_is_checked_like_any_option(capsys):
    assert main(["render", "nowhere", "--still", "--size", "96by64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "size (--size) '96by64': expected WIDTHxHEIGHT" in err[0]


def test_the_demo_refuses_a_bad_look_before_training(tmp_path, capsys):
    from lossart.demo import DemoConfig, run_demo

    with pytest.raises(LossartError, match=r"palette \(--palette\) 'rainbow'"):
        run_demo(DemoConfig(tmp_path / "demo", "quick", overrides={"palette": "rainbow"}))
    assert not (tmp_path / "demo").exists()
    assert main(["demo", "--out", str(tmp_path / "d2"), "--size", "8x8"]) == 2
    assert "size (--size) 8x8: each must be 16..16384" in capsys.readouterr().err
    assert not (tmp_path / "d2").exists()


# ---------------------------------------------------------------- flags mean one thing
def test_old_render_spellings_still_work_with_a_one_line_note(capsys):
    from lossart.render.options import look_from_args

    args = build_parser().parse_args(["render", "b", "--still", "--bends", "--device", "cpu"])
    look = look_from_args(args)
    assert look.show_bends is True and look.render_device == "CPU"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lossart: warning: --bends is deprecated, use --show-bends "
        "(the old spelling goes away in the next release)",
        "lossart: warning: --device is deprecated, use --render-device "
        "(the old spelling goes away in the next release)",
    ]
    new = build_parser().parse_args(["render", "b", "--still", "--show-bends",
                                     "--render-device", "optix"])
    assert (new.show_bends, new.render_device) == (True, "OPTIX")
    assert capsys.readouterr().err == ""
    # compute commands keep --device (torch) and curve keeps --bends (a count)
    curve = build_parser().parse_args(["curve", "a.pt", "b.pt", "--out", "r", "--bends", "3",
                                       "--device", "cuda"])
    assert (curve.bends, curve.device) == (3, "cuda")


# ---------------------------------------------------------------- one timeline
@pytest.mark.parametrize("speed", [1.0, 0.5, 0.25, 0.1, 1 / 3, 0.7])
def test_timeline_round_trips(speed):
    t = Timeline(frames=7, speed=speed, frame_start=3)
    if (1 / speed).is_integer() or speed == 1 / 3:  # whole scene frames per bundle frame:
        for i in range(7):  # every recorded frame is shown exactly by one scene frame
            f = t.scene_frame(i)
            assert f in t.scene_frames() and t.position(f) == pytest.approx(i)
    for f in t.scene_frames():  # every scene frame maps back to itself
        assert t.scene_frame(t.position(f)) == f
    assert t.position(t.frame_end) == 6.0 and t.position(t.frame_end - 1) < 6.0
    assert t.position(t.frame_start - 5) == 0.0 and t.position(t.frame_end + 5) == 6.0
    # Blender keeps the speed as float32: the frame range must not change with it
    assert Timeline(7, float(np.float32(speed)), 3).frame_count == t.frame_count


def test_frame_count_is_the_same_for_float32_and_float64_speeds():
    # 7 / 0.7 = 10 scene-frame steps; float32(0.7) is a hair below 0.7 and once gave 11 steps
    assert Timeline(8, 0.7).frame_count == Timeline(8, float(np.float32(0.7))).frame_count == 11
    assert Timeline(10, 0.9).frame_count == Timeline(10, float(np.float32(0.9))).frame_count == 11


def test_timeline_shown_frame_and_fast_playback():
    t = Timeline(frames=3, speed=0.5)
    assert [t.position(f) for f in t.scene_frames()] == [0, 0.5, 1, 1.5, 2]
    assert [t.shown_frame(f) for f in t.scene_frames()] == [0, 1, 1, 2, 2]
    fast = Timeline(frames=9, speed=2.0)
    assert fast.frame_count == 5 and fast.position(fast.scene_frame(4)) == 4.0
    assert Look(playback_speed=0.5, frame_start=4).timeline(3) == Timeline(3, 0.5, 4)


# ---------------------------------------------------------------- cached video frames
def test_cached_frames_are_keyed_on_bundle_and_look(tmp_path, capsys):
    from PIL import Image

    from lossart.render.video import next_dir, prepare_frames
    from lossart.terrain.synthetic import synthetic_bundle

    bundle = synthetic_bundle(tmp_path / "terrain", frames=2, size=9)
    frames = tmp_path / "film_frames"
    frames.mkdir()
    png = frames / "frame_00001.png"
    look = Look(size=(8, 6))
    Image.new("RGB", look.size).save(png)
    # frames stamped by the first release (hand-written "options") are not reused, but kept
    # until the frames of the new settings are complete (rendered into a staging folder)
    (frames / "frames.json").write_text(json.dumps({"fingerprint": "0123", "options": {}}))
    work = prepare_frames(frames, bundle, look)
    assert work == next_dir(frames) and png.exists() and not list(work.glob("frame_*"))
    stamp = json.loads((work / "frames.json").read_text())
    assert stamp["look"] == look.to_dict() and stamp["stamp_version"] == 2
    assert "had other settings" in capsys.readouterr().err
    # the same settings: the folder itself, its whole frames kept
    (frames / "frames.json").write_text((work / "frames.json").read_text())
    assert prepare_frames(frames, bundle, look) == frames and png.exists()
    same = replace(look, render_device="CPU")
    assert prepare_frames(frames, bundle, same) == frames and png.exists()  # same picture
    stamp = json.loads((frames / "frames.json").read_text())
    assert list(stamp["checksums"]) == ["frame_00001.png"]
    assert prepare_frames(frames, bundle, replace(look, palette="ice")) == next_dir(frames)
    assert png.exists()


def test_a_corrupt_or_resized_cached_frame_is_rendered_again(tmp_path, capsys):
    from PIL import Image

    from lossart.render.video import prepare_frames
    from lossart.terrain.synthetic import synthetic_bundle

    bundle = synthetic_bundle(tmp_path / "terrain", frames=2, size=9)
    frames = tmp_path / "film_frames"
    look = Look(size=(8, 6))
    assert prepare_frames(frames, bundle, look) == frames
    for f in (1, 2, 3):
        Image.new("RGB", look.size, (f, 0, 0)).save(frames / f"frame_{f:05d}.png")
    assert prepare_frames(frames, bundle, look) == frames  # all whole: checksums recorded
    whole = (frames / "frame_00002.png").read_bytes()
    (frames / "frame_00002.png").write_bytes(whole[: len(whole) // 2])  # torn
    Image.new("RGB", (4, 4)).save(frames / "frame_00003.png")  # another size
    prepare_frames(frames, bundle, look)
    assert sorted(p.name for p in frames.glob("frame_*")) == ["frame_00001.png"]
    assert "2 cached frame(s)" in capsys.readouterr().err
    # a frame changed after its checksum was recorded is decoded again, not trusted
    (frames / "frame_00001.png").write_bytes(b"\x89PNG garbage")
    prepare_frames(frames, bundle, look)
    assert not list(frames.glob("frame_*"))


# ---------------------------------------------------------------- the add-on (bpy)
@pytest.fixture
def blender():
    import bpy

    import lossart.addon

    bpy.ops.wm.read_factory_settings(use_empty=True)
    lossart.addon.register()
    yield bpy
    lossart.addon.unregister()


@pytest.fixture(scope="module")
def bundle3(tmp_path_factory) -> Path:
    from lossart.terrain.synthetic import synthetic_bundle

    return synthetic_bundle(tmp_path_factory.mktemp("look") / "terrain", frames=3, size=17)


def _rna_default(prop):
    if getattr(prop, "is_array", False):
        return tuple(prop.default_array)
    return prop.default


def _same(blender_value, value) -> bool:
    if isinstance(value, float):  # Blender stores float32
        return blender_value == pytest.approx(value)
    return blender_value == value


@bpy_needed
@pytest.mark.blender
def test_every_look_field_is_a_scene_property_with_the_same_default(blender):
    scene_props = type(blender.context.scene.lossart).bl_rna.properties
    op_props = blender.ops.lossart.import_landscape.get_rna_type().properties
    for f in fields(Look):
        assert _same(_rna_default(scene_props[f.name]), f.default), f.name
        if f.metadata["group"] in ("look", "timeline"):  # the import operator's options
            assert _same(_rna_default(op_props[f.name]), f.default), f.name
        if "choices" in f.metadata:
            items = [i.identifier for i in scene_props[f.name].enum_items]
            assert items == list(f.metadata["choices"]), f.name
    assert Look.from_settings(blender.context.scene.lossart) == Look()


@bpy_needed
@pytest.mark.blender
def test_the_addon_refuses_a_bad_look_with_the_same_message(blender, bundle3):
    from lossart.addon import landscape

    expected = None
    try:
        Look(palette="rainbow").validate()
    except LookError as exc:
        expected = str(exc)
    with pytest.raises(LookError) as exc:
        landscape.import_landscape(blender.context.scene, bundle3, Look(palette="rainbow"))
    assert str(exc.value) == expected
    assert blender.context.scene.lossart.terrain is None


@bpy_needed
@pytest.mark.blender
def test_import_options_override_the_scene_only_where_given(blender, bundle3):
    s = blender.context.scene.lossart
    s.palette = "magma"
    assert blender.ops.lossart.import_landscape(
        filepath=str(bundle3 / "manifest.json"), height_scale=2.0, playback_speed=0.5
    ) == {"FINISHED"}
    assert (s.palette, s.height_scale, s.playback_speed) == ("magma", 2.0, 0.5)
    assert blender.context.scene.frame_end == Timeline(3, 0.5).frame_end


@bpy_needed
@pytest.mark.blender
def test_handler_shows_what_the_timeline_says_at_slow_speed(blender, bundle3):
    from lossart.addon import landscape, surface
    from lossart.addon.world import WorldMap
    from lossart.format.bundle import load_bundle

    scene = blender.context.scene
    landscape.import_landscape(scene, bundle3, Look(playback_speed=0.25, frame_start=4))
    b = load_bundle(bundle3)
    t = Timeline(len(b.frames), 0.25, 4)
    assert (scene.frame_start, scene.frame_end) == (t.frame_start, t.frame_end) == (4, 12)
    wmap = WorldMap.for_bundle(b)
    hs = landscape.height_scale(scene.lossart)  # the style's relief at height scale 1
    for f in t.scene_frames():
        scene.frame_set(f)
        want = wmap.world_z(b.state(t.position(f)).heights, hs)
        np.testing.assert_allclose(surface.grid_z(scene.lossart.terrain), want, atol=1e-5)
    for i in range(len(b.frames)):  # what a still of bundle frame i shows
        scene.frame_set(t.scene_frame(i))
        want = wmap.world_z(b.heights(i), hs)
        np.testing.assert_allclose(surface.grid_z(scene.lossart.terrain), want, atol=1e-5)


@bpy_needed
@pytest.mark.blender
def test_render_options_in_the_panel_set_blenders_render_settings(blender, bundle3):
    from lossart.addon import landscape

    scene = blender.context.scene
    landscape.import_landscape(scene, bundle3, replace(Look(), render_device="CPU"))
    assert scene.render.resolution_x != 200  # import leaves the render settings alone
    s = scene.lossart
    s.samples = 7
    s.size = (200, 100)
    s.denoise = False
    assert scene.cycles.samples == 7 and not scene.cycles.use_denoising
    assert (scene.render.resolution_x, scene.render.resolution_y) == (200, 100)
    assert scene.cycles.device == "CPU"
    s.engine = "eevee"
    assert scene.render.engine.startswith("BLENDER_EEVEE")
