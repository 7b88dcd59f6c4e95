"""Losses and their gradients on the CPU: kernels/cpu/loss.pyx."""

from __future__ import annotations

import numpy as np

from fastnn._dispatch import register
from fastnn._threads import team_size
from fastnn.kernels.cpu import loss as _k

#: Reduction names -> the kernels' codes.
REDUCTIONS = {"none": _k.NONE, "mean": _k.MEAN, "sum": _k.SUM}


@register("mse_loss", "cpu")
def mse_loss(x: np.ndarray, t: np.ndarray, reduction: str) -> np.ndarray:
    return _k.pointwise(_k.MSE, x, t, REDUCTIONS[reduction], team_size())


@register("mse_loss_backward", "cpu")
def mse_loss_backward(x: np.ndarray, t: np.ndarray, reduction: str) -> np.ndarray:
    return _k.pointwise_backward(_k.MSE, x, t, REDUCTIONS[reduction], team_size())


@register("binary_cross_entropy", "cpu")
def binary_cross_entropy(x: np.ndarray, t: np.ndarray, reduction: str) -> np.ndarray:
    return _k.pointwise(_k.BCE, x, t, REDUCTIONS[reduction], team_size())


@register("binary_cross_entropy_backward", "cpu")
def binary_cross_entropy_backward(x: np.ndarray, t: np.ndarray, reduction: str) -> np.ndarray:
    return _k.pointwise_backward(_k.BCE, x, t, REDUCTIONS[reduction], team_size())


@register("cross_entropy", "cpu")
def cross_entropy(x: np.ndarray, target: np.ndarray, reduction: str) -> np.ndarray:
    return _k.cross_entropy(x, target, REDUCTIONS[reduction], team_size())


@register("cross_entropy_backward", "cpu")
def cross_entropy_backward(x: np.ndarray, target: np.ndarray, reduction: str) -> np.ndarray:
    return _k.cross_entropy_backward(x, target, REDUCTIONS[reduction], team_size())
