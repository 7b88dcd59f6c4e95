"""Drop-in layers: subclasses of the torch.nn layers whose forward runs fastnn.

Each class keeps its torch parent's constructor, parameters, buffers and state_dict (so
checkpoints load either way) and adds nothing to the instance, which is what lets
:func:`fastnn.torch.patch` turn an existing torch layer into one by changing its class.

Every forward falls back to the torch parent's forward when fastnn cannot run the call:

- an input that is not float32/float64, or not on the CPU (or on CUDA without CuPy), or
  parameters of another dtype or device than the input;
- options fastnn has no kernel for: ``padding_mode`` other than "zeros" (convolutions),
  ``divisor_override`` (AvgPool2d), ``dim=None`` (Softmax, LogSoftmax).
  :meth:`unsupported` names them, and ``patch`` leaves such layers alone.
"""

from __future__ import annotations

import torch
from torch import nn

from fastnn.torch._activation import log_softmax, relu, sigmoid, softmax, tanh
from fastnn.torch._bridge import runs_here
from fastnn.torch._conv import conv1d, conv2d
from fastnn.torch._dense import linear
from fastnn.torch._pool import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d

__all__ = [
    "AvgPool1d",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "LogSoftmax",
    "Linear",
    "MaxPool1d",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]


def runs_with(input: torch.Tensor, weight: torch.Tensor) -> bool:
    """fastnn can run ``input`` with a parameter ``weight`` of the same dtype and device."""
    return runs_here(input) and weight.dtype == input.dtype and weight.device == input.device


class _DropIn:
    """What every drop-in layer adds to its torch parent (class-level only)."""

    @staticmethod
    def unsupported(layer: nn.Module) -> str | None:
        """Why fastnn cannot run ``layer`` whatever its input (None: it can)."""
        return None


def _torch_activation(y: torch.Tensor, activation: str | None) -> torch.Tensor:
    """``activation`` (None, "relu", "relu6", "sigmoid" or "tanh") applied by torch."""
    if activation is None:
        return y
    if activation == "relu6":
        return torch.nn.functional.relu6(y)
    return getattr(torch, activation)(y)


class _ConvDropIn(_DropIn):
    #: fastnn's convolution algorithm: "auto", "im2col" or "direct".  A class attribute;
    #: set it on a layer (``layer.algo = "direct"``) to choose for that layer only.
    algo = "auto"
    #: The activations :meth:`forward_activation` fuses into the write-out.
    FUSED_ACTIVATIONS = frozenset({"relu", "relu6"})

    @staticmethod
    def unsupported(layer: nn.Module) -> str | None:
        if layer.padding_mode != "zeros":
            return f"padding_mode={layer.padding_mode!r} (fastnn pads with zeros only)"
        return None

    def forward_activation(self, input: torch.Tensor, activation: str | None) -> torch.Tensor:
        """``activation(self(input))`` for activation None, "relu" or "relu6", the
        activation fused into the convolution's write-out on fastnn, in training too (the
        block forwards of fastnn.torch.patch call this)."""
        if self.padding_mode != "zeros" or not runs_with(input, self.weight):
            return _torch_activation(super().forward(input), activation)  # torch's layer
        conv = conv2d if isinstance(self, nn.Conv2d) else conv1d
        return conv(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation,
            self.groups, algo=self.algo, activation=activation,
        )  # fmt: skip


class Conv1d(_ConvDropIn, nn.Conv1d):
    """``torch.nn.Conv1d`` run by :func:`fastnn.torch.conv1d` (falls back to torch for
    padding_mode != "zeros", dtypes other than float32/float64, unsupported devices)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros" or not runs_with(input, self.weight):
            return super().forward(input)
        return conv1d(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation,
            self.groups, algo=self.algo,
        )  # fmt: skip


class Conv2d(_ConvDropIn, nn.Conv2d):
    """``torch.nn.Conv2d`` run by :func:`fastnn.torch.conv2d` (falls back to torch for
    padding_mode != "zeros", dtypes other than float32/float64, unsupported devices)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros" or not runs_with(input, self.weight):
            return super().forward(input)
        return conv2d(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation,
            self.groups, algo=self.algo,
        )  # fmt: skip


