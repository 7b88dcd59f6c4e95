"""The sensitivity recursion BP1-BP4 on the GPU: cuBLAS products, with f'(u) applied in
place to the product (epilogue.cu), the output sensitivity in one pass (loss.cu) and
deterministic bias sums (reduce.cu)."""

from __future__ import annotations

from typing import Any

import cupy

from fastnn._backends._layer_walk import walk_layers
from fastnn._backends.cupy._epilogue import derivative_multiply, mean_scale
from fastnn._backends.cupy._reduce import channel_sums
from fastnn._backends.cupy._runtime import (
    contiguous,
    cupy_arrays,
    i64,
    kernel,
    launch_1d,
    scalar,
)
from fastnn._backends.cupy._sources import ACTIVATIONS, LOSSES
from fastnn._backends.cupy.dense import matmul
from fastnn._backends.cupy.loss import cross_entropy_grad
from fastnn._dispatch import register


@register("output_sensitivity", "cupy")
@cupy_arrays
def output_sensitivity(y: Any, target: Any, u: Any, activation, loss: str, reduction: str) -> Any:
    """BP1: delta = f'(u) * d loss / d y (softmax(y) - onehot for cross-entropy)."""
    delta = cupy.empty(y.shape, dtype=y.dtype)
    if delta.size == 0:
        return delta
    if loss == "cross_entropy":
        return cross_entropy_grad(y, target, delta, reduction, from_logits=activation is None)
    n = delta.size
    kern = kernel("loss.cu", "output_sensitivity", y.dtype, LOSSES[loss], ACTIVATIONS[activation])
    scale = scalar(y.dtype, mean_scale(reduction, n))
    launch_1d(kern, n, (contiguous(y), contiguous(target), contiguous(u), delta, i64(n), scale))
    return delta


def _step_back(delta_next: Any, w_next: Any, u: Any, activation: str | None) -> Any:
    return derivative_multiply(matmul(delta_next, w_next), u, activation)


@register("sensitivity", "cupy")
@cupy_arrays
def sensitivity(delta_next: Any, w_next: Any, u: Any, activation: str | None) -> Any:
    """BP2: f'(u) * (delta_next @ w_next): cuBLAS writes the product, one pass scales it."""
    return _step_back(delta_next, w_next, u, activation)


def _dense_grads(delta: Any, x: Any) -> tuple[Any, Any]:
    rows, n_out = delta.shape
    return matmul(delta.T, x), channel_sums(contiguous(delta), rows, n_out, 1)


@register("dense_grads", "cupy")
@cupy_arrays
def dense_grads(delta: Any, x: Any) -> tuple[Any, Any]:
    """BP3/BP4: (delta.T @ x, delta summed over rows)."""
    return _dense_grads(delta, x)


@register("mlp_backward", "cupy")
@cupy_arrays
def mlp_backward(inputs: list, preacts: list, weights: list, delta_out: Any, activations) -> list:
    """BP2-BP4 over every layer, last to first; gradients returned in forward order."""
    return walk_layers(inputs, preacts, weights, delta_out, activations, _dense_grads, _step_back)
