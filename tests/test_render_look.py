"""The look of the renders, checked numerically: camera framing for every preset (the terrain
and every marked point inside the frame), the hero style's terrain filling every frame
(alpha coverage of transparent renders), every style from the CLI and the panel, the path and
markers sized to the terrain, contour lines, three distinct markers; and the pure framing
geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lossart.addon import framing


# ---------------------------------------------------------------- pure geometry (no bpy)
def _project(points, aim, direction, distance, tx, ty):
    right, up = framing.camera_basis(direction)
    rel = np.asarray(points, float) - aim
    depth = distance - rel @ direction
    return (rel @ right) / depth / tx, (rel @ up) / depth / ty


def test_fit_distance_puts_the_limiting_point_on_the_fill_edge():
    corners = framing.box_corners([-5, -2.5, -0.1], [5, 2.5, 1.6])
    aim = corners.mean(axis=0)
    tx, ty = framing.half_fov_tangents(50.0, 36.0, 480, 270)
    assert ty == pytest.approx(tx * 270 / 480)
    for el, az in [(36.0, -116.0), (26.0, 64.0), (80.0, 10.0)]:
        d = framing.view_direction(el, az)
        dist = framing.fit_distance(corners, aim, d, tx, ty, fill=0.9)
        u, v = _project(corners, aim, d, dist, tx, ty)
        assert max(np.abs(u).max(), np.abs(v).max()) == pytest.approx(0.9, abs=1e-9)
        # a little closer and some corner leaves the fill area
        u2, v2 = _project(corners, aim, d, dist * 0.97, tx, ty)
        assert max(np.abs(u2).max(), np.abs(v2).max()) > 0.9


def test_portrait_sensor_fit_uses_the_longer_side():
    tx, ty = framing.half_fov_tangents(50.0, 36.0, 270, 480)
    assert ty == pytest.approx(18.0 / 50.0) and tx == pytest.approx(ty * 270 / 480)


def test_hidden_share_sees_a_wall_and_not_a_plain():
    xs = np.linspace(-5, 5, 21)
    ys = np.linspace(-5, 5, 21)
    flat = np.zeros((21, 21))
    pts = np.array([[0.0, 0.0, 0.05], [1.0, 1.0, 0.05]])
    eye = np.array([0.0, -20.0, 5.0])
    assert framing.hidden_share(pts, eye, flat, xs, ys) == 0.0
    wall = flat.copy()
    wall[ys < -2] = 3.0  # a ridge between the points and the camera
    assert framing.hidden_share(pts, eye, wall, xs, ys) == 1.0
    behind = np.array([0.0, 20.0, 5.0])  # the other side sees over nothing
    assert framing.hidden_share(pts, behind, wall, xs, ys) == 0.0


def test_orbit_view_sees_the_valley_floor_from_every_angle_of_its_sweep():
    pytest.importorskip("bpy")  # scene.py imports bpy; the check itself is numpy
    from lossart.addon.scene import ORBIT_ELEVATIONS, choose_view

    xs = np.linspace(-5, 5, 81)
    ys = np.linspace(-5, 5, 81)
    trench = np.where(np.abs(ys)[:, None] > 1.0, 1.5, 0.0) * np.ones((1, 81))
    floor = np.array([[x, 0.0, 0.05] for x in np.linspace(-4, 4, 17)])
    aim = np.zeros(3)

    def eyes(sweep):
        return lambda el, az: np.array(
            [aim + 20.0 * framing.view_direction(el, az + a) for a in sweep])

    def worst(el, az, sweep):
        return max(framing.hidden_share(floor, e, trench, xs, ys) for e in eyes(sweep)(el, az))

    sweep = np.linspace(-30.0, 30.0, 5)
    sights = [(floor, (trench, xs, ys))] * len(sweep)
    el, az = choose_view(ORBIT_ELEVATIONS, (-135.0,), eyes(sweep), sights)
    assert worst(el, az, sweep) <= 0.02  # the floor stays in sight all the way round
    # judged from the sweep's middle alone, the view is lower and the end of the swing, which
    # looks across the trench, loses the floor behind the near wall
    el0, _ = choose_view(ORBIT_ELEVATIONS, (-135.0,), eyes([0.0]), sights)
    assert el0 < el and worst(el0, az, sweep) > 0.2


def test_fly_pose_glides_evenly_along_a_kinked_path():
    path = np.array([[0, 0, 0.1], [4, 0, 0.2], [4, 4, 0.3]], float)
    poses = [framing.fly_pose(path, p, ceiling=1.0, back=1.6, height=1.2) for p in np.linspace(0, 1, 41)]
    eyes = np.array([e for e, _ in poses])
    steps = np.linalg.norm(np.diff(eyes, axis=0), axis=1)
    assert eyes[:, 2].min() >= 1.0  # never under the ceiling
    assert steps.max() < 4 * np.median(steps)  # no jump at the kink
    for eye, look in poses:
        assert np.linalg.norm(look - eye) > 0.5  # always looking ahead, never at itself


# ---------------------------------------------------------------- in Blender (bpy)
bpy_needed = pytest.mark.skipif(
    __import__("importlib").util.find_spec("bpy") is None,
    reason="the bpy module (Blender as a Python module) is not installed",
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    from lossart.terrain.synthetic import synthetic_bundle

    root = tmp_path_factory.mktemp("look")
    return {
        "curve": synthetic_bundle(root / "curve", frames=3, size=25),
        "plane3": synthetic_bundle(root / "plane3", size=17, kind="plane3"),
    }


@pytest.fixture
def blender():
    import bpy

    import lossart.addon

    bpy.ops.wm.read_factory_settings(use_empty=True)
    lossart.addon.register()
    yield bpy
    lossart.addon.unregister()


def _setup(bpy, bundle: Path, size=(480, 270), **opts):
    from lossart.addon import landscape
    from lossart.addon.output import configure
    from lossart.format.look import Look

    scene = bpy.context.scene
    landscape.import_landscape(scene, bundle, Look(**opts))
    configure(scene, samples=1, size=size, denoise=False, device="CPU")
    landscape.refresh(scene)  # what headless rendering does after configure
    return scene


def _uvz(scene, points) -> np.ndarray:
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    scene.view_layers[0].update()
    return np.array([tuple(world_to_camera_view(scene, scene.camera, Vector(p))) for p in points])


def _marked(scene) -> np.ndarray:
    s = scene.lossart
    objs = [o for o in s.collection.objects if "lossart_point" in o and not o.hide_render]
    assert objs
    return np.array([tuple(o.matrix_world.translation) for o in objs])


def _terrain_corners(scene) -> np.ndarray:
    s = scene.lossart
    co = np.empty(len(s.terrain.data.vertices) * 3, np.float32)
    s.terrain.data.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    return framing.box_corners(co.min(axis=0), co.max(axis=0))


def _inside(uvz, margin=0.0) -> np.ndarray:
    return (
        (uvz[:, 2] > 0)
        & (uvz[:, 0] >= margin) & (uvz[:, 0] <= 1 - margin)
        & (uvz[:, 1] >= margin) & (uvz[:, 1] <= 1 - margin)
    )


@bpy_needed
@pytest.mark.blender
@pytest.mark.parametrize("kind", ["curve", "plane3"])
@pytest.mark.parametrize("size", [(480, 270), (270, 480)])
def test_overview_of_a_slab_shows_the_whole_terrain_and_every_point(blender, bundles, kind, size):
    scene = _setup(blender, bundles[kind], size=size, camera_preset="overview", slab=True)
    corners = _uvz(scene, _terrain_corners(scene))
    assert _inside(corners, margin=0.02).all(), corners
    assert _inside(_uvz(scene, _marked(scene)), margin=0.03).all()
    width = corners[:, 0].max() - corners[:, 0].min()
    height = corners[:, 1].max() - corners[:, 1].min()
    assert max(width, height) > 0.8  # fills the frame along its tighter side
    # an elevated three-quarter view: 30-40 degrees down onto the terrain's centre
    cam = np.array(scene.camera.matrix_world.translation)
    aim = np.array(scene.lossart.target.location)
    down = np.degrees(np.arcsin((cam[2] - aim[2]) / np.linalg.norm(cam - aim)))
    assert 30.0 <= down <= 40.0


def _coverage_render(scene, tmp_path) -> np.ndarray:
    """Render the scene's current frame with a transparent film; its alpha [H, W] in 0..1."""
    import imageio.v3 as iio

    scene.render.film_transparent = True
    scene.render.image_settings.color_mode = "RGBA"
    out = tmp_path / "coverage.png"
    scene.render.filepath = str(out)
    import bpy

    bpy.ops.render.render(write_still=True)
    return iio.imread(out)[..., 3].astype(float) / 255.0


