"""World, lights and cameras: the stage the terrain sits on.

Lighting follows the reference look: a warm key light from a low angle that rakes across the
relief, a cool rim light from behind that outlines ridges, and a near-black world. Camera presets
aim at a target empty that is also the depth-of-field focus:

- "overview": a still three-quarter view from above;
- "orbit": a slow low orbit over the frame range (a driver on a pivot, so it plays without the
  add-on);
- "flythrough": rides along the path and looks ahead (moved by the frame handler, see landscape.py).
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from . import framing
from .materials import empty_node_tree
from .presets import CAMERA_PRESETS, srgb_to_linear

ORBIT_SWEEP_DEG = 60.0


def setup_world(
    scene: bpy.types.Scene,
    colour: str = "#020309",
    horizon: str = "#0d0b1f",
    strength: float = 1.0,
) -> None:
    """A near-black world with a faint gradient to a dusky `horizon` behind the terrain.

    Only camera rays see the gradient; light bounces see the plain near-black colour, so the
    background never lights or tints the surface (the key and rim suns do that)."""
    world = scene.world or bpy.data.worlds.new("lossart_world")
    scene.world = world
    nt, out = empty_node_tree(world, "ShaderNodeOutputWorld")
    coord = nt.nodes.new("ShaderNodeTexCoord")
    sep = nt.nodes.new("ShaderNodeSeparateXYZ")
    nt.links.new(coord.outputs["Generated"], sep.inputs["Vector"])  # the ray's direction
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    ramp.name = "lossart_sky"
    # ray z: -1 (down) .. +1 (up); brightest a little below the horizon, behind the slab
    fac = nt.nodes.new("ShaderNodeMapRange")
    fac.inputs["From Min"].default_value = -1.0
    fac.inputs["From Max"].default_value = 1.0
    nt.links.new(sep.outputs["Z"], fac.inputs["Value"])
    nt.links.new(fac.outputs["Result"], ramp.inputs["Fac"])
    el = ramp.color_ramp.elements
    el[0].position, el[0].color = 0.0, srgb_to_linear(colour)
    el[1].position, el[1].color = 1.0, srgb_to_linear(colour)
    mid = el.new(0.42)
    mid.color = srgb_to_linear(horizon)
    ramp.color_ramp.interpolation = "EASE"
    seen = nt.nodes.new("ShaderNodeBackground")
    seen.inputs["Strength"].default_value = strength
    nt.links.new(ramp.outputs["Color"], seen.inputs["Color"])
    plain = nt.nodes.new("ShaderNodeBackground")
    plain.inputs["Color"].default_value = srgb_to_linear(colour)
    plain.inputs["Strength"].default_value = strength
    light_path = nt.nodes.new("ShaderNodeLightPath")
    mix = nt.nodes.new("ShaderNodeMixShader")
    nt.links.new(light_path.outputs["Is Camera Ray"], mix.inputs["Fac"])
    nt.links.new(plain.outputs["Background"], mix.inputs[1])
    nt.links.new(seen.outputs["Background"], mix.inputs[2])
    nt.links.new(mix.outputs["Shader"], out.inputs["Surface"])


def _sun(
    name: str,
    collection,
    colour: str,
    energy: float,
    elevation_deg: float,
    azimuth_deg: float,
    angle_deg: float,
    glossy: bool = True,
) -> bpy.types.Object:
    light = bpy.data.lights.new(name, "SUN")
    light.energy = energy
    light.color = srgb_to_linear(colour)[:3]
    light.angle = math.radians(angle_deg)
    obj = bpy.data.objects.new(name, light)
    collection.objects.link(obj)
    obj.visible_glossy = glossy  # Cycles: False lights diffusely only, never a mirror glint
    # a sun shines along its local -Z; tilt it so it comes from (azimuth, elevation)
    obj.rotation_euler = (math.radians(90.0 - elevation_deg), 0.0, math.radians(azimuth_deg + 90.0))
    obj["lossart_azimuth"] = azimuth_deg  # as designed for a camera at OVERVIEW's azimuth
    return obj


def turn_lights(collection, camera_azimuth_deg: float) -> None:
    """Keep the lighting as designed relative to the camera when the view picks another corner:
    every sun turns by the camera's turn from the default azimuth."""
    turn = camera_azimuth_deg - OVERVIEW["azimuth"]
    for obj in collection.objects:
        if "lossart_azimuth" in obj:
            obj.rotation_euler[2] = math.radians(obj["lossart_azimuth"] + turn + 90.0)


