"""Dropout: zero each input with probability ``p`` in training, scale the rest by
``1 / (1 - p)`` so that the expected output equals the input; the identity in eval mode."""

from __future__ import annotations

from typing import Any

from fastnn import init
from fastnn.nn._array import namespace, random_uniform
from fastnn.nn._layer_args import check_probability
from fastnn.nn.module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Inverted dropout (as in PyTorch).  The mask is drawn from ``rng`` (a numpy Generator,
    a seed, or None for the default generator of :mod:`fastnn.init`) on the CPU, and from a
    CuPy generator seeded from it on the GPU, so runs are reproducible."""

    def __init__(self, p: float = 0.5, *, rng: init.RngLike = None) -> None:
        super().__init__()
        self.p = check_probability("Dropout", "p", p)
        self._rng = init.as_generator(rng)
        self._device_rngs: dict[str, Any] = {}
        self._mask: Any = None

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        if self.p == 1.0:
            self._mask = namespace(x).zeros_like(x)
            return self._mask.copy()
        keep = random_uniform(x, self._rng, self._device_rngs) >= self.p
        self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self._mask

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        if not need_input_grad:
            return None
        return grad if self._mask is None else grad * self._mask

    def _reset_cache(self) -> None:
        self._mask = None

    def extra_repr(self) -> str:
        return f"p={self.p}"