@bpy_needed
@pytest.mark.blender
@pytest.mark.parametrize("kind", ["curve", "plane3"])
def test_overview_fills_the_frame_and_shows_path_and_optima(blender, bundles, kind, tmp_path):
    """No slab: the terrain covers most of the picture (its far corners may leave it), the path
    of every frame and both optima are inside it and not hidden behind a ridge."""
    from lossart.addon import framing, landscape

    scene = _setup(blender, bundles[kind], size=(96, 54), camera_preset="overview")
    scene.cycles.samples = 1
    alpha = _coverage_render(scene, tmp_path)
    assert (alpha > 0.5).mean() >= 0.5, (alpha > 0.5).mean()
    assert _inside(_uvz(scene, _marked(scene)), margin=0.02).all()
    b = landscape.active_bundle(scene)
    targets = landscape.view_targets(b, landscape.height_scale(scene.lossart))
    if len(targets.paths):
        assert _inside(_uvz(scene, targets.paths), margin=0.02).all()
    eye = np.array(scene.camera.matrix_world.translation)
    assert framing.hidden_share(targets.watch, eye, *targets.ground) <= 0.02
    # still an elevated view, looking down onto the valley
    aim = np.array(scene.lossart.target.location)
    down = np.degrees(np.arcsin((eye[2] - aim[2]) / np.linalg.norm(eye - aim)))
    assert 35.0 <= down <= 72.0


