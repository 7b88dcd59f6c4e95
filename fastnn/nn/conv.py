"""Conv1d and Conv2d: cross-correlation layers (PyTorch's layout and arguments)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import fastnn
from fastnn.nn import init
from fastnn.nn._layer_args import check_features, check_float_dtype, int_tuple
from fastnn.nn.module import Module
from fastnn.nn.parameter import Parameter

__all__ = ["Conv1d", "Conv2d"]


class _ConvNd(Module):
    """Shared by Conv1d and Conv2d; ``nd`` is the number of spatial dimensions."""

    nd = 0
    _forward_op: Any = None
    _backward_op: Any = None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        algo: str = "auto",
        dtype: Any = np.float32,
        rng: init.RngLike = None,
    ) -> None:
        super().__init__()
        layer = type(self).__name__
        self.in_channels = check_features(layer, "in_channels", in_channels)
        self.out_channels = check_features(layer, "out_channels", out_channels)
        self.groups = check_features(layer, "groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{layer}: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"be divisible by groups ({groups})"
            )
        self.kernel_size = int_tuple(layer, "kernel_size", kernel_size, self.nd, 1)
        self.stride = int_tuple(layer, "stride", stride, self.nd, 1)
        self.dilation = int_tuple(layer, "dilation", dilation, self.nd, 1)
        self.padding = _padding(layer, padding, self.nd, self.stride)
        if algo not in ("auto", "im2col", "direct"):
            raise ValueError(f"{layer}: algo must be 'auto', 'im2col' or 'direct', got {algo!r}")
        self.algo = algo
        dtype = check_float_dtype(layer, dtype)
        generator = init.as_generator(rng)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(
            init.kaiming_uniform(shape, a=math.sqrt(5), rng=generator, dtype=dtype)
        )
        bound = 1.0 / math.sqrt(init.fans(shape)[0])
        self.bias = (
            Parameter(init.uniform(self.out_channels, -bound, bound, rng=generator, dtype=dtype))
            if bias
            else None
        )
        self._input: Any = None

    def _geometry(self) -> dict[str, Any]:
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "algo": self.algo,
        }

    def forward(self, x: Any) -> Any:
        bias = self.bias.data if self.bias is not None else None
        y = type(self)._forward_op(x, self.weight.data, bias, **self._geometry())
        self._input = x
        return y

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._input)
        mask = (
            bool(need_input_grad),
            self.weight.requires_grad,
            self.bias is not None and self.bias.requires_grad,
        )
        gx, gw, gb = type(self)._backward_op(
            grad, self._input, self.weight.data, output_mask=mask, **self._geometry()
        )
        self.weight.accumulate(gw)
        if self.bias is not None:
            self.bias.accumulate(gb)
        return gx

    def _reset_cache(self) -> None:
        self._input = None

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1,) * self.nd:
            text += f", stride={self.stride}"
        if self.padding not in ((0,) * self.nd, "valid"):
            text += f", padding={self.padding!r}"
        if self.dilation != (1,) * self.nd:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


def _padding(layer: str, padding: object, nd: int, stride: tuple[int, ...]):
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{layer}: padding must be an int, a tuple, 'same' or 'valid'")
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError(f"{layer}: padding='same' needs stride 1, got stride {stride}")
        return padding
    return int_tuple(layer, "padding", padding, nd, 0)


class Conv1d(_ConvNd):
    """1-D convolution of (N, C_in, L) inputs with a (C_out, C_in // groups, kL) weight."""

    nd = 1
    _forward_op = staticmethod(fastnn.conv1d)
    _backward_op = staticmethod(fastnn.conv1d_backward)


class Conv2d(_ConvNd):
    """2-D convolution of (N, C_in, H, W) inputs with a (C_out, C_in // groups, kH, kW)
    weight."""

    nd = 2
    _forward_op = staticmethod(fastnn.conv2d)
    _backward_op = staticmethod(fastnn.conv2d_backward)
