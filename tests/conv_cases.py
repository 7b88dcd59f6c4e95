"""The convolution problem the conv tests of every backend draw: shapes and parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastnn._geometry import conv_geometry


@dataclass(frozen=True)
class ConvCase:
    """One convolution problem: shapes and parameters (``padding`` may be a string)."""

    nd: int
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: int | tuple[int, ...]
    padding: int | tuple[int, ...] | str
    dilation: int | tuple[int, ...]
    bias: bool = True

    @classmethod
    def of_layer(cls, dims: tuple, params: tuple) -> ConvCase:
        """The case of a :func:`valid_layer` result."""
        n, c, k, size, kernel = dims
        stride, padding, dilation, groups = params
        return cls(len(size), n, c, k, groups, size, kernel, stride, padding, dilation)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, *self.size)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)

    @property
    def params(self) -> tuple:
        """(stride, padding, dilation, groups), in the order of the public ops."""
        return self.stride, self.padding, self.dilation, self.groups

    def arrays(self, rng: np.random.Generator, dtype, bias: bool | None = None):
        """Random input, weight and bias (None without a bias; ``bias`` overrides the
        field)."""
        x = rng.standard_normal(self.input_shape).astype(dtype)
        w = rng.standard_normal(self.weight_shape).astype(dtype)
        with_bias = self.bias if bias is None else bias
        b = rng.standard_normal(self.out_channels).astype(dtype) if with_bias else None
        return x, w, b

    def __str__(self) -> str:
        bias = "" if self.bias else "-nobias"
        return (
            f"{self.nd}d-x{self.input_shape}-w{self.weight_shape}-s{self.stride}"
            f"-p{self.padding}-d{self.dilation}-g{self.groups}{bias}"
        ).replace(" ", "")

    def fits(self) -> bool:
        """Whether the padded input holds the dilated kernel (else the op must raise)."""
        pads = _as_tuple(self.padding, self.nd) if not isinstance(self.padding, str) else None
        for i in range(self.nd):
            span = _as_tuple(self.dilation, self.nd)[i] * (self.kernel[i] - 1) + 1
            pad = 0 if self.padding == "valid" else (span - 1 if pads is None else 2 * pads[i])
            if self.size[i] + pad < span:
                return False
        return True


def _as_tuple(value, nd: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple) else (value,) * nd


def valid_layer(n, groups, cg, kg, size, kernel, stride, padding, dilation):
    """``((n, c, k, size, kernel), (stride, padding, dilation, groups))`` of a layer with
    ``cg`` input and ``kg`` output channels per group, or None where conv_geometry rejects
    it."""
    c, k = groups * cg, groups * kg
    try:
        conv_geometry("conv", len(size), (n, c, *size), (k, cg, *kernel), stride, padding,
                      dilation, groups)  # fmt: skip
    except ValueError:
        return None
    return (n, c, k, size, kernel), (stride, padding, dilation, groups)
