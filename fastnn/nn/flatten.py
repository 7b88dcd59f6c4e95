"""Flatten: merge dimensions ``start_dim..end_dim`` into one (by default all but the batch)."""

from __future__ import annotations

import math
from typing import Any

from fastnn.nn.module import Module

__all__ = ["Flatten"]


class Flatten(Module):
    """Reshape (N, C, H, W) to (N, C * H * W), or more generally merge the dimensions
    ``start_dim`` to ``end_dim`` (negative counts from the end).  Backward reshapes the
    gradient back.  Non-contiguous inputs are copied by the reshape."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Flatten: {name} must be an int, got {value!r}")
        self.start_dim, self.end_dim = start_dim, end_dim
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: Any) -> Any:
        shape = tuple(x.shape)
        ndim = max(len(shape), 1)
        start, end = self.start_dim, self.end_dim
        if not (-ndim <= start < ndim and -ndim <= end < ndim):
            raise ValueError(
                f"Flatten: start_dim={start} and end_dim={end} must be in [{-ndim}, {ndim - 1}] "
                f"for an input of shape {shape}"
            )
        start, end = start % ndim, end % ndim
        if start > end:
            raise ValueError(f"Flatten: start_dim ({start}) comes after end_dim ({end})")
        self._shape = shape
        if not shape:
            return x.reshape(1)
        merged = math.prod(shape[start : end + 1])
        return x.reshape(*shape[:start], merged, *shape[end + 1 :])

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._shape)
        return grad.reshape(self._shape) if need_input_grad else None

    def _reset_cache(self) -> None:
        self._shape = None

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
