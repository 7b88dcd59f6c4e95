"""Drop-in activation layers: ReLU6, Hardtanh, LeakyReLU, SiLU and GELU run by fastnn.

Like the classes of ``_modules``: subclasses of the torch layers that add nothing to the
instance (``fastnn.torch.patch`` can swap the class of an existing layer), each forward
falling back to the torch parent's when fastnn cannot run the input (a dtype other than
float32/float64, an unsupported device).  ``inplace=True`` is honoured: the result is
written into the input (see ``_activation_extra``).
"""

from __future__ import annotations

import torch
from torch import nn

from fastnn.torch._activation_extra import gelu, hardtanh, leaky_relu, relu6, silu
from fastnn.torch._bridge import runs_here
from fastnn.torch._modules import _DropIn

__all__ = ["GELU", "Hardtanh", "LeakyReLU", "ReLU6", "SiLU"]


class Hardtanh(_DropIn, nn.Hardtanh):
    """``torch.nn.Hardtanh`` run by :func:`fastnn.torch.hardtanh`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_here(input):
            return super().forward(input)
        return hardtanh(input, self.min_val, self.max_val, self.inplace)


class ReLU6(_DropIn, nn.ReLU6):
    """``torch.nn.ReLU6`` run by :func:`fastnn.torch.relu6`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_here(input):
            return super().forward(input)
        return relu6(input, self.inplace)


class LeakyReLU(_DropIn, nn.LeakyReLU):
    """``torch.nn.LeakyReLU`` run by :func:`fastnn.torch.leaky_relu`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_here(input):
            return super().forward(input)
        return leaky_relu(input, self.negative_slope, self.inplace)


class SiLU(_DropIn, nn.SiLU):
    """``torch.nn.SiLU`` run by :func:`fastnn.torch.silu`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_here(input):
            return super().forward(input)
        return silu(input, self.inplace)


class GELU(_DropIn, nn.GELU):
    """``torch.nn.GELU`` run by :func:`fastnn.torch.gelu`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_here(input):
            return super().forward(input)
        return gelu(input, self.approximate)
