"""Dropout: zero each input with probability ``p`` in training, scale the rest by
``1 / (1 - p)`` so that the expected output equals the input; the identity in eval mode."""

from __future__ import annotations

from typing import Any

import fastnn
from fastnn.nn import init
from fastnn.nn._array import namespace
from fastnn.nn._layer_args import check_probability
from fastnn.nn.module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Inverted dropout (as in PyTorch), run by :func:`fastnn.dropout` on the CPU and on the
    GPU alike.  Each training forward draws one 64-bit seed from ``rng`` (a numpy
    Generator, a seed, or None for the default generator of :mod:`fastnn.init`); the mask
    is fastnn's counter-based stream for that seed, the same on every backend, so runs
    are reproducible.  ``p == 1`` zeroes everything (fastnn's op takes p < 1)."""

    def __init__(self, p: float = 0.5, *, rng: init.RngLike = None) -> None:
        super().__init__()
        self.p = check_probability("Dropout", "p", p)
        self._rng = init.as_generator(rng)
        self._mask: Any = None
        self._zero = False

    def forward(self, x: Any) -> Any:
        self._zero = False
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        if self.p == 1.0:
            self._mask, self._zero = None, True
            return namespace(x).zeros_like(x)
        y, self._mask = fastnn.dropout(x, self.p, generator=self._rng)
        return y

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        if not need_input_grad:
            return None
        if self._zero:
            return namespace(grad).zeros_like(grad)
        if self._mask is None:
            return grad
        return fastnn.dropout_backward(grad, self._mask, self.p)

    def _reset_cache(self) -> None:
        self._mask = None
        self._zero = False

    def extra_repr(self) -> str:
        return f"p={self.p}"
