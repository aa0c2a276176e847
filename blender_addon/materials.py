"""Materials: the terrain coloured by height through a named palette, the glowing path, markers.

The terrain shader reads the per-vertex 0..1 height attribute (not world z), so a palette looks
the same at any height scale. Palette stops are given in sRGB and converted to Blender's linear
colour space. Optional faint contour lines every 1/CONTOURS of the height range (on by
default, `set_contours`) help read the relief when a picture is meant to be read, not hung.
Unless the look asks for a slab, the surface turns transparent over the last FADE of its
window towards each border (`set_fade`), so the terrain has no edge: it dissolves into the
world's background. Its underside is never drawn (a low camera must not see through a gap).
"""

from __future__ import annotations

import bpy

from ..format.presets import DEFAULT_PALETTE, PALETTES, palette_names, srgb_to_linear  # noqa: F401
from ..format.styles import style_spec
from .surface import HEIGHT_ATTR
from .world import SIZE

CONTOURS = 10
CONTOUR_WIDTH = 0.012  # world units (the terrain is 10 wide)
CONTOUR_STRENGTH = 0.14  # when shown (off by default: the surface should read as sculpted)
FADE = 0.03 * SIZE  # world units over which the surface fades out towards each border
OCCLUSION_DISTANCE = 0.06 * SIZE  # how far ambient occlusion looks for nearby ground
RIDGELINES = 64  # lines across the window's longer side (ridgelines style)
RIDGELINE_WIDTH = 0.09  # half-width of a line, as a share of the spacing


def empty_node_tree(owner, output_type: str):
    """`owner`'s (a material's or world's) node tree, emptied, with one output node of
    `output_type`; returns (tree, output). Nodes are always on (and the switch deprecated) from 5.0."""
    if bpy.app.version < (5, 0, 0):
        owner.use_nodes = True
    nt = owner.node_tree
    nt.nodes.clear()
    return nt, nt.nodes.new(output_type)


def _check(name: str) -> None:
    if name not in PALETTES:
        raise ValueError(f"unknown palette {name!r}; choose one of {', '.join(PALETTES)}")


