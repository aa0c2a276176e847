"""The mesh layer: loss grids to smoothed log-loss heightfields, and the terrain bundle.

The bundle (docs/bundle.md) is the one contract with the Blender add-on.
"""
