"""What each style sets, as plain data (no bpy): lights, world, material, framing, colour view.

A style is the whole look of a picture, not a palette: `hero` is the art the project imitates
(a low camera over terrain that fills the frame, a soft warm key and a cool fill so no shadow is
black, occlusion darkening the valleys, haze into darkness with distance, AgX rolling the
highlights off), `classic` the first release's lacquered sheet seen from above, `ridgelines`
the surface as pale cross-sections on black (Unknown Pleasures), each hidden behind the nearer
ones. scene.py, materials.py and render.py read these specs; lossart's video encoder reads the
background colour (the MP4 of a transparent render is flattened onto it).
"""

from __future__ import annotations

from dataclasses import dataclass

from .presets import DEFAULT_STYLE, STYLES


def _lights(**specs) -> dict:
    return specs


#: Lights of the first release (key, rim, fill), relative to the valley (scene.light_azimuth)
CLASSIC_LIGHTS = _lights(
    key={"colour": "#ffd9b0", "energy": 4.5, "elevation": 16.0, "side": 1, "lean": 25.0,
         "angle": 22.0, "glossy": True},  # a broad sun: soft highlights, not glints
    rim={"colour": "#7fa8ff", "energy": 2.0, "elevation": 10.0, "side": -1, "lean": -55.0,
         "angle": 8.0, "glossy": False},
    fill={"colour": "#fff2e0", "energy": 1.0, "elevation": 55.0, "side": 1, "lean": 0.0,
          "angle": 20.0, "glossy": False},
)  # fmt: skip

#: The hero's light: a low warm key (8 deg, a small 3 deg sun: crisp form shadows) raking
#: obliquely across the valley (lean 40), so the valley's walls and the ridge between the
#: optima have a lit and a shaded flank and the shadow falls into the valley; a cool fill from
#: the far side and above (shadows stay blue, never black), a cool rim outlining far ridges,
#: and a weak ambient (0.15): the form comes from the key, not from an even wash.
HERO_LIGHTS = _lights(
    key={"colour": "#ffc48a", "energy": 10.0, "elevation": 8.0, "side": 1, "lean": 40.0,
         "angle": 3.0, "glossy": False},
    rim={"colour": "#8fb0ff", "energy": 2.5, "elevation": 12.0, "side": -1, "lean": -60.0,
         "angle": 10.0, "glossy": False},
    fill={"colour": "#6d86ff", "energy": 0.8, "elevation": 60.0, "side": -1, "lean": 0.0,
          "angle": 40.0, "glossy": False},
)  # fmt: skip


@dataclass(frozen=True)
class StyleSpec:
    """Everything a style decides besides the look options the user sets."""

    lights: dict
    world: str  # the world colour far off and at the bottom of the sky (sRGB)
    horizon: str  # the sky's glow just below the horizon, behind the terrain
    ambient: float  # strength of the world's light on the surface (0: only the suns light it)
    ambient_colour: str  # the colour of that light (sRGB)
    material: str  # "glossy" (classic), "matte" (hero) or "lines" (ridgelines)
    framing: str  # "above" (classic: the sheet in the frame) or "fill" (terrain fills it)
    view_transform: str = "Standard"
    view_look: str = "None"
    exposure: float = 0.0
    occlusion: float = 0.0  # 0..1: how much ambient occlusion darkens the base colour
    occlusion_samples: int = 4  # rays per shading point (the denoiser smooths the rest)
    haze: float = 0.0  # 0..1: how far the farthest ground fades into the haze colour
    haze_colour: str = "#000000"
    relief: float = 1.0  # the style's exaggeration, times the look's height scale
    contour_strength: float = 0.14  # when the look's contours are on
    max_bounces: int = 6
    # fill framing, in order of preference: the camera's azimuths (seen from the aim, as
    # framing.view_direction: -90 looks across the valley from -y, 180 along it from the w1
    # end; across first, where the ridge between the optima reads as a ridge), elevations
    # (low, but high enough to see over the near wall) and lenses (mm)
    # (oblique views, 30-60 degrees off the valley's axis, see along the valley past the near
    # ridge: on windows ending on high ridges they are what lets the camera come down low)
    azimuths: tuple[float, ...] = (-90.0, 90.0, -65.0, -115.0, 65.0, 115.0, -40.0, -140.0,
                                   40.0, 140.0, -30.0, -150.0, 30.0, 150.0, 0.0, 180.0)
    elevations: tuple[float, ...] = (22.0, 26.0, 18.0, 30.0, 35.0, 40.0, 44.0, 50.0, 58.0, 66.0)
    lenses: tuple[float, ...] = (50.0, 70.0, 100.0)
    fills: tuple[float, ...] = (0.6, 0.75, 0.9, 0.95)  # shares of the picture the path may span
    orbit_sweep: float = 60.0  # degrees the orbit preset turns over the video
    vignette: float = 0.0  # 0..1: how much the picture's corners darken (draws the eye in)


STYLE_SPECS: dict[str, StyleSpec] = {
    "hero": StyleSpec(
        lights=HERO_LIGHTS, world="#020309", horizon="#0b0d22", ambient=0.15,
        ambient_colour="#39447a",
        material="matte", framing="fill", view_transform="AgX",
        view_look="AgX - Punchy", exposure=0.8, occlusion=0.9, haze=0.45,
        haze_colour="#080a1c", contour_strength=0.0, max_bounces=4, orbit_sweep=24.0,
        relief=1.3, vignette=0.3,
    ),
    "classic": StyleSpec(
        lights=CLASSIC_LIGHTS, world="#020309", horizon="#0d0b1f", ambient=0.0,
        ambient_colour="#020309",
        material="glossy", framing="above",
    ),
    "ridgelines": StyleSpec(
        lights=HERO_LIGHTS, world="#000000", horizon="#000000", ambient=0.0,
        ambient_colour="#000000",
        material="lines", framing="fill", contour_strength=0.0, max_bounces=1,
        azimuths=(-90.0, -75.0, -105.0, 90.0, 75.0, 105.0, -60.0, -120.0, 60.0, 120.0,
                  -45.0, -135.0, 45.0, 135.0),
        elevations=(18.0, 14.0, 22.0, 26.0, 30.0, 35.0, 40.0, 50.0, 60.0),
        lenses=(50.0, 70.0, 100.0), orbit_sweep=16.0,
    ),
}  # fmt: skip

assert set(STYLE_SPECS) == set(STYLES) and DEFAULT_STYLE in STYLES


def style_spec(name: str) -> StyleSpec:
    """The spec of style `name` (ValueError naming the choices otherwise)."""
    try:
        return STYLE_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown style {name!r}; choose one of {', '.join(STYLES)}") from None


def background_rgb(name: str) -> tuple[int, int, int]:
    """The style's background as 8-bit sRGB: what a transparent video frame is flattened onto."""
    h = style_spec(name).world.lstrip("#")
    return tuple(int(h[2 * k : 2 * k + 2], 16) for k in range(3))
