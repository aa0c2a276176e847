"""Curvature of the training loss at a checkpoint: Hessian eigenpairs, trace, density.

A stage of its own between training and grid, so that `lossart plane --around --directions
hessian` (grid) and `eval-curve --sharpness` (analyses) both use it.
"""

from lossart.curvature.hessian import (
    HessianConfig,
    HessianResult,
    axis_scale,
    hessian_at,
    hessian_of,
    plane_axes,
)
from lossart.curvature.lanczos import hutchinson_trace, lanczos, slq_density
from lossart.curvature.operator import HessianOperator

__all__ = [
    "HessianConfig",
    "HessianOperator",
    "HessianResult",
    "axis_scale",
    "hessian_at",
    "hessian_of",
    "hutchinson_trace",
    "lanczos",
    "plane_axes",
    "slq_density",
]