@bpy_needed
@pytest.mark.blender
def test_orbit_keeps_terrain_and_points_in_frame_all_the_way(blender, bundles):
    scene = _setup(
        blender, bundles["curve"], camera_preset="orbit", playback_speed=0.25, slab=True
    )
    seen = []
    for f in np.linspace(scene.frame_start, scene.frame_end, 5).round().astype(int):
        scene.frame_set(int(f))
        assert _inside(_uvz(scene, _terrain_corners(scene)), margin=0.01).all()
        assert _inside(_uvz(scene, _marked(scene)), margin=0.03).all()
        seen.append(np.array(scene.camera.matrix_world.translation))
    assert np.linalg.norm(seen[0] - seen[-1]) > 1.0  # it does move


@bpy_needed
@pytest.mark.blender
def test_orbit_without_a_slab_keeps_the_valley_in_frame_and_eases(blender, bundles):
    from lossart.addon import landscape

    scene = _setup(
        blender, bundles["curve"], camera_preset="orbit", playback_speed=0.1, style="classic"
    )
    paths = landscape.view_targets(landscape.active_bundle(scene), scene.lossart.height_scale).paths
    angles = []
    for f in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(f)
        assert _inside(_uvz(scene, _marked(scene)), margin=0.03).all()
        assert _inside(_uvz(scene, paths), margin=0.02).all()
        angles.append(scene.lossart.pivot.rotation_euler[2])
    steps = np.diff(angles)
    assert (steps > 0).all() and np.degrees(angles[-1] - angles[0]) == pytest.approx(60.0)
    # the first frame's path is in sight when it shows, and so is the last frame's
    sights = landscape.view_targets(landscape.active_bundle(scene), scene.lossart.height_scale).sights
    for f, (watch, ground) in ((scene.frame_start, sights[0]), (scene.frame_end, sights[-1])):
        scene.frame_set(f)
        eye = np.array(scene.camera.matrix_world.translation)
        assert framing.hidden_share(watch, eye, *ground) <= 0.02
    assert steps[0] < 0.2 * steps.max() and steps[-1] < 0.2 * steps.max()  # eased, no jolt


