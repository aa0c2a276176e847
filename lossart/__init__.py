"""lossart: train low-loss curves between neural networks and render their loss landscapes."""

__version__ = "0.1.0"

from lossart.errors import LossartError

__all__ = ["LossartError", "__version__"]
