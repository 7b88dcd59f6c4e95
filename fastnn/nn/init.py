"""Weight initialisation: Xavier (Glorot) and Kaiming (He), uniform and normal; seeded.

Every function draws from a NumPy ``Generator`` and is reproducible:

- ``rng=None`` uses this module's default generator, reseeded by :func:`manual_seed`;
- ``rng=<int>`` seeds a fresh generator with that number;
- ``rng=<numpy.random.Generator>`` draws from (and advances) that generator.

The first argument is either a shape, for which a new float32 (or ``dtype``) numpy array is
returned, or a :class:`fastnn.nn.Parameter`, whose data is overwritten in place (on its own
device and dtype) and which is returned.

Fans follow PyTorch: for a weight of shape ``(out, in, *kernel)``, ``fan_in = in * prod(kernel)``
and ``fan_out = out * prod(kernel)``; a 1-d shape has ``fan_in = fan_out = shape[0]``.

- Xavier: ``std = gain * sqrt(2 / (fan_in + fan_out))`` (the course notes' formula); the
  uniform variant draws from ``[-a, a]`` with ``a = sqrt(3) * std``.
- Kaiming: ``std = gain / sqrt(fan)`` with ``gain = calculate_gain(nonlinearity, a)`` and
  ``fan`` = ``fan_in`` (``mode="fan_in"``) or ``fan_out``; uniform bound ``sqrt(3) * std``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastnn.nn._array import to_like
from fastnn.nn.parameter import Parameter

__all__ = [
    "as_generator",
    "calculate_gain",
    "fans",
    "kaiming_normal",
    "kaiming_uniform",
    "manual_seed",
    "normal",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]

_default_generator = np.random.default_rng(0)

RngLike = np.random.Generator | int | None


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator used when ``rng=None`` (layers, Dropout, init) and
    return it."""
    global _default_generator
    _default_generator = np.random.default_rng(_seed(seed))
    return _default_generator


def _seed(seed: object) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def as_generator(rng: RngLike) -> np.random.Generator:
    """The generator ``rng`` names: the default one for None, a new one seeded with an int,
    or the Generator itself."""
    if rng is None:
        return _default_generator
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(_seed(rng))


def calculate_gain(nonlinearity: str = "linear", param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table): 1 for linear, conv and
    sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + a^2)) for leaky_relu(a)."""
    if nonlinearity in ("linear", "identity", "sigmoid") or nonlinearity.startswith("conv"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope * slope))
    raise ValueError(
        "calculate_gain: nonlinearity must be one of linear, conv1d, conv2d, sigmoid, tanh, "
        f"relu, leaky_relu; got {nonlinearity!r}"
    )


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape ``(out, in, *kernel)``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        raise ValueError("fans: a weight needs at least one dimension, got shape ()")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


# ---------------------------------------------------------------------------------------
# Targets: a shape (new numpy array) or a Parameter (filled in place)
# ---------------------------------------------------------------------------------------


def _as_parameter(target: Any) -> Any:
    return target if isinstance(target, Parameter) else None


def _target_shape(target: Any) -> tuple[int, ...]:
    param = _as_parameter(target)
    if param is not None:
        return tuple(param.data.shape)
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        target = (target,)
    if isinstance(target, Sequence) and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in target
    ):
        if any(s < 0 for s in target):
            raise ValueError(f"shape must not have negative sizes, got {tuple(target)}")
        return tuple(int(s) for s in target)
    raise TypeError(f"expected a shape (tuple of ints) or a Parameter, got {target!r}")


def _finish(target: Any, values: np.ndarray, dtype: np.dtype) -> Any:
    """Return a new array of ``values`` or write them into the Parameter ``target``."""
    param = _as_parameter(target)
    if param is None:
        return np.ascontiguousarray(values, dtype=dtype)
    param.data[...] = to_like(values.astype(param.data.dtype), param.data)
    return param


def _check_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def uniform(
    target: Any, low: float = 0.0, high: float = 1.0, *, rng: RngLike = None, dtype=np.float32
) -> Any:
    """Values drawn uniformly from ``[low, high)``."""
    shape, dt = _target_shape(target), _check_dtype(dtype)
    if not high >= low:
        raise ValueError(f"uniform: high must be >= low, got low={low}, high={high}")
    return _finish(target, as_generator(rng).uniform(low, high, shape), dt)


def normal(
    target: Any, mean: float = 0.0, std: float = 1.0, *, rng: RngLike = None, dtype=np.float32
) -> Any:
    """Values drawn from N(mean, std^2)."""
    shape, dt = _target_shape(target), _check_dtype(dtype)
    if not std >= 0:
        raise ValueError(f"normal: std must be >= 0, got {std}")
    return _finish(target, as_generator(rng).normal(mean, std, shape), dt)


def zeros(target: Any, *, dtype=np.float32) -> Any:
    """All zeros."""
    shape = _target_shape(target)
    return _finish(target, np.zeros(shape), _check_dtype(dtype))


def _check_gain(gain: float) -> float:
    if isinstance(gain, bool) or not isinstance(gain, numbers.Real) or not gain >= 0:
        raise ValueError(f"gain must be a real number >= 0, got {gain!r}")
    return float(gain)


def xavier_uniform(target: Any, gain: float = 1.0, *, rng: RngLike = None, dtype=np.float32) -> Any:
    """Glorot uniform: ``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    shape = _target_shape(target)
    fan_in, fan_out = fans(shape)
    std = _check_gain(gain) * math.sqrt(2.0 / max(fan_in + fan_out, 1))
    bound = math.sqrt(3.0) * std
    return uniform(target, -bound, bound, rng=rng, dtype=dtype)


def xavier_normal(target: Any, gain: float = 1.0, *, rng: RngLike = None, dtype=np.float32) -> Any:
    """Glorot normal: ``N(0, std^2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    shape = _target_shape(target)
    fan_in, fan_out = fans(shape)
    std = _check_gain(gain) * math.sqrt(2.0 / max(fan_in + fan_out, 1))
    return normal(target, 0.0, std, rng=rng, dtype=dtype)


def _kaiming_std(shape, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"cannot initialise a weight with a zero fan, shape {tuple(shape)}")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform(
    target: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    rng: RngLike = None,
    dtype=np.float32,
) -> Any:
    """He uniform: ``U(-b, b)``, ``b = sqrt(3) * gain / sqrt(fan)``.  With the defaults
    (``a=0``, leaky_relu) the gain is sqrt(2), the ReLU gain; PyTorch's default layer
    initialisation is ``a=sqrt(5)``, which gives ``b = 1 / sqrt(fan_in)``."""
    std = _kaiming_std(_target_shape(target), a, mode, nonlinearity)
    bound = math.sqrt(3.0) * std
    return uniform(target, -bound, bound, rng=rng, dtype=dtype)


def kaiming_normal(
    target: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    rng: RngLike = None,
    dtype=np.float32,
) -> Any:
    """He normal: ``N(0, std^2)``, ``std = gain / sqrt(fan)``."""
    std = _kaiming_std(_target_shape(target), a, mode, nonlinearity)
    return normal(target, 0.0, std, rng=rng, dtype=dtype)