def terrain_material(name: str, palette: str, style: str = "classic") -> bpy.types.Material:
    """Height-coloured terrain material with optional faint contour lines, in the surface the
    style asks for (styles.py): "glossy" (classic: a lacquered sheet), "matte" (hero: rough,
    darkened by ambient occlusion in the valleys, fading into haze with distance) or "lines"
    (ridgelines: pale cross-sections on black). The style is kept on the material
    (`mat["lossart_style"]`) so a change of style knows to build a new one."""
    _check(palette)
    spec = style_spec(style)
    mat = bpy.data.materials.new(name)
    mat["lossart_style"] = style
    nt, out = empty_node_tree(mat, "ShaderNodeOutputMaterial")
    bsdf = nt.nodes.new("ShaderNodeBsdfPrincipled")
    attr = nt.nodes.new("ShaderNodeAttribute")
    attr.attribute_type = "GEOMETRY"
    attr.attribute_name = HEIGHT_ATTR
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    ramp.name = "lossart_palette"
    # contour lines: pingpong(h * CONTOURS, 0.5) is near 0 on each contour
    scale = nt.nodes.new("ShaderNodeMath")
    scale.operation = "MULTIPLY"
    scale.inputs[1].default_value = CONTOURS
    ping = nt.nodes.new("ShaderNodeMath")
    ping.operation = "PINGPONG"
    ping.inputs[1].default_value = 0.5
    # constant line width on screen-independent terms: a contour is within CONTOUR_WIDTH world
    # units where pingpong < CONTOUR_WIDTH * CONTOURS * |grad h|, and |grad h| = tan(slope) /
    # relief, with the slope from the shading normal. Flat ground gets no line (no contour there).
    geo = nt.nodes.new("ShaderNodeNewGeometry")
    sep = nt.nodes.new("ShaderNodeSeparateXYZ")
    relief = nt.nodes.new("ShaderNodeValue")
    relief.name = "lossart_relief"
    relief.outputs[0].default_value = 0.2 * SIZE  # set_relief sets the bundle's
    nz = _math(nt, "MAXIMUM", sep.outputs["Z"], 0.05)
    sin2 = _math(nt, "SUBTRACT", 1.0, _math(nt, "MULTIPLY", nz, nz))
    tan = _math(nt, "DIVIDE", _math(nt, "SQRT", _math(nt, "MAXIMUM", sin2, 0.0), 0.0), nz)
    grad = _math(nt, "DIVIDE", tan, relief.outputs[0])
    # at most 12% of each contour interval, so lines never merge on steep walls
    width = _math(nt, "MINIMUM", _math(nt, "MULTIPLY", grad, CONTOUR_WIDTH * CONTOURS), 0.06)
    nt.links.new(geo.outputs["Normal"], sep.inputs["Vector"])
    line = nt.nodes.new("ShaderNodeMath")
    line.operation = "LESS_THAN"
    nt.links.new(width, line.inputs[1])
    strength = nt.nodes.new("ShaderNodeMath")
    strength.operation = "MULTIPLY"
    strength.name = "lossart_contours"
    strength.inputs[1].default_value = 0.0
    # no contour on the capped plateau or the floor (h exactly 1 or 0 would be all line)
    below_cap = nt.nodes.new("ShaderNodeMath")
    below_cap.operation = "LESS_THAN"
    below_cap.inputs[1].default_value = 0.995
    above_floor = nt.nodes.new("ShaderNodeMath")
    above_floor.operation = "GREATER_THAN"
    above_floor.inputs[1].default_value = 0.005
    inside = nt.nodes.new("ShaderNodeMath")
    inside.operation = "MULTIPLY"
    gated = nt.nodes.new("ShaderNodeMath")
    gated.operation = "MULTIPLY"
    mix = nt.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "SCREEN"
    mix.inputs["B"].default_value = (1.0, 1.0, 1.0, 1.0)

    nt.links.new(attr.outputs["Fac"], ramp.inputs["Fac"])
    nt.links.new(attr.outputs["Fac"], scale.inputs[0])
    nt.links.new(scale.outputs[0], ping.inputs[0])
    nt.links.new(ping.outputs[0], line.inputs[0])
    nt.links.new(line.outputs[0], strength.inputs[0])
    nt.links.new(attr.outputs["Fac"], below_cap.inputs[0])
    nt.links.new(attr.outputs["Fac"], above_floor.inputs[0])
    nt.links.new(below_cap.outputs[0], inside.inputs[0])
    nt.links.new(above_floor.outputs[0], inside.inputs[1])
    nt.links.new(strength.outputs[0], gated.inputs[0])
    nt.links.new(inside.outputs[0], gated.inputs[1])
    nt.links.new(gated.outputs[0], mix.inputs["Factor"])
    nt.links.new(ramp.outputs["Color"], mix.inputs["A"])
    base = mix.outputs["Result"]
    if spec.material == "lines":
        surface = _ridgelines(nt, base)
    else:
        if spec.occlusion > 0:
            base = _occluded(nt, base, spec.occlusion, spec.occlusion_samples)
        nt.links.new(base, bsdf.inputs["Base Color"])
        surface = bsdf.outputs["BSDF"]
        if spec.material == "glossy":
            bsdf.inputs["Roughness"].default_value = 0.4
            bsdf.inputs["Coat Weight"].default_value = 0.45  # a lacquered, sculpted surface
            bsdf.inputs["Coat Roughness"].default_value = 0.3
            bsdf.inputs["Specular IOR Level"].default_value = 0.25
        else:  # matte ground: no highlight to wash out the palette
            bsdf.inputs["Roughness"].default_value = 0.85
            bsdf.inputs["Specular IOR Level"].default_value = 0.12
        if spec.haze > 0:
            surface = _hazed(nt, surface, spec.haze, spec.haze_colour)
    nt.links.new(_edge_fade(nt, surface), out.inputs["Surface"])
    apply_palette(mat, palette)
    return mat


def _occluded(nt, colour, amount: float, samples: int):
    """`colour` darkened where ambient occlusion finds nearby ground (valleys, the feet of
    walls): times (1 - amount + amount * AO), AO over OCCLUSION_DISTANCE world units."""
    ao = nt.nodes.new("ShaderNodeAmbientOcclusion")
    ao.name = "lossart_occlusion"
    ao.samples = samples
    ao.inputs["Distance"].default_value = OCCLUSION_DISTANCE
    factor = _math(nt, "ADD", 1.0 - amount, _math(nt, "MULTIPLY", ao.outputs["AO"], amount))
    mul = nt.nodes.new("ShaderNodeMix")
    mul.data_type = "RGBA"
    mul.blend_type = "MULTIPLY"
    mul.inputs["Factor"].default_value = 1.0
    nt.links.new(colour, mul.inputs["A"])
    grey = nt.nodes.new("ShaderNodeCombineColor")
    for channel in ("Red", "Green", "Blue"):
        nt.links.new(factor, grey.inputs[channel])
    nt.links.new(grey.outputs["Color"], mul.inputs["B"])
    return mul.outputs["Result"]


