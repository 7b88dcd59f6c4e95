"""Max, average and adaptive pooling layers, 1-D (N, C, L) and 2-D (N, C, H, W)."""

from __future__ import annotations

from typing import Any

import fastnn
from fastnn.nn._layer_args import int_tuple
from fastnn.nn.module import Module

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "MaxPool1d",
    "MaxPool2d",
]


class _MaxPoolNd(Module):
    nd = 0
    _forward_op: Any = None
    _backward_op: Any = None

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        layer = type(self).__name__
        self.kernel_size = int_tuple(layer, "kernel_size", kernel_size, self.nd, 1)
        self.stride = (
            self.kernel_size if stride is None else int_tuple(layer, "stride", stride, self.nd, 1)
        )
        self.padding = int_tuple(layer, "padding", padding, self.nd, 0)
        self.dilation = int_tuple(layer, "dilation", dilation, self.nd, 1)
        self.ceil_mode = bool(ceil_mode)
        self._input: Any = None
        self._indices: Any = None

    def _geometry(self) -> dict[str, Any]:
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "ceil_mode": self.ceil_mode,
        }

    def forward(self, x: Any) -> Any:
        y, self._indices = self._forward_op(x, return_indices=True, **self._geometry())
        self._input = x
        return y

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._input)
        if not need_input_grad:
            return None
        return self._backward_op(grad, self._input, indices=self._indices, **self._geometry())

    def _reset_cache(self) -> None:
        self._input = self._indices = None

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
            + (f", dilation={self.dilation}" if self.dilation != (1,) * self.nd else "")
            + (", ceil_mode=True" if self.ceil_mode else "")
        )


class _AvgPoolNd(Module):
    nd = 0
    _forward_op: Any = None
    _backward_op: Any = None

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        layer = type(self).__name__
        self.kernel_size = int_tuple(layer, "kernel_size", kernel_size, self.nd, 1)
        self.stride = (
            self.kernel_size if stride is None else int_tuple(layer, "stride", stride, self.nd, 1)
        )
        self.padding = int_tuple(layer, "padding", padding, self.nd, 0)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self._input: Any = None

    def _geometry(self) -> dict[str, Any]:
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }

    def forward(self, x: Any) -> Any:
        y = self._forward_op(x, **self._geometry())
        self._input = x
        return y

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._input)
        if not need_input_grad:
            return None
        return self._backward_op(grad, self._input, **self._geometry())

    def _reset_cache(self) -> None:
        self._input = None

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
            + (", ceil_mode=True" if self.ceil_mode else "")
            + ("" if self.count_include_pad else ", count_include_pad=False")
        )


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L) inputs; backward routes each gradient to the
    position that won (the first one on ties, as in PyTorch)."""

    nd = 1
    _forward_op = staticmethod(fastnn.max_pool1d)
    _backward_op = staticmethod(fastnn.max_pool1d_backward)


class MaxPool2d(_MaxPoolNd):
    """Max over windows of (N, C, H, W) inputs."""

    nd = 2
    _forward_op = staticmethod(fastnn.max_pool2d)
    _backward_op = staticmethod(fastnn.max_pool2d_backward)


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of (N, C, L) inputs."""

    nd = 1
    _forward_op = staticmethod(fastnn.avg_pool1d)
    _backward_op = staticmethod(fastnn.avg_pool1d_backward)


class AvgPool2d(_AvgPoolNd):
    """Mean over windows of (N, C, H, W) inputs."""

    nd = 2
    _forward_op = staticmethod(fastnn.avg_pool2d)
    _backward_op = staticmethod(fastnn.avg_pool2d_backward)


class _AdaptivePoolNd(Module):
    """Pools to a fixed ``output_size`` whatever the input size (PyTorch's windows)."""

    nd = 0
    _forward_op: Any = None
    _backward_op: Any = None

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        if isinstance(output_size, (list, tuple)):
            output_size = tuple(output_size)
            if len(output_size) != self.nd:
                raise ValueError(
                    f"{type(self).__name__}: output_size must be an int or a tuple of "
                    f"{self.nd}, got {output_size!r}"
                )
            for v in output_size:
                if v is not None:
                    int_tuple(type(self).__name__, "output_size", v, 1, 1)
        else:
            int_tuple(type(self).__name__, "output_size", output_size, 1, 1)
        self.output_size = output_size
        self._input: Any = None

    def _reset_cache(self) -> None:
        self._input = None

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class _AdaptiveAvgPoolNd(_AdaptivePoolNd):
    def forward(self, x: Any) -> Any:
        y = self._forward_op(x, self.output_size)
        self._input = x
        return y

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._input)
        if not need_input_grad:
            return None
        return self._backward_op(grad, self._input)


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Mean over adaptive windows of (N, C, L) inputs, to (N, C, output_size)."""

    nd = 1
    _forward_op = staticmethod(fastnn.adaptive_avg_pool1d)
    _backward_op = staticmethod(fastnn.adaptive_avg_pool1d_backward)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Mean over adaptive windows of (N, C, H, W) inputs; ``AdaptiveAvgPool2d(1)`` is the
    global average pooling of classifier heads.  ``output_size`` entries may be None
    (keep that input size)."""

    nd = 2
    _forward_op = staticmethod(fastnn.adaptive_avg_pool2d)
    _backward_op = staticmethod(fastnn.adaptive_avg_pool2d_backward)


class AdaptiveMaxPool2d(_AdaptivePoolNd):
    """Max over adaptive windows of (N, C, H, W) inputs; backward routes each gradient to
    the position that won."""

    nd = 2

    def __init__(self, output_size: Any) -> None:
        super().__init__(output_size)
        self._indices: Any = None

    def forward(self, x: Any) -> Any:
        y, self._indices = fastnn.adaptive_max_pool2d(x, self.output_size, return_indices=True)
        self._input = x
        return y

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._input)
        if not need_input_grad:
            return None
        return fastnn.adaptive_max_pool2d_backward(grad, self._input, self._indices)

    def _reset_cache(self) -> None:
        self._input = self._indices = None
