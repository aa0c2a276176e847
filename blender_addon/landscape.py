"""Build a loss landscape scene from a bundle and bring it to any frame.

`import_landscape` builds everything once (terrain, path, markers, camera, lights, world);
`update` is what the frame-change handler calls: scene frame -> bundle position (timeline.py;
fractional positions interpolate heights) -> heights, path, markers and, for the fly-through,
the camera. The look lives in `scene.lossart` (props.py, generated from look.py's `Look`);
this module reads it.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..format.bundle import Bundle, BundleError, load_bundle, manifest_path
from ..format.look import Look, LookError
from ..format.styles import style_spec
from ..format.timeline import Timeline
from . import framing, materials, output, path, surface
from . import scene as stage
from .world import SIZE, WorldMap

COLLECTION = "Loss landscape"
MARKER_LIFT = path.MARKER_RADIUS * 0.6  # half sunk into the surface, like a pearl set in it
MARKER_GLOW = 2.5  # low enough that a marker keeps its hue instead of clipping to white
# three or more points (the plane of three optima) get one colour each, to tell them apart
MARKER_COLOURS = ("#ffffff", "#ffd23f", "#ff5c9d", "#5cf2a0", "#9fb4ff")

_BUNDLES: dict[str, tuple[float, Bundle]] = {}
_BUILDING = False  # property update callbacks do nothing while a scene is being built


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
    scene: bpy.types.Scene, bundle_path: str | Path, look: Look | None = None
) -> Bundle:
    """Replace any landscape in `scene` with one built from the bundle, showing `look` (which
    is copied onto `scene.lossart`); BundleError if the bundle is broken, LookError if the look
    is. Blender's render settings are left alone (`output.apply_look` sets them)."""
    global _BUILDING
    opts = (look or Look()).validate()
    mpath = manifest_path(bundle_path)
    bundle = load_bundle(mpath)  # fully checked before the scene is touched
    _BUNDLES[str(mpath.resolve())] = (mpath.stat().st_mtime, bundle)
    remove_landscape(scene)
    _BUILDING = True
    try:
        s = scene.lossart
        s.bundle_path = str(mpath.resolve())
        opts.apply_to(s)
        s.baked = False

        coll = bpy.data.collections.new(COLLECTION)
        scene.collection.children.link(coll)
        s.collection = coll
        wmap = WorldMap.for_bundle(bundle)
        s.terrain = surface.build_surface("lossart_terrain", bundle, wmap, coll)
        s.terrain.data.materials.append(
            materials.terrain_material("lossart_terrain", opts.palette, opts.style)
        )
        s.terrain.data.materials.append(materials.side_material("lossart_sides"))

        glow_colour, marker_colour = materials.PALETTES[opts.palette][1:3]
        s.path = path.build_path("lossart_path", coll)
        s.path.visible_glossy = False  # no mirrored streaks of the glow in the glossy surface
        s.path.data.materials.append(
            materials.emission_material("lossart_path", glow_colour, opts.path_glow)
        )
        names = [p.name for p in bundle.frames[0].points]
        for k, obj in enumerate(
            path.build_markers("lossart_point_", names, None, coll, path.MARKER_RADIUS)
        ):
            obj["lossart_point"] = obj.name.removeprefix("lossart_point_")
            obj.visible_glossy = False
            colour = MARKER_COLOURS[k % len(MARKER_COLOURS)] if len(names) > 2 else marker_colour
            obj.data.materials.append(
                materials.emission_material(f"lossart_marker_{k}", colour, MARKER_GLOW)
            )
        bend_mesh = path.sphere_mesh("lossart_bend", path.BEND_RADIUS)
        bend_mesh.materials.append(
            materials.emission_material("lossart_bend", glow_colour, MARKER_GLOW)
        )
        nbends = max(len(f.bends) for f in bundle.frames)
        for k, obj in enumerate(
            path.build_markers("lossart_bend_", [str(k) for k in range(nbends)], bend_mesh, coll)
        ):
            obj["lossart_bend"] = k
            obj.visible_glossy = False

        stage.setup_world(scene, opts.style)
        stage.setup_bloom(scene)
        stage.setup_lights(coll, opts.style)
        s.camera, s.pivot, s.target = stage.build_camera(scene, coll)
        scene.render.use_lock_interface = True  # the handler edits data while rendering
    finally:
        _BUILDING = False
    retime(scene)
    return bundle


