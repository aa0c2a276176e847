"""Curvature of the training loss at a checkpoint: Hessian eigenpairs, trace, density.

A stage of its own between training and grid, so that `lossart plane --around --directions
hessian` (grid) and `eval-curve --sharpness` (analyses) both use it.
"""

from lossart.lazy import lazy_names

#: Where each name lives. `lanczos` itself is `lossart.curvature.lanczos.lanczos`: once that
#: module is loaded, the package's `lanczos` is the module (a lazy package cannot shadow it).

_WHERE = {
    "HessianConfig": "config",
    "HessianResult": "hessian",
    "axis_scale": "hessian",
    "hessian_at": "hessian",
    "hessian_of": "hessian",
    "plane_axes": "hessian",
    "hutchinson_trace": "lanczos",
    "slq_density": "lanczos",
    "HessianOperator": "operator",
}
__all__ = sorted(_WHERE)

__getattr__ = lazy_names(__name__, _WHERE)  # each name loads its module on first use