@bpy_needed
@pytest.mark.blender
def test_flythrough_follows_the_path_smoothly(blender, bundles):
    scene = _setup(blender, bundles["curve"], camera_preset="flythrough", playback_speed=0.1)
    eyes, looks = [], []
    for f in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(f)
        eyes.append(np.array(scene.camera.matrix_world.translation))
        looks.append(np.array(scene.lossart.target.location))
        # the point it looks at is on the path and in the middle of the picture
        uvz = _uvz(scene, [looks[-1]])[0]
        assert uvz[2] > 0 and abs(uvz[0] - 0.5) < 0.02 and abs(uvz[1] - 0.5) < 0.02
    steps = np.linalg.norm(np.diff(np.array(eyes), axis=0), axis=1)
    assert steps.min() > 0 and steps.max() < 3 * np.median(steps)


@bpy_needed
@pytest.mark.blender
def test_path_is_thin_and_contours_are_on_unless_switched_off(blender, bundles):
    from lossart.addon import materials, world

    scene = _setup(blender, bundles["curve"], style="classic")
    s = scene.lossart
    assert s.path.data.bevel_depth < 0.005 * world.SIZE  # a line, not a bar
    node = s.terrain.active_material.node_tree.nodes["lossart_contours"]
    # on by default: on real terrain the contours are what make the valley walls read
    assert node.inputs[1].default_value == pytest.approx(materials.CONTOUR_STRENGTH)
    s.contours = False  # the panel's switch
    assert node.inputs[1].default_value == 0.0
    assert 0.0 < materials.CONTOUR_STRENGTH <= 0.2  # faint when shown


@bpy_needed
@pytest.mark.blender
def test_three_optima_get_distinct_marker_colours(blender, bundles):
    scene = _setup(blender, bundles["plane3"])
    objs = [o for o in scene.lossart.collection.objects if "lossart_point" in o]
    colours = {
        tuple(round(c, 4) for c in o.active_material.node_tree.nodes["lossart_emission"]
              .inputs["Color"].default_value[:3])
        for o in objs
    }
    assert len(objs) == 3 and len(colours) == 3


def test_cli_has_contours_flag():
    from lossart.cli import build_parser

    args = build_parser().parse_args(["render", "b", "--still", "--no-contours"])
    assert args.contours is False
    assert build_parser().parse_args(["render", "b", "--still"]).contours in (None, True)


def test_fit_centred_fills_the_tighter_side_and_centres_it():
    corners = framing.box_corners([-5, -2.5, -0.1], [5, 2.5, 1.6])
    aim = corners.mean(axis=0)
    tx, ty = framing.half_fov_tangents(50.0, 36.0, 480, 270)
    d = framing.view_direction(36.0, -116.0)
    dist, cu, cv = framing.fit_centred(corners, aim, d, tx, ty, fill=0.9)
    assert dist < framing.fit_distance(corners, aim, d, tx, ty, fill=0.9)
    u, v = _project(corners, aim, d, dist, tx, ty)
    assert 0.5 * (u.max() + u.min()) == pytest.approx(cu)
    assert 0.5 * (v.max() + v.min()) == pytest.approx(cv)
    half = max(0.5 * (u.max() - u.min()), 0.5 * (v.max() - v.min()))
    assert half == pytest.approx(0.9, abs=1e-6)


def test_fit_centred_many_fits_each_direction_on_its_own():
    """The sweep's directions are bisected together; each must come out as if fitted alone:
    the tighter side spans the fill exactly and the shift centres the points."""
    corners = framing.box_corners([-5, -2.5, -0.1], [5, 2.5, 1.6])
    aim = corners.mean(axis=0)
    tx, ty = framing.half_fov_tangents(50.0, 36.0, 480, 270)
    dirs = [framing.view_direction(el, az) for el, az in ((20.0, -116.0), (45.0, -30.0), (70.0, 80.0))]
    fits = framing.fit_centred_many(corners, aim, dirs, tx, ty, fill=0.8)
    assert len({round(f[0], 6) for f in fits}) == 3  # three different distances
    for d, (dist, cu, cv) in zip(dirs, fits, strict=True):
        u, v = _project(corners, aim, d, dist, tx, ty)
        assert 0.5 * (u.max() + u.min()) == pytest.approx(cu)
        assert 0.5 * (v.max() + v.min()) == pytest.approx(cv)
        assert max(0.5 * np.ptp(u), 0.5 * np.ptp(v)) == pytest.approx(0.8, abs=1e-6)