def hide_marks(scene: bpy.types.Scene) -> None:
    """Hide the path, the markers and the bends from every kind of ray, their light included:
    a render of the terrain alone, to measure what the terrain's own shading does (the frame
    handler toggles `hide_render`, so the rays' visibility is what is switched off here)."""
    s = scene.lossart
    for obj in s.collection.objects:
        if obj.type in {"LIGHT", "CAMERA"} or obj == s.terrain:
            continue
        for ray in ("camera", "diffuse", "glossy", "transmission", "volume_scatter", "shadow"):
            setattr(obj, f"visible_{ray}", False)


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


def timeline(scene: bpy.types.Scene, bundle: Bundle) -> Timeline:
    """The scene's timeline: which scene frame shows which bundle frame."""
    s = scene.lossart
    return Timeline(len(bundle.frames), s.playback_speed, s.frame_start)


def bundle_position(scene: bpy.types.Scene, bundle: Bundle, frame: float | None = None) -> float:
    """The bundle position the scene's current frame (or `frame`) shows."""
    return timeline(scene, bundle).position(scene.frame_current if frame is None else frame)


def retime(scene: bpy.types.Scene) -> None:
    """Fit the scene's frame range to the bundle at the chosen speed, then refresh."""
    if _BUILDING:
        return
    bundle = active_bundle(scene)
    if bundle is None:
        return
    t = timeline(scene, bundle)
    scene.frame_start, scene.frame_end = t.frame_start, t.frame_end
    refresh(scene)


def apply_render(scene: bpy.types.Scene) -> None:
    """Set Blender's render settings from `scene.lossart`'s render options, then refit the
    cameras to the new aspect ratio (what changing one of them in the panel does)."""
    if _BUILDING:
        return
    look = Look.from_settings(scene.lossart)
    output.apply_look(scene, look)
    refresh(scene)


def refresh(scene: bpy.types.Scene) -> None:
    """Apply palette, glow, bends and camera preset from `scene.lossart`, then redraw the frame."""
    if _BUILDING:
        return
    bundle = active_bundle(scene)
    if bundle is None:
        return
    s = scene.lossart
    restyle(scene)
    mat = s.terrain.active_material
    wmap = WorldMap.for_bundle(bundle)
    if mat is not None and "lossart_palette" in mat.node_tree.nodes:
        materials.apply_palette(mat, s.palette)
        materials.set_relief(mat, wmap.top(height_scale(s)))
        xs, ys = wmap.grid_xy(bundle)
        materials.set_fade(mat, float(xs.max()), float(ys.max()), on=not s.slab)
    glow_colour = materials.PALETTES[s.palette][1]
    if s.path.active_material is not None:
        materials.set_emission(s.path.active_material, glow_colour, s.path_glow)
    strength = style_spec(s.style).contour_strength if s.contours else 0.0
    if mat is not None:
        materials.set_contours(mat, strength)
    if not s.baked:
        eye = stage.apply_camera(
            scene, s.camera, s.pivot, s.target, s.camera_preset,
            view_targets(bundle, height_scale(s), s.slab), slab=s.slab, style=s.style,
        )  # fmt: skip
        if mat is not None:
            xs, ys = wmap.grid_xy(bundle)
            _haze_for_view(mat, eye, np.array(s.target.location), float(xs.max()), float(ys.max()))
    update(scene)


def restyle(scene: bpy.types.Scene) -> None:
    """Rebuild what the style decides (terrain material, world, lights) where it was built for
    another style: the panel's Style menu and `--style` switch the whole look."""
    s = scene.lossart
    mat = s.terrain.active_material
    if mat is not None and mat.get("lossart_style", "classic") != s.style:
        new = materials.terrain_material("lossart_terrain", s.palette, s.style)
        s.terrain.data.materials[0] = new
        if mat.users == 0:
            bpy.data.materials.remove(mat)
    if scene.world is None or scene.world.get("lossart_style") != s.style:
        stage.setup_world(scene, s.style)
    stage.style_lights(s.collection, s.style, stage.OVERVIEW["azimuth"])


