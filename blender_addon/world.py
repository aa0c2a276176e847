"""Plane coordinates -> Blender world coordinates (pure numpy, no bpy).

Every bundle is shown at the same size whatever its plane units: the longer side of the grid
spans `SIZE` Blender units centred on the origin. The full height range rises the bundle's
relief (`height.relief.share` of the window's width, lossart.format.bundle.DEFAULT_RELIEF where
the manifest has none) times the height scale: the vertical exaggeration comes from the data,
not from a fixed number of units. Cameras, lights and depth of field can then be tuned once for
all bundles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 10.0


@dataclass(frozen=True)
class WorldMap:
    cx: float
    cy: float
    scale: float
    z_min: float
    z_range: float
    relief: float  # world units z_min..z_max rises at height scale 1

    @classmethod
    def for_bundle(cls, bundle) -> WorldMap:
        (x0, x1), (y0, y1) = bundle.x_range, bundle.y_range
        scale = SIZE / max(x1 - x0, y1 - y0)
        return cls(
            cx=0.5 * (x0 + x1),
            cy=0.5 * (y0 + y1),
            scale=scale,
            z_min=bundle.z_min,
            z_range=bundle.z_max - bundle.z_min,
            relief=bundle.relief * (x1 - x0) * scale,
        )

    def height01(self, z) -> np.ndarray:
        """Heights as 0..1 over the bundle's shared range (what the palettes colour)."""
        return (np.asarray(z, dtype=np.float32) - np.float32(self.z_min)) / np.float32(self.z_range)

    def top(self, height_scale: float) -> float:
        """World z of the highest height (the lowest is at 0)."""
        return float(self.relief * height_scale)

    def world_z(self, z, height_scale: float) -> np.ndarray:
        return self.height01(z) * np.float32(self.relief * height_scale)

    def world(self, xyz: np.ndarray, height_scale: float, lift: float = 0.0) -> np.ndarray:
        """[N, 3] plane (x, y, z) -> [N, 3] world coordinates, `lift` units above the surface."""
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        out = np.empty((len(xyz), 3), dtype=np.float32)
        out[:, 0] = (xyz[:, 0] - self.cx) * self.scale
        out[:, 1] = (xyz[:, 1] - self.cy) * self.scale
        out[:, 2] = self.world_z(xyz[:, 2], height_scale) + lift
        return out

    def grid_xy(self, bundle) -> tuple[np.ndarray, np.ndarray]:
        """World x of each column and world y of each row."""
        return (
            ((bundle.xs - self.cx) * self.scale).astype(np.float32),
            ((bundle.ys - self.cy) * self.scale).astype(np.float32),
        )
