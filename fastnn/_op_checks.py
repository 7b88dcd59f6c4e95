"""Parameter checks of particular op families, shared by fastnn.ops and the framework
bridges (fastnn.jax checks at trace time what fastnn.ops checks per call).

fastnn._args holds the checks every op uses (arrays, dtypes, shapes, integer tuples);
this module holds those of one family each: the convolution algorithm, the activations'
scalar parameters, and batch normalisation's input, per-channel arrays and scalars.  The
rules are fastnn's: ``TypeError`` for a wrong type, ``ValueError`` for a wrong value, and
every message starts with the op's name.
"""

from __future__ import annotations

import math
from typing import Any

from fastnn import _args, _geometry

__all__ = [
    "CONV_ALGOS",
    "GELU_APPROXIMATIONS",
    "bn_channels",
    "bn_eps",
    "bn_momentum",
    "check_bounds",
    "check_finite",
    "check_per_channel",
    "check_training_count",
    "conv_algo",
    "gelu_approximation",
    "values_per_channel",
]

#: "winograd" lets the backend pick the tile size; "winograd2/4/6" pin F(2x2, 3x3),
#: F(4x4, 3x3) or F(6x6, 3x3).
CONV_ALGOS = ("auto", "im2col", "direct", "winograd", "winograd2", "winograd4", "winograd6")
#: The approximations of gelu.
GELU_APPROXIMATIONS = ("none", "tanh")


def conv_algo(op: str, algo: object, geom: _geometry.ConvGeometry) -> str:
    """``algo`` checked against :data:`CONV_ALGOS` and, for the Winograd ones, against the
    layer (2-D 3x3, stride 1, dilation 1)."""
    if not (isinstance(algo, str) and algo in CONV_ALGOS):
        raise ValueError(f"{op}: algo must be one of {CONV_ALGOS}, got {algo!r}")
    if algo.startswith("winograd"):
        why = _geometry.winograd_unsupported(geom)
        if why is not None:
            raise ValueError(
                f"{op}: algo={algo!r} runs 2-D 3x3 convolutions with stride 1 and dilation 1"
                f" only: {why}"
            )
    return algo


def check_finite(op: str, name: str, value: object) -> float:
    """``value`` as a finite float (TypeError / ValueError naming ``name`` otherwise)."""
    v = _args.check_scalar(op, name, value)
    if not math.isfinite(v):
        raise ValueError(f"{op}: {name} must be finite, got {v!r}")
    return v


def check_bounds(op: str, min_val: object, max_val: object) -> tuple[float, float]:
    """hardtanh's (min_val, max_val) as finite floats with min_val <= max_val."""
    lo, hi = check_finite(op, "min_val", min_val), check_finite(op, "max_val", max_val)
    if hi < lo:
        raise ValueError(f"{op}: max_val ({hi!r}) must not be less than min_val ({lo!r})")
    return lo, hi


def gelu_approximation(op: str, value: object) -> str:
    """gelu's ``approximate``, one of :data:`GELU_APPROXIMATIONS`."""
    if isinstance(value, str) and value in GELU_APPROXIMATIONS:
        return value
    raise ValueError(f"{op}: approximate must be one of {GELU_APPROXIMATIONS}, got {value!r}")


def bn_channels(op: str, input: Any) -> int:
    """Check batch normalisation's (N, C, *) input rank; return C."""
    if len(input.shape) < 2:
        raise ValueError(
            f"{op}: input must be (N, C, *) with at least 2 dims, got shape {tuple(input.shape)}"
        )
    return int(input.shape[1])


def check_per_channel(op: str, channels: int, arrays: dict[str, Any]) -> None:
    """Each array that is not None has shape (channels,)."""
    for name, value in arrays.items():
        if value is not None:
            _args.check_shape(op, name, value, (channels,), "one value per channel C")


def bn_eps(op: str, eps: object) -> float:
    """``eps`` as a float > 0."""
    value = _args.check_scalar(op, "eps", eps)
    if not value > 0:  # NaN too
        raise ValueError(f"{op}: eps must be > 0, got {eps!r}")
    return value


def values_per_channel(input: Any) -> int:
    """How many values each channel of an (N, C, *) input has (N times the trailing dims)."""
    return math.prod(int(d) for d in input.shape) // max(int(input.shape[1]), 1)


def check_training_count(op: str, input: Any) -> None:
    """Training statistics need more than one value per channel (PyTorch's rule)."""
    if values_per_channel(input) == 1 and int(input.shape[1]) > 0:
        raise ValueError(
            f"{op}: Expected more than 1 value per channel when training, got input size "
            f"{tuple(input.shape)}"
        )


def bn_momentum(op: str, momentum: object) -> float | None:
    """``momentum``: None (a cumulative average) or a float in [0, 1]."""
    if momentum is None:
        return None
    value = _args.check_scalar(op, "momentum", momentum)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{op}: momentum must be None or in [0, 1], got {momentum!r}")
    return value
