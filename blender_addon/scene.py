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

from .geometry import RELIEF, SIZE
from .looks import CAMERA_PRESETS, srgb_to_linear

ORBIT_SWEEP_DEG = 70.0


def setup_world(scene: bpy.types.Scene, colour: str = "#05060e", strength: float = 1.0) -> None:
    world = scene.world or bpy.data.worlds.new("lossart_world")
    scene.world = world
    if bpy.app.version < (5, 0, 0):
        world.use_nodes = True
    nt = world.node_tree
    nt.nodes.clear()
    bg = nt.nodes.new("ShaderNodeBackground")
    out = nt.nodes.new("ShaderNodeOutputWorld")
    bg.inputs["Color"].default_value = srgb_to_linear(colour)
    bg.inputs["Strength"].default_value = strength
    nt.links.new(bg.outputs["Background"], out.inputs["Surface"])


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
    return obj


def setup_lights(collection) -> list[bpy.types.Object]:
    key = _sun(
        "lossart_key",
        collection,
        "#ffd9b0",
        2.4,
        elevation_deg=16.0,
        azimuth_deg=-140.0,
        angle_deg=3.0,
    )
    rim = _sun(
        "lossart_rim",
        collection,
        "#7fa8ff",
        0.7,
        elevation_deg=14.0,
        azimuth_deg=60.0,
        angle_deg=8.0,
        glossy=False,  # outlines ridges without a blinding glint when a camera faces it
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


def _spherical(
    distance: float, elevation_deg: float, azimuth_deg: float, z0: float
) -> tuple[float, float, float]:
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    return (
        distance * math.cos(el) * math.cos(az),
        distance * math.cos(el) * math.sin(az),
        z0 + distance * math.sin(el),
    )


def apply_camera(
    scene: bpy.types.Scene,
    cam,
    pivot,
    target,
    preset: str,
    height_scale: float,
    focus_z: float | None = None,
) -> None:
    """Place the camera for a preset (flythrough positions come from `fly_camera` per frame)."""
    if preset not in CAMERA_PRESETS:
        raise ValueError(
            f"unknown camera preset {preset!r}; choose one of {', '.join(CAMERA_PRESETS)}"
        )
    relief = RELIEF * height_scale
    pivot.driver_remove("rotation_euler", 2)
    pivot.rotation_euler = (0.0, 0.0, 0.0)
    pivot.location = (0.0, 0.0, 0.0)
    target.location = (0.0, 0.0, relief * 0.25 if focus_z is None else focus_z)
    cam.data.lens = 42.0
    if preset == "overview":
        cam.location = _spherical(SIZE * 1.15, 50.0, -120.0, relief * 0.2)
        cam.data.dof.aperture_fstop = 2.4
    elif preset == "orbit":
        cam.location = _spherical(SIZE * 1.15, 40.0, -115.0, relief * 0.2)
        cam.data.dof.aperture_fstop = 2.0
        fs, fe = scene.frame_start, max(scene.frame_end, scene.frame_start + 1)
        rate = math.radians(ORBIT_SWEEP_DEG) / (fe - fs)
        fcurve = pivot.driver_add("rotation_euler", 2)
        fcurve.driver.type = "SCRIPTED"
        fcurve.driver.expression = (
            f"{-0.5 * math.radians(ORBIT_SWEEP_DEG):.6f} + (frame - {fs}) * {rate:.8f}"
        )
    elif preset == "flythrough":
        cam.data.lens = 24.0
        cam.data.dof.aperture_fstop = 4.0


def fly_camera(cam, target, path_world: np.ndarray, progress: float, ceiling: float) -> None:
    """Put the camera behind the path point at `progress` (0..1), above the highest terrain
    (`ceiling`, world z), looking at the path a sixth of its length ahead."""
    if len(path_world) < 2:
        return
    n = len(path_world)
    t = 0.05 + min(max(progress, 0.0), 1.0) * 0.7
    k = int(round(t * (n - 1)))
    ahead = min(n - 1, k + max(2, n // 6))
    here, there = path_world[k], path_world[ahead]
    direction = there[:2] - here[:2]
    norm = float(np.hypot(*direction)) or 1.0
    back = direction / norm
    cam.location = (
        float(here[0] - back[0] * 3.0),
        float(here[1] - back[1] * 3.0),
        float(max(here[2] + 1.5, ceiling)),
    )
    target.location = tuple(float(v) for v in there)


def setup_bloom(scene: bpy.types.Scene, strength: float = 0.5, threshold: float = 1.0) -> bool:
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
            glare.inputs["Size"].default_value = 0.6
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
