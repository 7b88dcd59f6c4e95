"""Linear: a fully connected layer, ``activation(x @ weight.T + bias)``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import fastnn
from fastnn.nn import init
from fastnn.nn._layer_args import check_activation, check_features, check_float_dtype
from fastnn.nn.module import Module
from fastnn.nn.parameter import Parameter

__all__ = ["Linear"]


class Linear(Module):
    """``y = activation(x @ weight.T + bias)`` for ``x`` of shape (..., in_features).

    ``weight`` is (out_features, in_features) and ``bias`` (out_features,), both initialised
    as in PyTorch: uniform in ``[-1/sqrt(in_features), 1/sqrt(in_features)]``.
    ``activation`` (None, "relu", "sigmoid" or "tanh") is fused into the same kernel as the
    matrix product; a separate activation layer computes the same thing in two passes.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        activation: str | None = None,
        dtype: Any = np.float32,
        rng: init.RngLike = None,
    ) -> None:
        super().__init__()
        self.in_features = check_features("Linear", "in_features", in_features)
        self.out_features = check_features("Linear", "out_features", out_features)
        self.activation = check_activation("Linear", activation)
        dtype = check_float_dtype("Linear", dtype)
        generator = init.as_generator(rng)
        shape = (self.out_features, self.in_features)
        self.weight = Parameter(
            init.kaiming_uniform(shape, a=math.sqrt(5), rng=generator, dtype=dtype)
        )
        bound = 1.0 / math.sqrt(self.in_features)
        self.bias = (
            Parameter(init.uniform(self.out_features, -bound, bound, rng=generator, dtype=dtype))
            if bias
            else None
        )
        self._input: Any = None
        self._output: Any = None

    def forward(self, x: Any) -> Any:
        bias = self.bias.data if self.bias is not None else None
        y = fastnn.linear(x, self.weight.data, bias, activation=self.activation)
        self._input, self._output = x, y
        return y

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._input)
        if self.activation is not None:
            grad = fastnn.activation_backward(self.activation, grad, self._output)
        mask = (
            bool(need_input_grad),
            self.weight.requires_grad,
            self.bias is not None and self.bias.requires_grad,
        )
        gx, gw, gb = fastnn.linear_backward(grad, self._input, self.weight.data, output_mask=mask)
        self.weight.accumulate(gw)
        if self.bias is not None:
            self.bias.accumulate(gb)
        return gx

    def _reset_cache(self) -> None:
        self._input = self._output = None

    def extra_repr(self) -> str:
        text = f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"
        return text + (f", activation={self.activation!r}" if self.activation else "")
