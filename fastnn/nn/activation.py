"""Elementwise activation layers: ReLU, Sigmoid, Tanh, ReLU6, Hardtanh, LeakyReLU,
SiLU, GELU.

Most keep their forward output, from which the gradient is computed (``relu'`` is
``y > 0``, ``sigmoid'`` is ``y (1 - y)``, ``tanh'`` is ``1 - y^2``, hardtanh's is
``min_val < y < max_val``, leaky_relu's ``y > 0`` for a slope >= 0).  SiLU, GELU and a
LeakyReLU with a negative slope keep their input instead: the output does not determine
their gradient."""

from __future__ import annotations

from typing import Any

import fastnn
from fastnn._op_checks import GELU_APPROXIMATIONS, check_bounds, check_finite
from fastnn.nn.module import Module

__all__ = ["GELU", "Hardtanh", "LeakyReLU", "ReLU", "ReLU6", "SiLU", "Sigmoid", "Tanh"]


class _Activation(Module):
    name = ""

    def __init__(self) -> None:
        super().__init__()
        self._output: Any = None

    def forward(self, x: Any) -> Any:
        self._output = getattr(fastnn, self.name)(x)
        return self._output

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._output)
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


class Hardtanh(_Activation):
    """``input`` clamped to ``[min_val, max_val]``."""

    name = "hardtanh"

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__()
        self.min_val, self.max_val = check_bounds(type(self).__name__, min_val, max_val)

    def forward(self, x: Any) -> Any:
        self._output = fastnn.hardtanh(x, self.min_val, self.max_val)
        return self._output

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._output)
        if not need_input_grad:
            return None
        return fastnn.activation_backward(
            "hardtanh", grad, self._output, min_val=self.min_val, max_val=self.max_val
        )

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(Hardtanh):
    """``min(max(x, 0), 6)``."""

    def __init__(self) -> None:
        super().__init__(0.0, 6.0)

    def extra_repr(self) -> str:
        return ""


class _FromInput(Module):
    """An activation whose gradient needs its input: it keeps the input."""

    def __init__(self) -> None:
        super().__init__()
        self._input: Any = None

    def _grad(self, grad: Any, x: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._input)
        if not need_input_grad:
            return None
        return self._grad(grad, self._input)

    def _reset_cache(self) -> None:
        self._input = None


class LeakyReLU(Module):
    """``x if x > 0 else negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = check_finite("LeakyReLU", "negative_slope", negative_slope)
        self._saved: Any = None  # the output (slope >= 0) or the input (slope < 0)

    def forward(self, x: Any) -> Any:
        y = fastnn.leaky_relu(x, self.negative_slope)
        self._saved = y if self.negative_slope >= 0 else x
        return y

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._saved)
        if not need_input_grad:
            return None
        s = self.negative_slope
        if s >= 0:
            return fastnn.activation_backward("leaky_relu", grad, self._saved, negative_slope=s)
        # from the input: g where x > 0 (relu's gradient at x), s * g elsewhere
        positive = fastnn.activation_backward("relu", grad, self._saved)
        return positive + s * (grad - positive)

    def _reset_cache(self) -> None:
        self._saved = None

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class SiLU(_FromInput):
    """``x * sigmoid(x)``."""

    def forward(self, x: Any) -> Any:
        self._input = x
        return fastnn.silu(x)

    def _grad(self, grad: Any, x: Any) -> Any:
        return fastnn.silu_backward(grad, x)


class GELU(_FromInput):
    """``x * Phi(x)`` (``approximate="none"``) or its tanh approximation (``"tanh"``)."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in GELU_APPROXIMATIONS:
            raise ValueError(
                f"GELU: approximate must be one of {GELU_APPROXIMATIONS}, got {approximate!r}"
            )
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        self._input = x
        return fastnn.gelu(x, self.approximate)

    def _grad(self, grad: Any, x: Any) -> Any:
        return fastnn.gelu_backward(grad, x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"
