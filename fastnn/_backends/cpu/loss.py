"""Losses and their gradients on the CPU: kernels/cpu/loss.pyx."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fastnn._dispatch import register
from fastnn._threads import team_size
from fastnn.kernels.cpu import loss as _k

#: Reduction names -> the kernels' codes.
REDUCTIONS = {"none": _k.NONE, "mean": _k.MEAN, "sum": _k.SUM}


def _bind(op: str, kernel: Callable[..., np.ndarray], *code: int) -> Callable[..., np.ndarray]:
    """Register as ``op`` the loss ``kernel(*code, x, target, reduction, threads)``."""

    def run(x: np.ndarray, target: np.ndarray, reduction: str) -> np.ndarray:
        return kernel(*code, x, target, REDUCTIONS[reduction], team_size())

    run.__name__ = run.__qualname__ = op
    return register(op, "cpu")(run)


mse_loss = _bind("mse_loss", _k.pointwise, _k.MSE)
mse_loss_backward = _bind("mse_loss_backward", _k.pointwise_backward, _k.MSE)
binary_cross_entropy = _bind("binary_cross_entropy", _k.pointwise, _k.BCE)
binary_cross_entropy_backward = _bind(
    "binary_cross_entropy_backward", _k.pointwise_backward, _k.BCE
)
cross_entropy = _bind("cross_entropy", _k.cross_entropy)
cross_entropy_backward = _bind("cross_entropy_backward", _k.cross_entropy_backward)