def _haze_for_view(mat, eye, aim: np.ndarray, half_x: float, half_y: float) -> None:
    """Haze from a little short of the aim point to the farthest corner of the window (half
    extents `half_x`, `half_y`), seen from where the camera stands (`eye`; the fly-through
    keeps the last values)."""
    if eye is None:
        return
    near = 0.8 * float(np.linalg.norm(np.asarray(eye) - aim))
    corners = np.array([[x, y, 0.0] for x in (-half_x, half_x) for y in (-half_y, half_y)])
    far = float(np.linalg.norm(corners - np.asarray(eye), axis=1).max())
    materials.set_haze(mat, near, far)


#: Frames an orbit is checked against, spread evenly from the first to the last
SIGHTS = 5


def height_scale(s) -> float:
    """The heights' scale in the scene: the look's height scale times the style's relief
    (the hero's restrained exaggeration: its low raking light needs slopes to shade)."""
    return float(s.height_scale) * style_spec(s.style).relief


def view_targets(bundle: Bundle, height_scale: float, slab: bool = False) -> framing.ViewTargets:
    """What every camera is fitted to: the terrain's bounding box (down to the base for a
    slab), every frame's marked points (with their markers' size) and path, the last frame's
    ground and what must not hide behind it (its path and points, a little above the surface:
    the trained curve is the story), and the same for SIGHTS frames from first to last (an
    orbit shows each at its own point of the sweep)."""
    wmap = WorldMap.for_bundle(bundle)
    xs, ys = wmap.grid_xy(bundle)
    top = max(wmap.top(height_scale), 1e-3)
    lo = np.array([xs.min(), ys.min(), surface.BASE_Z if slab else 0.0])
    hi = np.array([xs.max(), ys.max(), top])
    pts = [
        wmap.world(np.array([[*p.xy, p.z] for p in f.points]), height_scale, lift=MARKER_LIFT)
        for f in bundle.frames
        if f.points
    ]
    points = np.concatenate(pts) if pts else np.zeros((0, 3))
    if len(points):
        r = path.MARKER_RADIUS
        offsets = np.array([[dx, dy, dz] for dx in (-r, r) for dy in (-r, r) for dz in (-r, r)])
        points = (points[:, None, :] + offsets[None]).reshape(-1, 3)
    paths = [
        wmap.world(f.path[:: max(1, len(f.path) // 32)], height_scale, lift=path.PATH_LIFT)
        for f in bundle.frames
        if len(f.path)
    ]
    def sight(position: float) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        state = bundle.state(position)
        watch = [wmap.world(state.points, height_scale, lift=MARKER_LIFT)]
        if len(state.path):
            watch.append(wmap.world(state.path, height_scale, lift=path.PATH_LIFT)[::4])
        ground = (wmap.world_z(state.heights, height_scale), xs.astype(np.float64),
                  ys.astype(np.float64))  # fmt: skip
        return np.concatenate(watch), ground

    last = len(bundle.frames) - 1.0
    sights = [sight(float(p)) for p in np.linspace(0.0, last, SIGHTS)]
    watch, ground = sights[-1]
    return framing.ViewTargets(
        bounds=(lo, hi),
        points=points,
        paths=np.concatenate(paths) if paths else np.zeros((0, 3)),
        ground=ground,
        watch=watch,
        sights=sights,
    )


def update(scene: bpy.types.Scene, frame: float | None = None) -> None:
    """Bring terrain, path, markers (and the fly-through camera) to the scene's frame."""
    bundle = active_bundle(scene)
    s = scene.lossart
    if bundle is None or s.baked or _BUILDING:
        return
    wmap = WorldMap.for_bundle(bundle)
    state = bundle.state(bundle_position(scene, bundle, frame))
    hs = height_scale(s)
    surface.set_heights(s.terrain, state.heights, wmap, hs, slab=s.slab)
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
        # a fixed ceiling over the whole height range: the camera never dips with the terrain
        ceiling = wmap.top(hs) * 1.15
        stage.fly_camera(s.camera, s.target, path_world, progress, ceiling, SIZE)


__all__ = [
    "BundleError",
    "Look",
    "LookError",
    "import_landscape",
    "remove_landscape",
    "update",
    "refresh",
    "retime",
    "apply_render",
    "get_bundle",
    "timeline",
    "bundle_position",
]
