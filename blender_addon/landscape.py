"""Build a loss landscape scene from a bundle and bring it to any frame.

`import_landscape` builds everything once (terrain, path, markers, camera, lights, world);
`update` is what the frame-change handler calls: scene frame -> bundle position (playback speed;
fractional positions interpolate heights) -> heights, path, markers and, for the fly-through,
the camera. Settings live in `scene.lossart` (props.py); this module reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import bpy

from . import materials, path, terrain
from . import scene as stage
from .bundle import Bundle, BundleError, load_bundle, manifest_path
from .geometry import RELIEF, WorldMap

COLLECTION = "Loss landscape"
MARKER_LIFT = 0.05

_BUNDLES: dict[str, tuple[float, Bundle]] = {}
_BUILDING = False  # property update callbacks do nothing while a scene is being built


@dataclass
class LandscapeOptions:
    """What the panel and the CLI can set; mirrors `scene.lossart`."""

    palette: str = materials.DEFAULT_PALETTE
    height_scale: float = 1.0
    path_glow: float = 10.0
    camera: str = "overview"
    show_bends: bool = False
    playback_speed: float = 1.0
    frame_start: int = 1


def get_bundle(bundle_path: str) -> Bundle:
    """The bundle at `bundle_path`, cached per manifest (reloaded when the manifest changes)."""
    mpath = manifest_path(
        bpy.path.abspath(bundle_path) if bundle_path.startswith("//") else bundle_path
    )
    key = str(mpath.resolve())
    mtime = mpath.stat().st_mtime
    cached = _BUNDLES.get(key)
    if cached is None or cached[0] != mtime:
        _BUNDLES[key] = (mtime, load_bundle(mpath))
    return _BUNDLES[key][1]


def active_bundle(scene: bpy.types.Scene) -> Bundle | None:
    s = getattr(scene, "lossart", None)
    if s is None or not s.bundle_path or s.terrain is None:
        return None
    return get_bundle(s.bundle_path)


def import_landscape(
    scene: bpy.types.Scene, bundle_path: str | Path, options: LandscapeOptions | None = None
) -> Bundle:
    """Replace any landscape in `scene` with one built from the bundle; BundleError if broken."""
    global _BUILDING
    opts = options or LandscapeOptions()
    materials._check(opts.palette)
    if opts.camera not in stage.CAMERA_PRESETS:
        raise ValueError(
            f"unknown camera preset {opts.camera!r}; "
            f"choose one of {', '.join(stage.CAMERA_PRESETS)}"
        )
    mpath = manifest_path(bundle_path)
    bundle = load_bundle(mpath)  # fully checked before the scene is touched
    _BUNDLES[str(mpath.resolve())] = (mpath.stat().st_mtime, bundle)
    remove_landscape(scene)
    _BUILDING = True
    try:
        s = scene.lossart
        s.bundle_path = str(mpath.resolve())
        s.palette, s.height_scale, s.path_glow = opts.palette, opts.height_scale, opts.path_glow
        s.camera_preset, s.show_bends = opts.camera, opts.show_bends
        s.playback_speed, s.frame_start, s.baked = opts.playback_speed, opts.frame_start, False

        coll = bpy.data.collections.new(COLLECTION)
        scene.collection.children.link(coll)
        s.collection = coll
        wmap = WorldMap.for_bundle(bundle)
        s.terrain = terrain.build_terrain("lossart_terrain", bundle, wmap, coll)
        s.terrain.data.materials.append(materials.terrain_material("lossart_terrain", opts.palette))
        s.terrain.data.materials.append(materials.side_material("lossart_sides"))

        glow_colour, marker_colour = materials.PALETTES[opts.palette][1:3]
        s.path = path.build_path("lossart_path", coll)
        s.path.data.materials.append(
            materials.emission_material("lossart_path", glow_colour, opts.path_glow)
        )
        marker_mat = materials.emission_material("lossart_marker", marker_colour, 6.0)
        marker_mesh = path.sphere_mesh("lossart_marker", path.MARKER_RADIUS)
        marker_mesh.materials.append(marker_mat)
        for obj in path.build_markers(
            "lossart_point_", [p.name for p in bundle.frames[0].points], marker_mesh, coll
        ):
            obj["lossart_point"] = obj.name.removeprefix("lossart_point_")
        bend_mesh = path.sphere_mesh("lossart_bend", path.BEND_RADIUS)
        bend_mesh.materials.append(materials.emission_material("lossart_bend", glow_colour, 3.0))
        nbends = max(len(f.bends) for f in bundle.frames)
        for k, obj in enumerate(
            path.build_markers("lossart_bend_", [str(k) for k in range(nbends)], bend_mesh, coll)
        ):
            obj["lossart_bend"] = k

        stage.setup_world(scene)
        stage.setup_bloom(scene)
        stage.setup_lights(coll)
        s.camera, s.pivot, s.target = stage.build_camera(scene, coll)
        scene.render.use_lock_interface = True  # the handler edits data while rendering
    finally:
        _BUILDING = False
    retime(scene)
    return bundle


def remove_landscape(scene: bpy.types.Scene) -> None:
    """Delete the landscape's objects and their data, leaving the rest of the scene alone."""
    s = getattr(scene, "lossart", None)
    coll = s.collection if s is not None else None
    if coll is None:
        return
    datas = []
    for obj in list(coll.objects):
        if obj.data is not None and obj.data not in datas:
            datas.append(obj.data)
        bpy.data.objects.remove(obj)
    for data in datas:
        mats = list(getattr(data, "materials", []) or [])
        _remove_id(data)
        for mat in mats:
            if mat is not None and mat.users == 0:
                bpy.data.materials.remove(mat)
    bpy.data.collections.remove(coll)


