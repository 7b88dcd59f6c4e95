"""The geometry of an adaptive pooling call, validated once and read by every backend.

Adaptive pooling divides each spatial axis of size ``In`` into ``Out`` windows, window
``i`` covering ``[floor(i * In / Out), ceil((i + 1) * In / Out))`` (PyTorch's rule): the
windows cover the axis, may overlap by one element when ``In`` is not a multiple of
``Out``, and repeat elements when ``Out > In``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fastnn._geometry._batched import check_batched, check_planes
from fastnn._geometry._planes import PooledShapes

__all__ = ["AdaptiveGeometry", "adaptive_geometry", "check_grad_output", "window_bounds"]


def window_bounds(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` int64 arrays of the ``out`` adaptive windows over ``size``."""
    i = np.arange(out, dtype=np.int64)
    return (i * size) // out, -((-(i + 1) * size) // out)


@dataclass(frozen=True, slots=True)
class AdaptiveGeometry(PooledShapes):
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
    def planes(self) -> int:
        return self.batch * self.channels

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
    check_batched(op, nd, input_shape)
    batch, channels, *in_size = (int(s) for s in input_shape)
    check_planes(op, channels, in_size, input_shape)
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