class Linear(_DropIn, nn.Linear):
    """``torch.nn.Linear`` run by :func:`fastnn.torch.linear` (falls back to torch for
    dtypes other than float32/float64 and unsupported devices)."""

    #: The activations :meth:`forward_activation` fuses into the write-out.
    FUSED_ACTIVATIONS = frozenset({"relu", "sigmoid", "tanh"})

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_with(input, self.weight):
            return super().forward(input)
        return linear(input, self.weight, self.bias)

    def forward_activation(self, input: torch.Tensor, activation: str | None) -> torch.Tensor:
        """``activation(self(input))`` for activation None, "relu", "sigmoid" or "tanh",
        fused into fastnn's linear, in training too (fastnn.torch.patch's Sequential
        forward calls this)."""
        if not runs_with(input, self.weight):
            return _torch_activation(super().forward(input), activation)
        return linear(input, self.weight, self.bias, activation=activation)


class MaxPool1d(_DropIn, nn.MaxPool1d):
    """``torch.nn.MaxPool1d`` run by :func:`fastnn.torch.max_pool1d`."""

    def forward(self, input: torch.Tensor):
        if not runs_here(input):
            return super().forward(input)
        return max_pool1d(
            input, self.kernel_size, self.stride, self.padding, self.dilation,
            self.ceil_mode, self.return_indices,
        )  # fmt: skip


class MaxPool2d(_DropIn, nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` run by :func:`fastnn.torch.max_pool2d`."""

    def forward(self, input: torch.Tensor):
        if not runs_here(input):
            return super().forward(input)
        return max_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.dilation,
            self.ceil_mode, self.return_indices,
        )  # fmt: skip


class AvgPool1d(_DropIn, nn.AvgPool1d):
    """``torch.nn.AvgPool1d`` run by :func:`fastnn.torch.avg_pool1d`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_here(input):
            return super().forward(input)
        return avg_pool1d(
            input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad,
        )  # fmt: skip


class AvgPool2d(_DropIn, nn.AvgPool2d):
    """``torch.nn.AvgPool2d`` run by :func:`fastnn.torch.avg_pool2d` (falls back to torch
    when ``divisor_override`` is set)."""

    @staticmethod
    def unsupported(layer: nn.Module) -> str | None:
        if layer.divisor_override is not None:
            return f"divisor_override={layer.divisor_override!r} (not in fastnn)"
        return None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.divisor_override is not None or not runs_here(input):
            return super().forward(input)
        return avg_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad,
        )  # fmt: skip


class ReLU(_DropIn, nn.ReLU):
    """``torch.nn.ReLU`` run by :func:`fastnn.torch.relu`; with ``inplace=True`` the result
    is written into the input tensor by fastnn's kernel, which autograd sees as an in-place
    operation (marked dirty, version counter bumped), as with torch's ``relu_``."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_here(input):
            return super().forward(input)
        if self.inplace:
            from fastnn.torch._activation_extra import inplace_relu

            return inplace_relu(input)
        return relu(input)


class Sigmoid(_DropIn, nn.Sigmoid):
    """``torch.nn.Sigmoid`` run by :func:`fastnn.torch.sigmoid`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return sigmoid(input) if runs_here(input) else super().forward(input)


class Tanh(_DropIn, nn.Tanh):
    """``torch.nn.Tanh`` run by :func:`fastnn.torch.tanh`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return tanh(input) if runs_here(input) else super().forward(input)


def _implicit_dim(layer: nn.Module) -> str | None:
    return "dim=None (torch's deprecated implicit dim)" if layer.dim is None else None


class Softmax(_DropIn, nn.Softmax):
    """``torch.nn.Softmax`` run by :func:`fastnn.torch.softmax` (falls back to torch
    when ``dim`` is None)."""

    unsupported = staticmethod(_implicit_dim)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.dim is None or not runs_here(input):
            return super().forward(input)
        return softmax(input, self.dim)


class LogSoftmax(_DropIn, nn.LogSoftmax):
    """``torch.nn.LogSoftmax`` run by :func:`fastnn.torch.log_softmax` (falls back to
    torch when ``dim`` is None)."""

    unsupported = staticmethod(_implicit_dim)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.dim is None or not runs_here(input):
            return super().forward(input)
        return log_softmax(input, self.dim)


#: torch.nn layer class -> its fastnn drop-in, for the layers of this module (the whole
#: table, with batch norm, the other activations, adaptive pooling, dropout and flatten, is
#: fastnn.torch._drop_ins.DROP_INS).
DROP_INS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv1d: Conv1d,
    nn.Conv2d: Conv2d,
    nn.Linear: Linear,
    nn.MaxPool1d: MaxPool1d,
    nn.MaxPool2d: MaxPool2d,
    nn.AvgPool1d: AvgPool1d,
    nn.AvgPool2d: AvgPool2d,
    nn.ReLU: ReLU,
    nn.Sigmoid: Sigmoid,
    nn.Tanh: Tanh,
    nn.Softmax: Softmax,
    nn.LogSoftmax: LogSoftmax,
}
