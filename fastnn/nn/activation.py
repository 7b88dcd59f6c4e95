"""Elementwise activation layers: ReLU, Sigmoid, Tanh.

Each keeps its forward output, from which the gradient is computed (``relu'`` is
``y > 0``, ``sigmoid'`` is ``y (1 - y)``, ``tanh'`` is ``1 - y^2``)."""

from __future__ import annotations

from typing import Any

import fastnn
from fastnn.nn.module import Module

__all__ = ["ReLU", "Sigmoid", "Tanh"]


class _Activation(Module):
    name = ""

    def __init__(self) -> None:
        super().__init__()
        self._output: Any = None

    def forward(self, x: Any) -> Any:
        self._output = getattr(fastnn, self.name)(x)
        return self._output

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        if self._output is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        if not need_input_grad:
            return None
        return fastnn.activation_backward(self.name, grad, self._output)

    def _reset_cache(self) -> None:
        self._output = None


class ReLU(_Activation):
    """``max(x, 0)``."""

    name = "relu"


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``."""

    name = "sigmoid"


class Tanh(_Activation):
    """``tanh(x)``."""

    name = "tanh"
