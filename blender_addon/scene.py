"""World, lights and cameras: the stage the terrain sits on.

Lighting follows the reference look: a warm key light from a low angle that rakes across the
relief, a cool rim light from behind that outlines ridges, and a near-black world. Camera presets
aim at a target empty that is also the depth-of-field focus:

- "overview": a still three-quarter view from above;
- "orbit": a slow low orbit over the frame range, eased in and out (a driver on a pivot, so it
  plays without the add-on);
- "flythrough": rides along the path and looks ahead (moved by the frame handler, see landscape.py).
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from ..format.presets import CAMERA_PRESETS, srgb_to_linear
from . import framing
from .materials import empty_node_tree
from .world import SIZE

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
    obj["lossart_light"] = name.removeprefix("lossart_")
    aim_sun(obj, elevation_deg, azimuth_deg)
    return obj


def aim_sun(obj, elevation_deg: float, azimuth_deg: float) -> None:
    """A sun shines along its local -Z: tilt it so it comes from (azimuth, elevation)."""
    obj.rotation_euler = (math.radians(90.0 - elevation_deg), 0.0, math.radians(azimuth_deg + 90.0))


#: The lights, relative to the valley: the w1 -> w2 axis is world x, so "across the valley" is
#: world +-y. `side` +1 comes from the camera's side of the valley, -1 from the far side;
#: `lean` turns it (degrees) towards the camera's end of the x axis, for modelling.
LIGHTS = {
    "key": {"colour": "#ffd9b0", "energy": 4.5, "elevation": 16.0, "side": 1, "lean": 25.0,
            "angle": 22.0, "glossy": True},  # a broad sun: soft highlights, not glints
    "rim": {"colour": "#7fa8ff", "energy": 2.0, "elevation": 10.0, "side": -1, "lean": -55.0,
            "angle": 8.0, "glossy": False},
    "fill": {"colour": "#fff2e0", "energy": 1.0, "elevation": 55.0, "side": 1, "lean": 0.0,
             "angle": 20.0, "glossy": False},
}  # fmt: skip


def light_azimuth(side: int, lean: float, camera_azimuth_deg: float) -> float:
    """Azimuth of a light across the valley (world +-y), on `side` of the camera (+1: the
    camera's side) and leaning `lean` degrees towards the camera's end of the x axis."""
    cam_y = math.sin(math.radians(camera_azimuth_deg))
    cam_x = math.cos(math.radians(camera_azimuth_deg))
    across = 90.0 if (cam_y >= 0) == (side > 0) else -90.0
    towards_camera_x = 1.0 if cam_x >= 0 else -1.0
    # turning from +-90 towards +x decreases |azimuth| on the +y side, increases on the -y side
    turn = lean * towards_camera_x * (-1.0 if across > 0 else 1.0)
    return across + turn


def turn_lights(collection, camera_azimuth_deg: float) -> None:
    """Place every sun across the valley relative to the camera's side of it (LIGHTS)."""
    for obj in collection.objects:
        spec = LIGHTS.get(obj.get("lossart_light", ""))
        if spec is not None:
            az = light_azimuth(spec["side"], spec["lean"], camera_azimuth_deg)
            aim_sun(obj, spec["elevation"], az)


def setup_lights(collection) -> list[bpy.types.Object]:
    """Key, rim and fill suns (LIGHTS), placed for the default view; `turn_lights` moves them
    with the camera. The key comes low across the valley, so its walls catch the light on one
    side and throw long soft shadows across the floor: the valley reads as a valley. The cool
    rim from the other side outlines the ridges."""
    lights = []
    for name, spec in LIGHTS.items():
        az = light_azimuth(spec["side"], spec["lean"], OVERVIEW["azimuth"])
        lights.append(
            _sun(f"lossart_{name}", collection, spec["colour"], spec["energy"],
                 spec["elevation"], az, spec["angle"], glossy=spec["glossy"])
        )  # fmt: skip
    return lights


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


# depth of field: soft, but the valley in focus from end to end (the camera now stands close)
OVERVIEW = {"elevation": 36.0, "azimuth": -116.0, "lens": 50.0, "fstop": 16.0}
ORBIT = {"elevation": 40.0, "azimuth": -116.0, "lens": 50.0, "fstop": 16.0}
FLY = {"lens": 28.0, "fstop": 16.0}
VIEW_CORNERS = (-116.0, -64.0, 116.0, 64.0)  # three-quarter views, in order of preference
#: Overview without a slab: elevations tried, lowest first (a low view shows more relief; a
#: higher one sees into a narrow valley)
VIEW_ELEVATIONS = (38.0, 44.0, 50.0, 56.0, 62.0, 70.0)
#: Orbit: elevations tried, lowest first; each must see the path from every angle of the sweep
#: (a view across a deep valley from 40 degrees hides its floor behind the near wall)
ORBIT_ELEVATIONS = (40.0, 46.0, 52.0, 58.0, 64.0, 70.0)
FILL = 0.9  # share of the half-width/half-height the framed points may reach
#: Overview without a slab: how far beyond the path and the optima the view reaches (world
#: units), so the valley's walls on both sides are in the picture; the rest of the window may
#: leave the frame (its edges fade out anyway).
VALLEY_MARGIN = 0.1 * SIZE


def _tangents(scene: bpy.types.Scene, cam) -> tuple[float, float]:
    r = scene.render
    w = max(1, r.resolution_x * r.pixel_aspect_x)
    h = max(1, r.resolution_y * r.pixel_aspect_y)
    return framing.half_fov_tangents(cam.data.lens, cam.data.sensor_width, w, h)


def framed_points(targets: framing.ViewTargets, slab: bool) -> np.ndarray:
    """The points the overview and the orbit keep inside the picture. A slab shows the whole
    terrain box; a terrain without one shows the path of every frame, the optima and the
    valley's walls around them, and lets the window's far corners go (its edges fade out)."""
    box = framing.box_corners(*targets.bounds)
    marked = [p for p in (targets.points, targets.paths) if p is not None and len(p)]
    if slab or not marked or targets.ground is None:
        return np.concatenate([box, targets.points]) if len(targets.points) else box
    focus = np.concatenate(marked)
    margin = VALLEY_MARGIN
    lo, hi = (np.asarray(b, dtype=np.float64)[:2] for b in targets.bounds)
    half = 0.5 * float(np.min(hi - lo))
    if float(np.ptp(focus[:, :2], axis=0).max()) < half:
        # the marks span little of the window (a random plane around one optimum): the basin
        # around them is the subject, so the view reaches most of the way to the window's sides
        margin = max(margin, 0.7 * half)
    walls = framing.surroundings(focus, *targets.ground, margin=margin)
    return np.concatenate([focus, walls])


def choose_view(elevations, azimuths, eye_at, sights) -> tuple[float, float]:
    """The (elevation, azimuth) to look from: the lowest elevation at which some azimuth sees
    everything it must (the path and the optima; at most 2% hidden behind the ground), and of
    those azimuths the one whose lines of sight pass highest above the ground (the camera
    stands on the valley's lower side and looks at the higher ground behind the path).
    `sights` are (watch, ground) pairs and `eye_at(el, az)` gives one eye for each (an orbit:
    where it is when that frame shows) or one for all; the worst sight counts. Where every view
    hides some, the one that hides least."""
    best = None
    for el in elevations:
        scored = []
        for az in azimuths:
            eyes = np.asarray(eye_at(el, az), dtype=np.float64).reshape(-1, 3)
            if len(eyes) == 1:
                eyes = np.repeat(eyes, len(sights), axis=0)
            hidden, high = 0.0, np.inf
            for eye, (watch, ground) in zip(eyes, sights, strict=True):
                gap = framing.clearance(watch, eye, *ground)
                hidden = max(hidden, float((gap < 0).mean()))
                high = min(high, float(np.median(np.minimum(gap, 1e3))))
            scored.append((hidden, -high, el, az))
        seen = [v for v in scored if v[0] <= 0.02]
        if seen:
            _, _, el, az = min(seen, key=lambda v: v[1])
            return el, az
        low = min(scored, key=lambda v: v[:2])
        best = low if best is None or low[:2] < best[:2] else best
    return best[2], best[3]


def _smoothstep(t: np.ndarray) -> np.ndarray:
    """The orbit driver's easing (Blender's smoothstep) at 0 <= t <= 1."""
    return t * t * (3.0 - 2.0 * t)


def apply_camera(
    scene: bpy.types.Scene,
    cam,
    pivot,
    target,
    preset: str,
    targets: framing.ViewTargets,
    slab: bool = False,
) -> None:
    """Place the camera for a preset at the render's aspect ratio, fitted to `targets`.

    Overview: an elevated three-quarter view, re-centred with a lens shift, from whichever
    corner hides the fewest of the last frame's path and points behind a ridge (the valley the
    path lies in faces the camera); it frames the paths, the optima and the valley's walls
    (`framed_points`), the whole box for a slab. Orbit: a view swinging ORBIT_SWEEP_DEG over
    the frame range, at a distance that keeps the same points in the frame at every angle, from
    the lowest elevation and the corner at which each frame's path and optima stay in sight
    from where the camera is when that frame shows. Flythrough positions come from
    `fly_camera` per frame. The suns follow the chosen corner (`turn_lights`)."""
    if preset not in CAMERA_PRESETS:
        raise ValueError(
            f"unknown camera preset {preset!r}; choose one of {', '.join(CAMERA_PRESETS)}"
        )
    framed = framed_points(targets, slab)
    lo, hi = framed.min(axis=0), framed.max(axis=0)
    centre = 0.5 * (lo + hi)
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

    def fit(elevation: float, azimuth: float) -> float:
        if preset == "overview":
            d = framing.view_direction(elevation, azimuth)
            return framing.fit_distance(framed, centre, d, tx, ty, FILL)
        half = 0.5 * ORBIT_SWEEP_DEG
        return max(
            framing.fit_distance(
                framed, centre, framing.view_direction(elevation, azimuth + a),
                tx, ty, FILL,
            )
            for a in np.linspace(-half, half, 15)
        )

    elevation, azimuth = look["elevation"], look["azimuth"]
    watch = targets.watch
    if targets.ground is not None and watch is not None and len(watch):
        if slab:
            heights = (look["elevation"],)
        else:
            heights = VIEW_ELEVATIONS if preset == "overview" else ORBIT_ELEVATIONS
        sights = [(watch, targets.ground)]
        sweep = np.zeros(1)
        if preset == "orbit":  # each sight from where the camera is when its frame shows
            sights = targets.sights or sights
            t = np.linspace(0.0, 1.0, len(sights))
            sweep = ORBIT_SWEEP_DEG * (_smoothstep(t) - 0.5)

        def eyes(el: float, az: float) -> np.ndarray:
            dist = fit(el, az)
            return np.array([centre + framing.view_direction(el, az + a) * dist for a in sweep])

        elevation, azimuth = choose_view(heights, VIEW_CORNERS, eyes, sights)
    dist = fit(elevation, azimuth)
    d = framing.view_direction(elevation, azimuth)
    for coll in target.users_collection:
        turn_lights(coll, azimuth)
    if preset == "overview":  # re-centre on the framed points with a lens shift, come closer
        dist, cu, cv = framing.fit_centred(framed, centre, d, tx, ty, FILL)
        cam.data.shift_x = 0.5 * cu * tx / max(tx, ty)
        cam.data.shift_y = 0.5 * cv * ty / max(tx, ty)
    offset = d * dist
    cam.location = (float(offset[0]), float(offset[1]), float(centre[2] + offset[2]))
    if preset == "orbit":  # eased in and out: the camera starts and stops without a jolt
        fs, fe = scene.frame_start, max(scene.frame_end, scene.frame_start + 1)
        sweep = math.radians(ORBIT_SWEEP_DEG)
        fcurve = pivot.driver_add("rotation_euler", 2)
        fcurve.driver.type = "SCRIPTED"
        fcurve.driver.expression = (
            f"{-0.5 * sweep:.6f} + {sweep:.6f} * smoothstep({fs}.0, {fe}.0, frame)"
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
