"""The mesh layer: loss grids to smoothed log-loss heightfields and the terrain bundle (docs/bundle.md)."""