def test_remembered_answers_the_same_question_once_and_a_new_one_again():
    calls = []

    @framing.remembered
    def search(points, lenses, need=0.9):
        calls.append(1)
        return float(points.sum()) * need + sum(lenses)

    pts = np.arange(6.0).reshape(2, 3)
    first = search(pts, (50.0, 70.0), need=0.9)
    assert search(pts.copy(), (50.0, 70.0), need=0.9) == first and len(calls) == 1
    moved = pts.copy()
    moved[1, 2] += 1e-9  # any change of any input is a new question
    search(moved, (50.0, 70.0), need=0.9)
    search(pts, (50.0, 35.0), need=0.9)
    search(pts, (50.0, 70.0), need=0.93)
    assert len(calls) == 4


@bpy_needed
def test_a_plane_around_one_optimum_is_framed_wide():
    """A random plane around one optimum has no path: framing the optimum's surroundings alone
    zoomed onto the basin floor; most of the window must be in the picture."""
    from lossart.addon import scene

    lo, hi = np.array([-5.0, -5.0, 0.0]), np.array([5.0, 5.0, 2.0])
    ys, xs = np.linspace(-5, 5, 11), np.linspace(-5, 5, 11)
    ground = (np.zeros((11, 11)), xs, ys)
    optimum = np.array([[0.0, 0.0, 0.0]])
    for paths in (None, np.zeros((0, 3))):
        targets = framing.ViewTargets((lo, hi), optimum, paths, ground)
        pts = scene.framed_points(targets, slab=False)
        assert pts[:, 0].min() <= -3 and pts[:, 0].max() >= 3  # most of the window's width
        assert pts[:, 1].min() <= -3 and pts[:, 1].max() >= 3
    path = np.array([[-4.0, 0.0, 0.0], [0.0, 0.5, 0.0], [4.0, 0.0, 0.0]])
    pts = scene.framed_points(framing.ViewTargets((lo, hi), optimum, path, ground), slab=False)
    assert pts[:, 1].max() < 3  # a path across the window: the valley framing around it


# ---------------------------------------------------------------- styles
def test_ground_coverage_counts_rays_that_meet_the_window():
    xs = np.linspace(-5, 5, 21)
    ys = np.linspace(-3, 3, 13)
    flat = np.zeros((13, 21))
    aim = np.zeros(3)
    tx, ty = framing.half_fov_tangents(50.0, 36.0, 160, 90)
    d = framing.view_direction(60.0, -90.0)
    near = aim + d * 4.0  # close: the picture is all ground
    assert framing.ground_coverage(near, framing.pixel_rays(d, tx, ty), flat, xs, ys) == 1.0
    far = aim + d * 40.0  # far: a small sheet in the middle of the picture
    cov = framing.ground_coverage(far, framing.pixel_rays(d, tx, ty), flat, xs, ys)
    assert 0.0 < cov < 0.5
    # the fading border does not count
    inset = framing.ground_coverage(far, framing.pixel_rays(d, tx, ty), flat, xs, ys, inset=1.0)
    assert inset < cov
    # a high border in front: rays passing below its top see under the sheet, not ground
    wall = flat.copy()
    wall[0, :] = 50.0
    low = aim + framing.view_direction(20.0, -90.0) * 6.0
    rays = framing.pixel_rays(framing.view_direction(20.0, -90.0), tx, ty)
    assert framing.ground_coverage(low, rays, wall, xs, ys) < framing.ground_coverage(
        low, rays, flat, xs, ys
    )


def test_choose_fill_view_fills_the_picture_and_keeps_the_path_in_sight():
    xs = np.linspace(-5, 5, 41)
    ys = np.linspace(-2.8, 2.8, 23)
    gy = ys[:, None] * np.ones((1, 41))
    heights = 0.6 * (gy / 2.8) ** 2 * np.ones((23, 41))  # a valley along x
    path = np.array([[x, 0.0, 0.05] for x in np.linspace(-3.5, 3.5, 15)])
    tangents = {50.0: framing.half_fov_tangents(50.0, 36.0, 160, 90)}
    view = framing.choose_fill_view(
        path, [path.mean(axis=0)], [(path, (heights, xs, ys))], tangents,
        (20.0, 30.0, 45.0, 60.0), (-90.0, 180.0), fills=(0.7, 0.9), inset=0.3, need=0.98,
    )  # fmt: skip
    assert view.coverage >= 0.98 and view.hidden <= 0.02
    eye = view.aim + framing.view_direction(view.elevation, view.azimuth) * view.distance
    assert framing.hidden_share(path, eye, heights, xs, ys) <= 0.02