def setup_lights(collection) -> list[bpy.types.Object]:
    # designed for a camera at OVERVIEW's azimuth (-116): the key comes low from behind on the
    # left, so slopes facing the camera catch glossy highlights and ridges cast soft shadows
    # towards it; the cool rim comes from the right and front and lifts the shadowed flanks
    key = _sun(
        "lossart_key",
        collection,
        "#ffd9b0",
        4.0,
        elevation_deg=28.0,
        azimuth_deg=110.0,
        angle_deg=12.0,  # a broad sun: soft shadows and highlights that spread, not glint
    )
    rim = _sun(
        "lossart_rim",
        collection,
        "#7fa8ff",
        1.5,
        elevation_deg=14.0,
        azimuth_deg=-20.0,
        angle_deg=8.0,
        glossy=False,  # lifts the flanks without a blinding glint
    )
    fill = _sun(
        "lossart_fill",
        collection,
        "#fff2e0",
        0.15,
        elevation_deg=70.0,
        azimuth_deg=-60.0,
        angle_deg=20.0,
    )
    return [key, rim, fill]


def build_camera(
    scene: bpy.types.Scene, collection
) -> tuple[bpy.types.Object, bpy.types.Object, bpy.types.Object]:
    """Camera, its orbit pivot and its target (also the focus of depth of field)."""
    target = bpy.data.objects.new("lossart_target", None)
    target.empty_display_size = 0.3
    pivot = bpy.data.objects.new("lossart_pivot", None)
    pivot.empty_display_size = 0.5
    cam_data = bpy.data.cameras.new("lossart_camera")
    cam_data.lens = 42.0
    cam_data.clip_start = 0.05
    cam_data.clip_end = 200.0
    cam_data.dof.use_dof = True
    cam_data.dof.focus_object = target
    cam_data.dof.aperture_fstop = 2.8
    cam_data.dof.aperture_blades = 6
    cam = bpy.data.objects.new("lossart_camera", cam_data)
    for obj in (target, pivot, cam):
        collection.objects.link(obj)
    cam.parent = pivot
    track = cam.constraints.new("TRACK_TO")
    track.target = target
    track.track_axis = "TRACK_NEGATIVE_Z"
    track.up_axis = "UP_Y"
    scene.camera = cam
    return cam, pivot, target


OVERVIEW = {"elevation": 36.0, "azimuth": -116.0, "lens": 50.0, "fstop": 0.25}
ORBIT = {"elevation": 40.0, "azimuth": -116.0, "lens": 50.0, "fstop": 0.3}
FLY = {"lens": 28.0, "fstop": 5.6}
VIEW_CORNERS = (-116.0, -64.0, 116.0, 64.0)  # three-quarter views, in order of preference
FILL = 0.9  # share of the half-width/half-height the framed points may reach


def _tangents(scene: bpy.types.Scene, cam) -> tuple[float, float]:
    r = scene.render
    w = max(1, r.resolution_x * r.pixel_aspect_x)
    h = max(1, r.resolution_y * r.pixel_aspect_y)
    return framing.half_fov_tangents(cam.data.lens, cam.data.sensor_width, w, h)


