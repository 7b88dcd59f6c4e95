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


class _PoolNd(Module):
    """Forward/backward plumbing shared by every pooling layer: the op pair is called with
    the attributes named in ``_geometry_names`` as keywords; max pools (``_with_indices``)
    also keep the argmax indices for their backward."""

    nd = 0
    _forward_op: Any = None
    _backward_op: Any = None
    _geometry_names: tuple[str, ...] = ()
    _with_indices = False

    def __init_subclass__(cls, nd: int = 0, op: str = "", **kwargs: Any) -> None:
        """``nd=``, ``op=``: a concrete layer's dimensions and fastnn op (with its
        ``{op}_backward``)."""
        super().__init_subclass__(**kwargs)
        if op:
            cls.nd = nd
            cls._forward_op = staticmethod(getattr(fastnn, op))
            cls._backward_op = staticmethod(getattr(fastnn, f"{op}_backward"))

    def __init__(self) -> None:
        super().__init__()
        self._input: Any = None
        self._indices: Any = None

    def _geometry(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._geometry_names}

    def _backward_geometry(self) -> dict[str, Any]:
        return self._geometry()

    def forward(self, x: Any) -> Any:
        if self._with_indices:
            y, self._indices = self._forward_op(x, return_indices=True, **self._geometry())
        else:
            y = self._forward_op(x, **self._geometry())
        self._input = x
        return y

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        self._forward_ran(self._input)
        if not need_input_grad:
            return None
        if self._with_indices:
            return self._backward_op(
                grad, self._input, indices=self._indices, **self._backward_geometry()
            )
        return self._backward_op(grad, self._input, **self._backward_geometry())

    def _reset_cache(self) -> None:
        self._input = self._indices = None


class _WindowPoolNd(_PoolNd):
    """Pools over ``kernel_size`` windows moved by ``stride`` over a ``padding``-padded input."""

    def _window(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None,
        padding: int | tuple[int, ...],
        ceil_mode: bool,
    ) -> None:
        layer = type(self).__name__
        self.kernel_size = int_tuple(layer, "kernel_size", kernel_size, self.nd, 1)
        self.stride = (
            self.kernel_size if stride is None else int_tuple(layer, "stride", stride, self.nd, 1)
        )
        self.padding = int_tuple(layer, "padding", padding, self.nd, 0)
        self.ceil_mode = bool(ceil_mode)

    def _window_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _MaxPoolNd(_WindowPoolNd):
    _geometry_names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
    _with_indices = True

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self._window(kernel_size, stride, padding, ceil_mode)
        self.dilation = int_tuple(type(self).__name__, "dilation", dilation, self.nd, 1)

    def extra_repr(self) -> str:
        return (
            self._window_repr()
            + (f", dilation={self.dilation}" if self.dilation != (1,) * self.nd else "")
            + (", ceil_mode=True" if self.ceil_mode else "")
        )


class _AvgPoolNd(_WindowPoolNd):
    _geometry_names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        self._window(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def extra_repr(self) -> str:
        return (
            self._window_repr()
            + (", ceil_mode=True" if self.ceil_mode else "")
            + ("" if self.count_include_pad else ", count_include_pad=False")
        )


class MaxPool1d(_MaxPoolNd, nd=1, op="max_pool1d"):
    """Max over windows of (N, C, L) inputs; backward routes each gradient to the
    position that won (the first one on ties, as in PyTorch)."""


class MaxPool2d(_MaxPoolNd, nd=2, op="max_pool2d"):
    """Max over windows of (N, C, H, W) inputs."""


class AvgPool1d(_AvgPoolNd, nd=1, op="avg_pool1d"):
    """Mean over windows of (N, C, L) inputs."""


class AvgPool2d(_AvgPoolNd, nd=2, op="avg_pool2d"):
    """Mean over windows of (N, C, H, W) inputs."""


class _AdaptivePoolNd(_PoolNd):
    """Pools to a fixed ``output_size`` whatever the input size (PyTorch's windows)."""

    _geometry_names = ("output_size",)

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

    def _backward_geometry(self) -> dict[str, Any]:
        return {}  # the backward ops read the windows off the input and grad shapes

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptivePoolNd, nd=1, op="adaptive_avg_pool1d"):
    """Mean over adaptive windows of (N, C, L) inputs, to (N, C, output_size)."""


class AdaptiveAvgPool2d(_AdaptivePoolNd, nd=2, op="adaptive_avg_pool2d"):
    """Mean over adaptive windows of (N, C, H, W) inputs; ``AdaptiveAvgPool2d(1)`` is the
    global average pooling of classifier heads.  ``output_size`` entries may be None
    (keep that input size)."""


class AdaptiveMaxPool2d(_AdaptivePoolNd, nd=2, op="adaptive_max_pool2d"):
    """Max over adaptive windows of (N, C, H, W) inputs; backward routes each gradient to
    the position that won."""

    _with_indices = True