def test_an_orbit_is_recentred_with_a_lens_shift_and_comes_down_low():
    """The orbit's camera, like the still's, is re-centred on the framed points with a lens
    shift (so it need not back away to keep the far side in the picture): where the high long
    borders hide the valley from across it, a view along it gets under 35 degrees."""
    xs = np.linspace(-5, 5, 41)
    ys = np.linspace(-2.8, 2.8, 23)
    gy = ys[:, None] * np.ones((1, 41))
    heights = 1.2 * (gy / 2.8) ** 2 * np.ones((23, 41))  # a steep valley along x
    path = np.array([[x, 0.4 * np.sin(x), 0.05] for x in np.linspace(-3.5, 3.5, 15)])
    tangents = {50.0: framing.half_fov_tangents(50.0, 36.0, 160, 90)}
    sweep = np.array([-6.0, 0.0, 6.0])
    view = framing.choose_fill_view(
        path, [path.mean(axis=0)], [(path, (heights, xs, ys))] * 3, tangents,
        (22.0, 30.0, 45.0, 60.0), (-90.0, 30.0, 180.0), sweep, fills=(0.9,), inset=0.3,
        need=0.9,
    )  # fmt: skip
    assert view.coverage >= 0.9 and view.hidden <= 0.02
    assert view.elevation < 35.0 and abs(view.shift[1]) > 0.1  # low, the far side up top
    tx, ty = tangents[50.0]
    for a in sweep:  # the framed points stay inside the shifted picture at every angle
        d = framing.view_direction(view.elevation, view.azimuth + a)
        u, v = _project(path, view.aim, d, view.distance, tx, ty)
        assert np.abs(u - view.shift[0]).max() <= 0.95 and np.abs(v - view.shift[1]).max() <= 0.95


def _look_render(scene, tmp_path, frame=None):
    """Render the scene's frame (the current one by default) as it is set up; RGBA [H, W, 4]."""
    import bpy
    import imageio.v3 as iio

    if frame is not None:
        scene.frame_set(int(frame))
    out = tmp_path / f"look_{scene.frame_current}.png"
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)
    return iio.imread(out)


def _styled(bpy, bundle, size, **opts):
    from lossart.addon import landscape
    from lossart.addon.output import apply_look
    from lossart.format.look import Look

    scene = bpy.context.scene
    look = Look(size=size, samples=1, denoise=False, render_device="CPU", **opts)
    landscape.import_landscape(scene, bundle, look)
    apply_look(scene, look)
    landscape.refresh(scene)
    scene.render.use_compositing = False  # the bloom is slow and changes no alpha
    return scene


@bpy_needed
@pytest.mark.blender
@pytest.mark.parametrize(
    "preset, size", [("overview", (96, 54)), ("overview", (54, 96)), ("overview", (64, 64)),
                     ("orbit", (96, 54))],
)  # fmt: skip
def test_hero_terrain_fills_every_frame_with_path_and_optima_in_sight(
    blender, bundles, preset, size, tmp_path
):
    """The default style: the terrain covers >= 90% of every frame (alpha of a transparent
    render), every frame's path and both optima inside the picture and not hidden."""
    from lossart.addon import landscape

    scene = _styled(blender, bundles["curve"], size, camera_preset=preset, transparent=True,
                    playback_speed=0.5)  # fmt: skip
    assert scene.lossart.style == "hero" and scene.render.film_transparent
    frames = [scene.frame_end]
    if preset == "orbit":
        frames = np.linspace(scene.frame_start, scene.frame_end, 3).round().astype(int)
    b = landscape.active_bundle(scene)
    hs = landscape.height_scale(scene.lossart)  # the hero's relief at height scale 1
    targets = landscape.view_targets(b, hs)
    for f in frames:
        rgba = _look_render(scene, tmp_path, f)
        assert rgba.shape[-1] == 4
        coverage = float((rgba[..., 3] > 127).mean())
        assert coverage >= 0.9, (preset, size, f, coverage)
        assert _inside(_uvz(scene, _marked(scene)), margin=0.0).all()
        state = b.state(landscape.bundle_position(scene, b))
        from lossart.addon import path as path_mod
        from lossart.addon.world import WorldMap

        wmap = WorldMap.for_bundle(b)
        shown = wmap.world(state.path, hs, lift=path_mod.PATH_LIFT)
        assert _inside(_uvz(scene, shown), margin=0.0).all()
        eye = np.array(scene.camera.matrix_world.translation)
        ground = (wmap.world_z(state.heights, hs), *targets.ground[1:])  # this frame's
        assert framing.hidden_share(shown, eye, *ground) <= 0.05