def _hazed(nt, surface, amount: float, colour: str):
    """Aerial perspective: the surface mixed towards a glowing haze colour with the distance
    from the camera, from nothing at `lossart_haze_near` to `amount` at `lossart_haze_far`
    (world units, set by `set_haze` when the camera is placed)."""
    cam = nt.nodes.new("ShaderNodeCameraData")
    near = nt.nodes.new("ShaderNodeValue")
    near.name = "lossart_haze_near"
    near.outputs[0].default_value = SIZE
    far = nt.nodes.new("ShaderNodeValue")
    far.name = "lossart_haze_far"
    far.outputs[0].default_value = 3 * SIZE
    ramp = nt.nodes.new("ShaderNodeMapRange")
    ramp.interpolation_type = "SMOOTHSTEP"
    ramp.clamp = True
    ramp.inputs["To Max"].default_value = amount
    nt.links.new(cam.outputs["View Distance"], ramp.inputs["Value"])
    nt.links.new(near.outputs[0], ramp.inputs["From Min"])
    nt.links.new(far.outputs[0], ramp.inputs["From Max"])
    glow = nt.nodes.new("ShaderNodeEmission")
    glow.inputs["Color"].default_value = srgb_to_linear(colour)
    glow.inputs["Strength"].default_value = 1.0
    mix = nt.nodes.new("ShaderNodeMixShader")
    nt.links.new(ramp.outputs["Result"], mix.inputs["Fac"])
    nt.links.new(surface, mix.inputs[1])
    nt.links.new(glow.outputs["Emission"], mix.inputs[2])
    return mix.outputs["Shader"]


def set_haze(mat: bpy.types.Material, near: float, far: float) -> None:
    """Where the haze begins and where it is thickest (distances from the camera)."""
    nodes = mat.node_tree.nodes
    if "lossart_haze_near" in nodes:
        nodes["lossart_haze_near"].outputs[0].default_value = float(near)
        nodes["lossart_haze_far"].outputs[0].default_value = float(max(far, near + 1e-3))


def _ridgelines(nt, colour):
    """Pale lines along world x every SIZE / RIDGELINES units of y on a black surface: seen
    low across the valley, each is a cross-section of the terrain, and the black ground in
    front hides the parts of the lines behind it. The lines take a little of the palette."""
    coord = nt.nodes.new("ShaderNodeTexCoord")
    sep = nt.nodes.new("ShaderNodeSeparateXYZ")
    nt.links.new(coord.outputs["Object"], sep.inputs["Vector"])
    wave = _math(nt, "FRACT", _math(nt, "MULTIPLY", sep.outputs["Y"], RIDGELINES / SIZE), 0.0)
    off = _math(nt, "ABSOLUTE", _math(nt, "SUBTRACT", wave, 0.5), 0.0)
    line = nt.nodes.new("ShaderNodeMapRange")
    line.interpolation_type = "SMOOTHSTEP"
    line.clamp = True
    line.inputs["From Min"].default_value = 0.5 - RIDGELINE_WIDTH
    line.inputs["From Max"].default_value = 0.5 - 0.4 * RIDGELINE_WIDTH
    nt.links.new(off, line.inputs["Value"])
    tint = nt.nodes.new("ShaderNodeMix")
    tint.data_type = "RGBA"
    tint.inputs["Factor"].default_value = 0.3
    tint.inputs["A"].default_value = srgb_to_linear("#f4efe4")
    nt.links.new(colour, tint.inputs["B"])
    lit = nt.nodes.new("ShaderNodeEmission")
    lit.inputs["Strength"].default_value = 1.1
    nt.links.new(tint.outputs["Result"], lit.inputs["Color"])
    ink = nt.nodes.new("ShaderNodeEmission")
    ink.inputs["Color"].default_value = (0.0, 0.0, 0.0, 1.0)
    mix = nt.nodes.new("ShaderNodeMixShader")
    nt.links.new(line.outputs["Result"], mix.inputs["Fac"])
    nt.links.new(ink.outputs["Emission"], mix.inputs[1])
    nt.links.new(lit.outputs["Emission"], mix.inputs[2])
    return mix.outputs["Shader"]


