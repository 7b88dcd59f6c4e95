"""The validated geometry of convolution and pooling calls: the only part of the argument
layer that backends import.

ops/ builds a frozen :class:`ConvGeometry` or :class:`PoolGeometry` once per call (memoised
for repeated plain-int parameters) after fastnn._args has checked the arrays; every backend
reads the geometry, never the raw arguments.
"""

from fastnn._geometry._adaptive import (
    AdaptiveGeometry,
    adaptive_geometry,
    check_grad_output,
    window_bounds,
)
from fastnn._geometry._conv import ConvGeometry, ConvPlane, conv_geometry, winograd_unsupported
from fastnn._geometry._pool import PoolGeometry, pool_geometry, pool_output_size

__all__ = [
    "AdaptiveGeometry",
    "adaptive_geometry",
    "check_grad_output",
    "window_bounds",
    "ConvGeometry",
    "ConvPlane",
    "PoolGeometry",
    "conv_geometry",
    "pool_geometry",
    "pool_output_size",
    "winograd_unsupported",
]
