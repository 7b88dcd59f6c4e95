"""Host side of the depthwise convolution (kernels/cpu/conv_depthwise.pyx, depthwise.h):
layers whose groups equal their input channels (any channel multiplier, kernel, stride,
dilation and padding).  On such layers this kernel is what ``algo="direct"`` runs: one
input plane at a time, split into its stride phases so that every tap of the kernel is a
contiguous shifted stream (see depthwise.h).

Every function takes the geometry tuple ``tuple(geom.plane)`` and 4-D views (a 1-D
convolution is passed as 2-D with H = 1); ``w`` is the flat contiguous weight.
"""

from __future__ import annotations

import numpy as np

from fastnn import _isa
from fastnn._backends.cpu import _outputs
from fastnn._geometry import ConvGeometry
from fastnn.kernels.cpu import conv_depthwise as _k

__all__ = [
    "LANES",
    "PLANES",
    "forward",
    "grad_input",
    "grad_weight",
    "grad_weight_and_bias",
    "is_depthwise",
    "level_code",
    "prefer_lanes",
    "single_channel",
]

#: The name of the channels-in-lanes variant among the CPU's conv candidates ("direct" is
#: the plane-by-plane one); "auto" measures both.
LANES = "direct:lanes"
#: The plane-by-plane kernel on a layer of a single input channel (groups 1): a depthwise
#: layer whose channel multiplier is all its output channels.  A candidate of "auto" for
#: every pass of such layers (the first of a network on grey images or signals); its
#: weight gradient tiles output channels by taps (depthwise_body.h).
PLANES = "direct:planes"


def single_channel(geom: ConvGeometry) -> bool:
    """One input channel and one group: the depthwise kernels run it (:data:`PLANES`)."""
    return geom.in_channels == 1 and geom.groups == 1


def prefer_lanes(geom: ConvGeometry) -> bool:
    """The prior between the two depthwise variants: channels in lanes for outputs up to
    56x56 (its moves between planes and lanes are register transposes; MobileNetV2's
    960x7x7 forward 0.29 -> 0.18 ms once they were, Zen 4, against 0.26 ms plane by
    plane), plane by plane for larger maps, whose contiguous rows it streams."""
    p = geom.plane
    return p.ho * p.wo <= 56 * 56


def level_code(lanes: bool) -> int:
    """The instruction-set level a variant runs at: each is measured as its own family
    ("depthwise" plane by plane, "depthwise_lanes" channels in lanes), since one CPU can
    favour different levels for the two."""
    return _isa.level_code("depthwise_lanes" if lanes else "depthwise")


def is_depthwise(geom: ConvGeometry) -> bool:
    """Groups equal to the input channels (one input channel per group), more than one."""
    return geom.groups == geom.in_channels and geom.groups > 1


def forward(
    x4: np.ndarray, w: np.ndarray, bias, shape, threads: int, lanes: bool = False, act: int = 0
) -> np.ndarray:
    """The flat (N, K, Ho, Wo) output of the depthwise convolution of x4 (any strides),
    through the activation ``act`` (conv_epilogue.h's code, 0: none) where it is written."""
    n, k, ho, wo = shape[0], shape[4], shape[8], shape[9]
    y = _outputs.empty(n * k * ho * wo, x4.dtype)
    _k.forward(x4, w, bias, y, shape, threads, level_code(lanes), lanes, act)
    return y


def grad_input(
    gy: np.ndarray, w: np.ndarray, shape, threads: int, lanes: bool = False
) -> np.ndarray:
    """d loss / d input, flat (N, C, H, W), from the flat contiguous grad_output."""
    n, c, h, wd = shape[:4]
    gx = _outputs.empty(n * c * h * wd, gy.dtype)
    _k.backward_input(gy, w, gx, shape, threads, level_code(lanes), lanes)
    return gx


def grad_weight(
    x4: np.ndarray, gy: np.ndarray, shape, threads: int, lanes: bool = False
) -> np.ndarray:
    """d loss / d weight as float64 (K, R*S) from x4 and the flat contiguous grad_output."""
    return _k.backward_weight(x4, gy, shape, threads, level_code(lanes), lanes)


def grad_weight_and_bias(
    x4: np.ndarray, gy: np.ndarray, shape, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """(d loss / d weight as float64 (K, R*S), d loss / d bias as float64 (K,)) in one pass
    over grad_output, plane by plane: the bias's sums ride along as one more tap."""
    return _k.backward_weight(x4, gy, shape, threads, level_code(False), False, True)
