"""Curvature of the training loss at a checkpoint: Hessian eigenpairs, trace, density.

A stage of its own between training and grid, so that `lossart plane --around --directions
hessian` (grid) and `eval-curve --sharpness` (analyses) both use it.
"""

import importlib

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


def __getattr__(name: str) -> object:
    """Each name loads its module on first use, so that `.config` (what the command line
    builds its flags from) imports without torch."""
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