def apply_camera(
    scene: bpy.types.Scene,
    cam,
    pivot,
    target,
    preset: str,
    bounds: tuple[np.ndarray, np.ndarray],
    points: np.ndarray | None = None,
    ground: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    watch: np.ndarray | None = None,
) -> None:
    """Place the camera for a preset, fitted to the terrain's bounding box `bounds` (lo, hi in
    world units) and the marked `points` at the render's aspect ratio. Overview: an elevated
    three-quarter view with the whole slab and every point inside the frame. Orbit: a lower
    view swinging ORBIT_SWEEP_DEG over the frame range, at a distance that keeps everything in
    the frame at every angle. Flythrough positions come from `fly_camera` per frame.

    With `ground` (world heights [H, W], xs, ys) and `watch` (the path and points, world), the
    three-quarter view is taken from whichever corner hides the fewest of them behind a ridge,
    so the valley the path lies in faces the camera."""
    if preset not in CAMERA_PRESETS:
        raise ValueError(
            f"unknown camera preset {preset!r}; choose one of {', '.join(CAMERA_PRESETS)}"
        )
    lo, hi = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    centre = 0.5 * (lo + hi)
    framed = framing.box_corners(lo, hi)
    if points is not None and len(points):
        framed = np.concatenate([framed, np.asarray(points, dtype=np.float64).reshape(-1, 3)])
    pivot.driver_remove("rotation_euler", 2)
    pivot.rotation_euler = (0.0, 0.0, 0.0)
    pivot.location = (float(centre[0]), float(centre[1]), 0.0)
    target.location = tuple(float(v) for v in centre)
    look = FLY if preset == "flythrough" else OVERVIEW if preset == "overview" else ORBIT
    cam.data.lens = look["lens"]
    cam.data.dof.aperture_fstop = look["fstop"]
    cam.data.shift_x = cam.data.shift_y = 0.0
    if preset == "flythrough":
        return
    tx, ty = _tangents(scene, cam)

    def fit(azimuth: float) -> float:
        if preset == "overview":
            d = framing.view_direction(look["elevation"], azimuth)
            return framing.fit_distance(framed, centre, d, tx, ty, FILL)
        half = 0.5 * ORBIT_SWEEP_DEG
        return max(
            framing.fit_distance(
                framed, centre, framing.view_direction(look["elevation"], azimuth + a),
                tx, ty, FILL,
            )
            for a in np.linspace(-half, half, 15)
        )

    azimuth = look["azimuth"]
    if ground is not None and watch is not None and len(watch):
        best = None
        for az in VIEW_CORNERS:
            eye = centre + framing.view_direction(look["elevation"], az) * fit(az)
            hidden = framing.hidden_share(watch, eye, *ground)
            if best is None or hidden < best[0] - 0.02:
                best = (hidden, az)
        azimuth = best[1]
    dist = fit(azimuth)
    d = framing.view_direction(look["elevation"], azimuth)
    for coll in target.users_collection:
        turn_lights(coll, azimuth)
    cam.data.shift_x = cam.data.shift_y = 0.0
    if preset == "overview":  # re-centre on the terrain with a lens shift and come closer
        dist, cu, cv = framing.fit_centred(framed, centre, d, tx, ty, FILL)
        cam.data.shift_x = 0.5 * cu * tx / max(tx, ty)
        cam.data.shift_y = 0.5 * cv * ty / max(tx, ty)
    offset = d * dist
    cam.location = (float(offset[0]), float(offset[1]), float(centre[2] + offset[2]))
    if preset == "orbit":
        fs, fe = scene.frame_start, max(scene.frame_end, scene.frame_start + 1)
        rate = math.radians(ORBIT_SWEEP_DEG) / (fe - fs)
        fcurve = pivot.driver_add("rotation_euler", 2)
        fcurve.driver.type = "SCRIPTED"
        fcurve.driver.expression = (
            f"{-0.5 * math.radians(ORBIT_SWEEP_DEG):.6f} + (frame - {fs}) * {rate:.8f}"
        )


def fly_camera(
    cam, target, path_world: np.ndarray, progress: float, ceiling: float, size: float
) -> None:
    """Ride along the path at `progress` (0..1): behind and above it (never under `ceiling`,
    world z), looking ahead along it; distances scale with the terrain's `size`."""
    if len(path_world) < 2:
        return
    eye, there = framing.fly_pose(
        path_world, progress, ceiling, back=0.25 * size, height=0.32 * size, lead=0.3
    )
    cam.location = tuple(float(v) for v in eye)
    target.location = tuple(float(v) for v in there)


def setup_bloom(scene: bpy.types.Scene, strength: float = 0.35, threshold: float = 1.2) -> bool:
    """A soft bloom in the compositor so the path and markers glow beyond their edges.

    Blender 5 keeps the compositor in a node group (`scene.compositing_node_group`) and the
    glare settings in sockets; 4.2-4.5 use `scene.node_tree` and node properties. Returns
    False (and leaves the scene as it was) where neither API is found.
    """
    try:
        if hasattr(scene, "compositing_node_group"):
            ng = bpy.data.node_groups.new("lossart_compositor", "CompositorNodeTree")
            ng.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            out = ng.nodes.new("NodeGroupOutput")
            scene.compositing_node_group = ng
        else:
            scene.use_nodes = True
            ng = scene.node_tree
            ng.nodes.clear()
            out = ng.nodes.new("CompositorNodeComposite")
        layers = ng.nodes.new("CompositorNodeRLayers")
        glare = ng.nodes.new("CompositorNodeGlare")
        if "Type" in glare.inputs:
            glare.inputs["Type"].default_value = "Bloom"
            glare.inputs["Threshold"].default_value = threshold
            glare.inputs["Strength"].default_value = strength
            glare.inputs["Size"].default_value = 0.35
        else:
            glare.glare_type = (
                "BLOOM"
                if "BLOOM" in glare.bl_rna.properties["glare_type"].enum_items.keys()
                else "FOG_GLOW"
            )
            glare.threshold = threshold
            glare.mix = strength - 1.0  # -1 = image only, 0 = even mix
        ng.links.new(layers.outputs["Image"], glare.inputs["Image"])
        ng.links.new(glare.outputs["Image"], out.inputs[0])
        return True
    except (AttributeError, KeyError, TypeError, RuntimeError) as exc:
        print(f"lossart: no bloom ({exc})")
        return False
