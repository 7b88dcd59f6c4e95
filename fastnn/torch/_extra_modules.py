"""Drop-in layers for adaptive pooling, dropout and flatten: subclasses of the torch.nn
layers whose forward runs fastnn (see :mod:`fastnn.torch._modules` for the rules: they add
nothing to the instance, and fall back to the torch parent's forward when fastnn cannot
run the input)."""

from __future__ import annotations

import torch
from torch import nn

from fastnn.torch._adaptive_pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
)
from fastnn.torch._bridge import runs_here
from fastnn.torch._dropout import dropout
from fastnn.torch._modules import _DropIn

__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Dropout", "Flatten"]


class AdaptiveAvgPool1d(_DropIn, nn.AdaptiveAvgPool1d):
    """``torch.nn.AdaptiveAvgPool1d`` run by :func:`fastnn.torch.adaptive_avg_pool1d`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_here(input):
            return super().forward(input)
        return adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(_DropIn, nn.AdaptiveAvgPool2d):
    """``torch.nn.AdaptiveAvgPool2d`` run by :func:`fastnn.torch.adaptive_avg_pool2d`
    (``output_size=1``: global average pooling, a per-plane sum)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_here(input):
            return super().forward(input)
        return adaptive_avg_pool2d(input, self.output_size)


class AdaptiveMaxPool2d(_DropIn, nn.AdaptiveMaxPool2d):
    """``torch.nn.AdaptiveMaxPool2d`` run by :func:`fastnn.torch.adaptive_max_pool2d`."""

    def forward(self, input: torch.Tensor):
        if not runs_here(input):
            return super().forward(input)
        return adaptive_max_pool2d(input, self.output_size, self.return_indices)


class Dropout(_DropIn, nn.Dropout):
    """``torch.nn.Dropout`` run by :func:`fastnn.torch.dropout` (fastnn's random stream,
    seeded from torch's default generator; the identity in eval mode)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_here(input):
            return super().forward(input)
        return dropout(input, self.p, self.training, self.inplace)


class Flatten(_DropIn, nn.Flatten):
    """``torch.nn.Flatten``: already a view of its input (no kernel, no copy); the drop-in
    keeps torch's forward so that a patched model stays whole."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return super().forward(input)