def _remove_id(data) -> None:
    if data.users:
        return
    for kind, coll in (
        (bpy.types.Mesh, bpy.data.meshes),
        (bpy.types.Curve, bpy.data.curves),
        (bpy.types.Camera, bpy.data.cameras),
        (bpy.types.Light, bpy.data.lights),
    ):
        if isinstance(data, kind):
            coll.remove(data)
            return


def bundle_position(scene: bpy.types.Scene, bundle: Bundle, frame: float | None = None) -> float:
    s = scene.lossart
    f = scene.frame_current if frame is None else frame
    pos = (f - s.frame_start) * s.playback_speed
    return min(max(pos, 0.0), len(bundle.frames) - 1.0)


def frame_count(bundle: Bundle, speed: float) -> int:
    """Scene frames needed to play every bundle frame at `speed` bundle frames per scene frame."""
    return 1 + math.ceil((len(bundle.frames) - 1) / max(speed, 1e-6) - 1e-9)


def retime(scene: bpy.types.Scene) -> None:
    """Fit the scene's frame range to the bundle at the chosen speed, then refresh."""
    if _BUILDING:
        return
    bundle = active_bundle(scene)
    if bundle is None:
        return
    s = scene.lossart
    scene.frame_start = s.frame_start
    scene.frame_end = s.frame_start + frame_count(bundle, s.playback_speed) - 1
    refresh(scene)


def refresh(scene: bpy.types.Scene) -> None:
    """Apply palette, glow, bends and camera preset from `scene.lossart`, then redraw the frame."""
    if _BUILDING:
        return
    bundle = active_bundle(scene)
    if bundle is None:
        return
    s = scene.lossart
    mat = s.terrain.active_material
    if mat is not None and "lossart_palette" in mat.node_tree.nodes:
        materials.apply_palette(mat, s.palette)
        materials.set_relief(mat, RELIEF * s.height_scale)
    glow_colour = materials.PALETTES[s.palette][1]
    if s.path.active_material is not None:
        materials.set_emission(s.path.active_material, glow_colour, s.path_glow)
    if not s.baked:
        stage.apply_camera(scene, s.camera, s.pivot, s.target, s.camera_preset, s.height_scale)
    update(scene)


def update(scene: bpy.types.Scene, frame: float | None = None) -> None:
    """Bring terrain, path, markers (and the fly-through camera) to the scene's frame."""
    bundle = active_bundle(scene)
    s = scene.lossart
    if bundle is None or s.baked or _BUILDING:
        return
    wmap = WorldMap.for_bundle(bundle)
    state = bundle.state(bundle_position(scene, bundle, frame))
    hs = s.height_scale
    terrain.set_heights(s.terrain, state.heights, wmap, hs)
    path_world = wmap.world(state.path, hs, lift=path.PATH_LIFT)
    path.set_path(s.path, path_world)
    points = {
        name: xyz
        for name, xyz in zip(
            state.point_names, wmap.world(state.points, hs, lift=MARKER_LIFT), strict=True
        )
    }
    bends = wmap.world(state.bends, hs, lift=MARKER_LIFT)
    for obj in s.collection.objects:
        if "lossart_point" in obj:
            xyz = points.get(obj["lossart_point"])
            path.place([obj], [] if xyz is None else [xyz])
        elif "lossart_bend" in obj:
            k = obj["lossart_bend"]
            path.place([obj], bends[k : k + 1], visible=s.show_bends)
    if s.camera_preset == "flythrough":
        span = max(scene.frame_end - scene.frame_start, 1)
        progress = (scene.frame_current - scene.frame_start) / span
        ceiling = float(terrain.vertex_z(s.terrain).max()) + 0.5
        stage.fly_camera(s.camera, s.target, path_world, progress, ceiling)
    elif len(path_world):
        # focus on the path's middle: the valley is where the eye goes
        mid = path_world[len(path_world) // 2]
        s.target.location = (float(mid[0]) * 0.5, float(mid[1]) * 0.5, float(mid[2]))


__all__ = [
    "BundleError",
    "LandscapeOptions",
    "import_landscape",
    "remove_landscape",
    "update",
    "refresh",
    "retime",
    "get_bundle",
    "frame_count",
    "bundle_position",
]
