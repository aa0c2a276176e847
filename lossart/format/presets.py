"""Named looks as plain data (no bpy): styles, palettes, camera presets, engines, render devices.

Kept free of bpy so lossart's CLI can list and check them without starting Blender; the look
options (look.py) take their allowed values from here.
"""

from __future__ import annotations

# name -> (ramp stops [(position, "#rrggbb")], path colour, marker colour, description)
PALETTES: dict[str, tuple[list[tuple[float, str]], str, str, str]] = {
    "losslandscape": (
        [
            (0.0, "#0a1238"),
            (0.15, "#111c66"),
            (0.35, "#1f1670"),
            (0.55, "#55177a"),
            (0.72, "#a02763"),
            (0.87, "#e0582f"),
            (1.0, "#f59a3c"),
        ],
        "#7ff3ff",
        "#ffffff",
        "the reference look: deep blue/purple valleys to bright warm ridges",
    ),
    "viridis": (
        [
            (0.0, "#440154"),
            (0.125, "#482878"),
            (0.25, "#3e4989"),
            (0.375, "#31688e"),
            (0.5, "#26828e"),
            (0.625, "#1f9e89"),
            (0.75, "#35b779"),
            (0.875, "#8fd744"),
            (1.0, "#fde725"),
        ],
        "#ff4b3e",
        "#ffffff",
        "perceptually uniform scientific map",
    ),
    "magma": (
        [
            (0.0, "#000004"),
            (0.125, "#1c1044"),
            (0.25, "#4f127b"),
            (0.375, "#812581"),
            (0.5, "#b5367a"),
            (0.625, "#e55964"),
            (0.75, "#fb8761"),
            (0.875, "#fec287"),
            (1.0, "#fcfdbf"),
        ],
        "#5ff7ff",
        "#ffffff",
        "perceptually uniform, black to pale yellow",
    ),
    "ice": (
        [
            (0.0, "#02040c"),
            (0.2, "#0a1c3a"),
            (0.4, "#16457a"),
            (0.6, "#3283b8"),
            (0.8, "#8ccbea"),
            (1.0, "#f2fbff"),
        ],
        "#ffa23a",
        "#fff4d0",
        "cold blues to white, with a warm path",
    ),
}
DEFAULT_PALETTE = "losslandscape"
#: Styles: the whole look (light, material, world, camera framing, view transform), of which
#: the palette is one part. styles.py holds what each one sets.
STYLES = {
    "hero": "the art: a low camera over terrain filling the frame, soft warm key and cool fill, "
    "occlusion in the valleys, haze into darkness with distance, AgX",
    "classic": "the first release's look: a lacquered sheet from above in a dark frame",
    "ridgelines": "Unknown Pleasures: pale cross-sections of the surface on black, hidden "
    "behind the nearer ones, seen low across the valley",
}
DEFAULT_STYLE = "hero"
CAMERA_PRESETS = {
    "overview": "three-quarter view from above",
    "orbit": "slow low orbit over the frame range",
    "flythrough": "rides along the path, looking ahead",
}
ENGINES = {
    "cycles": "path tracing: the reference look",
    "eevee": "real-time rasteriser: quick previews",
}
GPU_KINDS = ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")  # the order "auto" tries them in
RENDER_DEVICES = {
    "auto": "the first GPU kind that has a device (OptiX, CUDA, HIP, Metal, oneAPI), else the CPU",
    "CPU": "the CPU",
    **{kind: f"a {kind} GPU (the CPU if there is none)" for kind in GPU_KINDS},
}


def srgb_to_linear(hex_colour: str) -> tuple[float, float, float, float]:
    h = hex_colour.lstrip("#")
    out = []
    for k in range(3):
        c = int(h[2 * k : 2 * k + 2], 16) / 255.0
        out.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return (out[0], out[1], out[2], 1.0)


def palette_names() -> list[str]:
    return list(PALETTES)
