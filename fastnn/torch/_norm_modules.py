"""Drop-in BatchNorm1d / BatchNorm2d: subclasses of the torch layers whose forward runs
:func:`fastnn.torch.batch_norm`.

Like the classes of ``_modules``, they keep their torch parent's constructor, parameters,
buffers and state_dict and add nothing to the instance.  The forward reproduces torch's
module logic (num_batches_tracked, momentum=None as a cumulative average, affine=False,
track_running_stats=False, eval with the running statistics) and falls back to the torch
parent's forward when fastnn cannot run the input: a dtype other than float32/float64, an
unsupported device, or parameters / buffers of another dtype or device than the input.
"""

from __future__ import annotations

import torch
from torch import nn

from fastnn.torch._bridge import runs_here
from fastnn.torch._norm import batch_norm

__all__ = ["BatchNorm1d", "BatchNorm2d"]


def _runs(layer: nn.modules.batchnorm._BatchNorm, input: torch.Tensor) -> bool:
    """fastnn can run ``input`` with the layer's parameters and running statistics."""
    if not runs_here(input):
        return False
    tensors = (layer.weight, layer.bias, layer.running_mean, layer.running_var)
    return all(t is None or (t.dtype == input.dtype and t.device == input.device) for t in tensors)


class _BatchNormDropIn:
    """What both drop-in batch norms add to their torch parent (class-level only)."""

    @staticmethod
    def unsupported(layer: nn.Module) -> str | None:
        """Why fastnn cannot run ``layer`` whatever its input (None: it can)."""
        return None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.forward_activation(input, None)

    def forward_activation(self, input: torch.Tensor, activation: str | None) -> torch.Tensor:
        """``activation(self(input))`` for activation None, "relu" or "relu6", in one fused
        pass on fastnn (the block forwards of fastnn.torch.patch call this)."""
        self._check_input_dim(input)
        if not _runs(self, input):
            y = super().forward(input)
            if activation is None:
                return y
            return torch.relu(y) if activation == "relu" else torch.nn.functional.relu6(y)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return batch_norm(
            input,
            self.running_mean if keep else None,
            self.running_var if keep else None,
            self.weight,
            self.bias,
            use_batch,
            factor,
            self.eps,
            activation=activation,
        )


class BatchNorm1d(_BatchNormDropIn, nn.BatchNorm1d):
    """``torch.nn.BatchNorm1d`` ((N, C) or (N, C, L)) run by fastnn."""


class BatchNorm2d(_BatchNormDropIn, nn.BatchNorm2d):
    """``torch.nn.BatchNorm2d`` ((N, C, H, W)) run by fastnn."""
