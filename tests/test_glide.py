"""The video's crane move (blender_addon/glide.py): plain geometry, no Blender needed."""

import numpy as np

from lossart.addon import framing, glide


def _valley():
    """A valley along x whose floor the straight path crosses over a ridge at x = 0 (frame 0),
    and a trained path that bends round it (the last frame); a wide window, ground to fill."""
    xs = np.linspace(-6, 6, 49)
    ys = np.linspace(-3.4, 3.4, 29)
    gx, gy = np.meshgrid(xs, ys)
    heights = 0.5 * (gy / 3.4) ** 2 + 0.35 * np.exp(-(gx**2) / 2.0) * np.exp(-(gy**2) / 0.5)
    ground = (heights, xs, ys)
    ends = np.array([[-3.5, 0.0, 0.05], [3.5, 0.0, 0.05]])
    straight = np.array([[x, 0.0, 0.45] for x in np.linspace(-3.5, 3.5, 15)])
    bent = np.array([[x, 1.2 * np.cos(x / 3.5 * np.pi / 2), 0.1] for x in np.linspace(-3.5, 3.5, 15)])
    sights = [(np.concatenate([ends, (1 - k) * straight + k * bent]), ground)
              for k in np.linspace(0.0, 1.0, 5)]
    return ground, ends, straight, bent, sights


def test_pose_eases_from_start_to_end_the_short_way_round():
    a = framing.FillView(40.0, 170.0, np.zeros(3), 50.0, 10.0, (0.0, 0.1), 1.0, 0.0)
    b = framing.FillView(20.0, -170.0, np.ones(3), 50.0, 8.0, (0.0, 0.3), 1.0, 0.0)
    move = glide.Glide(a, b)
    eye0, aim0, d0, s0 = move.pose(0.0)
    eye1, aim1, d1, s1 = move.pose(1.0)
    assert np.allclose(d0, framing.view_direction(40.0, 170.0)) and np.allclose(aim0, 0.0)
    assert np.allclose(d1, framing.view_direction(20.0, -170.0)) and np.allclose(aim1, 1.0)
    assert np.isclose(np.linalg.norm(eye1 - aim1), 8.0) and np.isclose(s1[1], 0.3)
    _, _, dm, _ = move.pose(0.5)  # halfway: 30 degrees up, at 180 (not round through 0)
    assert np.allclose(dm, framing.view_direction(30.0, 180.0))
    # eased: a small step at the ends moves the camera less than the same step midway
    step_end = np.linalg.norm(move.pose(0.02)[0] - eye0)
    step_mid = np.linalg.norm(move.pose(0.52)[0] - move.pose(0.5)[0])
    assert step_end < 0.2 * step_mid


def test_the_crane_fills_every_frame_and_keeps_the_path_in_sight():
    ground, ends, straight, bent, sights = _valley()
    tangents = {lens: framing.half_fov_tangents(lens, 36.0, 160, 90) for lens in (50.0, 70.0)}
    aims = [np.array([0.0, 0.3, 0.2])]
    move = glide.choose_glide(
        np.concatenate([bent, ends]), np.concatenate([straight, ends]), aims, sights, ends,
        tangents, (18.0, 22.0, 26.0, 30.0, 35.0, 45.0), (-90.0, -65.0, -115.0), 24.0,
        (0.6, 0.75, 0.9), inset=0.3, need=0.93,
    )  # fmt: skip
    assert move is not None
    assert move.start.elevation >= move.end.elevation and move.start.lens == move.end.lens
    check = glide.judge_glide(move, sights, ends, tangents[move.end.lens], inset=0.3)
    assert check.passes(0.93)
    for t in np.linspace(0.0, 1.0, 9):  # between the sights too: the optima stay in the picture
        eye, aim, d, shift = move.pose(t)
        assert glide.inside_picture(ends, eye, aim, d, tangents[move.end.lens], shift)


def test_inside_picture_refuses_points_behind_or_beside_the_camera():
    d = framing.view_direction(30.0, -90.0)
    aim = np.zeros(3)
    eye = aim + 10.0 * d
    t = framing.half_fov_tangents(50.0, 36.0, 160, 90)
    assert glide.inside_picture(np.zeros((1, 3)), eye, aim, d, t, (0.0, 0.0))
    assert not glide.inside_picture(np.array([[30.0, 0.0, 0.0]]), eye, aim, d, t, (0.0, 0.0))
    assert not glide.inside_picture(eye[None] + d, eye, aim, d, t, (0.0, 0.0))