@bpy_needed
@pytest.mark.blender
@pytest.mark.parametrize("style", ["hero", "classic", "ridgelines"])
def test_every_style_renders_from_the_panel(blender, bundles, style, tmp_path):
    """Choosing a style in the panel rebuilds material, world and lights for it; each renders
    a picture that is not blank, and ridgelines is pale lines on black, not a palette swap."""
    scene = _styled(blender, bundles["curve"], (64, 36), style="classic")
    scene.lossart.style = style  # the panel's menu (its update refreshes the scene)
    mat = scene.lossart.terrain.active_material
    assert mat["lossart_style"] == style and scene.world["lossart_style"] == style
    assert ("lossart_occlusion" in mat.node_tree.nodes) == (style == "hero")
    rgb = _look_render(scene, tmp_path)[..., :3].astype(float)
    assert rgb.max() > 60  # something lit
    if style == "ridgelines":
        lum = rgb.mean(axis=-1)
        assert (lum < 12).mean() > 0.4  # mostly black ground between the lines
        assert (lum > 60).mean() > 0.03  # and the lines


def test_style_and_transparent_are_look_flags():
    from lossart.cli import build_parser
    from lossart.render.options import look_from_args

    args = build_parser().parse_args(["render", "b", "--still", "--style", "ridgelines",
                                      "--transparent"])  # fmt: skip
    look = look_from_args(args)
    assert look.style == "ridgelines" and look.transparent is True
    assert look_from_args(build_parser().parse_args(["render", "b", "--still"])).style == "hero"


def test_a_transparent_frame_is_flattened_onto_the_style_background():
    from PIL import Image

    from lossart.format.styles import background_rgb
    from lossart.render.captions import flatten

    img = Image.new("RGBA", (4, 2), (0, 0, 0, 0))
    img.putpixel((0, 0), (200, 100, 50, 255))
    flat = flatten(img, background_rgb("hero"))
    assert flat.mode == "RGB"
    assert flat.getpixel((0, 0)) == (200, 100, 50)
    assert flat.getpixel((3, 1)) == background_rgb("hero")


def test_near_white_counts_bright_unsaturated_terrain_pixels_only():
    from lossart.render.highlights import near_white_share

    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, :, :3] = 240  # a white row: 5 of 20 terrain pixels
    rgba[1, :, :3] = (255, 200, 40)  # bright but saturated (the palette's orange): not white
    rgba[3, :, 3] = 0  # not terrain: its white does not count
    rgba[3, :, :3] = 255
    assert near_white_share(rgba) == pytest.approx(5 / 15)
    assert near_white_share(rgba.astype(np.float32) / 255) == pytest.approx(5 / 15)
    with pytest.raises(ValueError, match="RGBA"):
        near_white_share(rgba[..., :3])


@bpy_needed
@pytest.mark.blender
def test_the_hero_light_leaves_no_white_smear_on_the_terrain(blender, bundles, tmp_path):
    """Issue 22: under 1% of the terrain's pixels near white once the path, the markers and
    their light are hidden (the key light's highlight must not bleach the palette)."""
    from lossart.addon.landscape import hide_marks
    from lossart.render.highlights import near_white_share

    scene = _styled(blender, bundles["curve"], (120, 68), transparent=True)
    scene.cycles.samples = 8
    hide_marks(scene)
    rgba = _look_render(scene, tmp_path)
    assert (rgba[..., 3] > 127).mean() > 0.8  # the terrain is there to be judged
    assert near_white_share(rgba) < 0.01