def _edge_fade(nt, surface):
    """The surface, turning transparent within FADE of the window's border (object-space
    distance to the nearest side, smoothstep) and on its back faces; `set_fade` sets the
    window's half-extents and switches the fade off for a slab."""
    coord = nt.nodes.new("ShaderNodeTexCoord")
    sep = nt.nodes.new("ShaderNodeSeparateXYZ")
    nt.links.new(coord.outputs["Object"], sep.inputs["Vector"])
    half = []
    for axis in ("x", "y"):
        value = nt.nodes.new("ShaderNodeValue")
        value.name = f"lossart_half_{axis}"
        value.outputs[0].default_value = 0.5 * SIZE
        half.append(value.outputs[0])
    ax = _math(nt, "ABSOLUTE", sep.outputs["X"], 0.0)
    ay = _math(nt, "ABSOLUTE", sep.outputs["Y"], 0.0)
    inside = _math(
        nt, "MINIMUM", _math(nt, "SUBTRACT", half[0], ax), _math(nt, "SUBTRACT", half[1], ay)
    )
    ramp = nt.nodes.new("ShaderNodeMapRange")
    ramp.interpolation_type = "SMOOTHSTEP"
    ramp.clamp = True
    ramp.inputs["From Min"].default_value = 0.0
    ramp.inputs["From Max"].default_value = FADE
    nt.links.new(inside, ramp.inputs["Value"])
    off = nt.nodes.new("ShaderNodeValue")
    off.name = "lossart_fade_off"  # 1: no fade (a slab's crisp edges)
    off.outputs[0].default_value = 0.0
    keep = _math(nt, "MAXIMUM", ramp.outputs["Result"], off.outputs[0])
    geo = nt.nodes.new("ShaderNodeNewGeometry")
    front = _math(nt, "SUBTRACT", 1.0, geo.outputs["Backfacing"])
    clear = nt.nodes.new("ShaderNodeBsdfTransparent")
    mix = nt.nodes.new("ShaderNodeMixShader")
    nt.links.new(_math(nt, "MULTIPLY", keep, front), mix.inputs["Fac"])
    nt.links.new(clear.outputs["BSDF"], mix.inputs[1])
    nt.links.new(surface, mix.inputs[2])
    return mix.outputs["Shader"]


def set_fade(mat: bpy.types.Material, half_x: float, half_y: float, on: bool) -> None:
    """The window's half-extents in world units, and whether its edges fade out."""
    nodes = mat.node_tree.nodes
    if "lossart_fade_off" not in nodes:
        return
    nodes["lossart_half_x"].outputs[0].default_value = float(half_x)
    nodes["lossart_half_y"].outputs[0].default_value = float(half_y)
    nodes["lossart_fade_off"].outputs[0].default_value = 0.0 if on else 1.0


def _math(nt, op: str, a, b):
    """A Math node `a op b` (sockets or numbers); returns its output socket."""
    node = nt.nodes.new("ShaderNodeMath")
    node.operation = op
    for k, v in enumerate((a, b)):
        if isinstance(v, (int, float)):
            node.inputs[k].default_value = v
        else:
            nt.links.new(v, node.inputs[k])
    return node.outputs[0]


def set_contours(mat: bpy.types.Material, strength: float) -> None:
    """Contour line opacity (0 hides them)."""
    node = mat.node_tree.nodes.get("lossart_contours")
    if node is not None:
        node.inputs[1].default_value = float(strength)


def set_relief(mat: bpy.types.Material, relief: float) -> None:
    """Tell the contour lines the world height of the full range (relief x height scale)."""
    node = mat.node_tree.nodes.get("lossart_relief")
    if node is not None:
        node.outputs[0].default_value = max(relief, 1e-6)


def side_material(name: str, colour: str = "#0a0a12") -> bpy.types.Material:
    """The slab's sides: dark and glossy, so the eye stays on the surface."""
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):  # always on (and deprecated) from 5.0
        mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = srgb_to_linear(colour)
    bsdf.inputs["Roughness"].default_value = 0.25
    return mat


def apply_palette(mat: bpy.types.Material, palette: str) -> None:
    """Rewrite the terrain material's colour ramp with the named palette's stops."""
    _check(palette)
    ramp = mat.node_tree.nodes["lossart_palette"].color_ramp
    stops = PALETTES[palette][0]
    while len(ramp.elements) > 1:
        ramp.elements.remove(ramp.elements[-1])
    ramp.elements[0].position = stops[0][0]
    ramp.elements[0].color = srgb_to_linear(stops[0][1])
    for pos, colour in stops[1:]:
        el = ramp.elements.new(pos)
        el.color = srgb_to_linear(colour)
    ramp.interpolation = "LINEAR"


def emission_material(name: str, colour: str, strength: float) -> bpy.types.Material:
    """A plain emissive material (the path and the markers): it also lights the terrain nearby."""
    mat = bpy.data.materials.new(name)
    nt, out = empty_node_tree(mat, "ShaderNodeOutputMaterial")
    em = nt.nodes.new("ShaderNodeEmission")
    em.name = "lossart_emission"
    em.inputs["Color"].default_value = srgb_to_linear(colour)
    em.inputs["Strength"].default_value = strength
    nt.links.new(em.outputs["Emission"], out.inputs["Surface"])
    return mat


def set_emission(
    mat: bpy.types.Material, colour: str | None = None, strength: float | None = None
) -> None:
    em = mat.node_tree.nodes["lossart_emission"]
    if colour is not None:
        em.inputs["Color"].default_value = srgb_to_linear(colour)
    if strength is not None:
        em.inputs["Strength"].default_value = strength
