"""Adaptive pooling geometry and the dropout seed: validation shared by fastnn.ops.

Adaptive pooling divides each spatial axis of size ``In`` into ``Out`` windows, window
``i`` covering ``[floor(i * In / Out), ceil((i + 1) * In / Out))`` (PyTorch's rule): the
windows cover the axis, may overlap by one element when ``In`` is not a multiple of
``Out``, and repeat elements when ``Out > In``.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "AdaptiveGeometry",
    "adaptive_geometry",
    "check_generator",
    "check_grad_output",
    "dropout_seed",
    "dropout_threshold",
    "window_bounds",
]

_UINT64 = 1 << 64


def window_bounds(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` int64 arrays of the ``out`` adaptive windows over ``size``."""
    i = np.arange(out, dtype=np.int64)
    return (i * size) // out, -((-(i + 1) * size) // out)


@dataclass(frozen=True, slots=True)
class AdaptiveGeometry:
    """Validated adaptive pooling shapes: ``in_size`` and ``out_size`` have 1 (L) or 2
    (H, W) entries."""

    batch: int
    channels: int
    in_size: tuple[int, ...]
    out_size: tuple[int, ...]
    #: (H, W, Ho, Wo): the 2-D view the kernels take, a 1-D problem as one row.
    plane: tuple[int, int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.in_size) == 1:
            plane = (1, self.in_size[0], 1, self.out_size[0])
        else:
            plane = (*self.in_size, *self.out_size)
        object.__setattr__(self, "plane", plane)

    @property
    def nd(self) -> int:
        return len(self.in_size)

    @property
    def planes(self) -> int:
        return self.batch * self.channels

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.channels, *self.in_size)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.channels, *self.out_size)

    @property
    def divides(self) -> bool:
        """True when every ``In`` is a multiple of its ``Out``: the windows are those of a
        plain pooling with kernel = stride = In / Out."""
        return all(i % o == 0 for i, o in zip(self.in_size, self.out_size))


def _size_entry(op: str, value: object, keep: int) -> int:
    if value is None:
        return keep
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: output_size must hold ints or None, got {value!r}")
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: output_size must hold ints or None, got {value!r}") from None
    if size < 1:
        raise ValueError(f"{op}: output_size must be >= 1, got {value!r}")
    return size


def adaptive_geometry(
    op: str, nd: int, input_shape: tuple[int, ...], output_size: object
) -> AdaptiveGeometry:
    """Validate an adaptive pooling call: a batched ``(N, C, *spatial)`` input (as the
    other pooling ops; only N may be 0) and an ``output_size`` that is an int or a tuple
    of ``nd`` ints or None (None keeps that axis's input size)."""
    layout = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
    if len(input_shape) != nd + 2:
        raise ValueError(
            f"{op}: input must be {nd + 2}-d {layout} (batched), got shape {tuple(input_shape)}"
        )
    batch, channels, *in_size = (int(s) for s in input_shape)
    if channels < 1 or any(s < 1 for s in in_size):
        raise ValueError(
            f"{op}: input must have non-zero channels and spatial size (only the batch may be "
            f"empty), got shape {tuple(input_shape)}"
        )
    if isinstance(output_size, (str, bytes)):
        raise TypeError(f"{op}: output_size must be an int or a tuple of {nd}, got {output_size!r}")
    if isinstance(output_size, Sequence) or isinstance(output_size, np.ndarray):
        items = tuple(output_size)
        if len(items) != nd:
            raise ValueError(
                f"{op}: output_size must be an int or a tuple of {nd} ints or None, got "
                f"{output_size!r}"
            )
    else:
        items = (output_size,) * nd
    out_size = tuple(_size_entry(op, v, keep) for v, keep in zip(items, in_size))
    return AdaptiveGeometry(batch, channels, tuple(in_size), out_size)


def check_grad_output(op: str, grad_output: object, input_shape: tuple[int, ...], nd: int):
    """The geometry of an adaptive pooling backward call: ``grad_output`` is
    ``(N, C, *out)`` for the ``(N, C, *in)`` input."""
    shape = tuple(grad_output.shape)  # type: ignore[attr-defined]
    if len(shape) != nd + 2 or shape[:2] != tuple(input_shape[:2]):
        raise ValueError(
            f"{op}: grad_output must have shape (N, C, *output_size) for an input of shape "
            f"{tuple(input_shape)}, got {shape}"
        )
    return adaptive_geometry(op, nd, input_shape, shape[2:])


def dropout_threshold(op: str, p: object) -> tuple[float, int]:
    """``(p, threshold)``: an element is kept when the top 32 bits of its random word are
    ``>= threshold = floor(p * 2**32)``.  ``p`` must be in [0, 1)."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: p must be a real number in [0, 1), got {p!r}")
    value = float(p)
    if not 0.0 <= value < 1.0:  # NaN fails too
        raise ValueError(
            f"{op}: p must be in [0, 1) (p = 1 would drop everything and divide by 0), got p={p!r}"
        )
    return value, min(math.floor(value * 2.0**32), 2**32 - 1)


def check_generator(op: str, generator: object) -> None:
    """Raise TypeError unless ``generator`` is None, an int or a numpy Generator."""
    if generator is None or isinstance(generator, np.random.Generator):
        return
    if isinstance(generator, (bool, np.bool_)) or not _is_int(generator):
        raise TypeError(
            f"{op}: generator must be None, an int seed or a numpy.random.Generator, got "
            f"{type(generator).__name__}"
        )


def _is_int(value: object) -> bool:
    try:
        operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def dropout_seed(op: str, generator: object) -> int:
    """The 64-bit seed of one dropout call: fresh OS entropy for None, an int taken mod
    2**64, or one 64-bit draw from a ``numpy.random.Generator``."""
    check_generator(op, generator)
    if generator is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, _UINT64, dtype=np.uint64))
    return operator.index(generator) % _UINT64  # type: ignore[arg-type]
