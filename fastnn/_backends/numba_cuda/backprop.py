"""The sensitivity recursion BP1-BP4 on the GPU.

- BP1 ``output_sensitivity``: one elementwise launch (one row launch for cross-entropy).
- BP2 ``sensitivity``: one GEMM launch, ``delta @ W`` with f'(u) multiplied in the
  epilogue (no temporary for the product).
- BP3/BP4 ``dense_grads``: one GEMM (``delta.T @ x``) and one column-sum launch.
- ``mlp_backward``: the three above per layer, walking from the last layer to the first.
"""

from __future__ import annotations

from typing import Any

from fastnn._backends._layer_walk import walk_layers
from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda._device import device_arrays, empty, launch
from fastnn._backends.numba_cuda._gemm import as3d, matmul
from fastnn._backends.numba_cuda.dense import dense_backward
from fastnn._backends.numba_cuda.loss import BCE_EPS, cross_entropy_grad, mean_scale
from fastnn._dispatch import register
from fastnn.kernels.numba_cuda.activation import THREADS
from fastnn.kernels.numba_cuda.loss import BCE, MSE, loss_kernels
from fastnn.kernels.numba_cuda.pointwise import CODES


@register("output_sensitivity", "numba-cuda")
@device_arrays
def _output_sensitivity(y, target, u, activation, loss: str, reduction: str):
    if loss == "cross_entropy":
        scale = mean_scale(reduction, y.shape[0])
        return cross_entropy_grad(y, target, scale, activation == "softmax")
    n = y.size
    out = empty(y.shape, y.dtype)
    scalar = y.dtype.type
    blocks, threads = _launch.elementwise(n, THREADS)
    launch(
        loss_kernels(y.dtype).output_delta, blocks, threads, MSE if loss == "mse" else BCE,
        CODES[activation], y.reshape(n), target.reshape(n), u.reshape(n), out.reshape(n),
        scalar(mean_scale(reduction, n)), scalar(BCE_EPS),
    )  # fmt: skip
    return out


def sensitivity(delta_next: Any, w_next: Any, u: Any, activation: str | None) -> Any:
    """BP2: ``f'(u) * (delta_next @ w_next)`` in one GEMM launch."""
    out = empty(u.shape, u.dtype)
    matmul(as3d(delta_next), as3d(w_next), as3d(out), preact=as3d(u), derivative=activation)
    return out


@register("sensitivity", "numba-cuda")
@device_arrays
def _sensitivity(delta_next, w_next, u, activation):
    return sensitivity(delta_next, w_next, u, activation)


def dense_grads(delta: Any, x: Any) -> tuple[Any, Any]:
    """BP3/BP4: ``(delta.T @ x, delta summed over rows)``."""
    _, grad_weight, grad_bias = dense_backward(delta, x, None, True, True)
    return grad_weight, grad_bias


@register("dense_grads", "numba-cuda")
@device_arrays
def _dense_grads(delta, x):
    return dense_grads(delta, x)


@register("mlp_backward", "numba-cuda")
@device_arrays
def _mlp_backward(inputs, preacts, weights, delta_out, activations):
    return walk_layers(inputs, preacts, weights, delta_out, activations, dense_grads, sensitivity)
