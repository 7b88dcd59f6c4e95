"""The backprop sensitivity recursion (BP1-BP4) on the CPU.

- BP1 :func:`output_sensitivity`: one fused pass over (y, t, u) (kernels/cpu/backprop.pyx);
  for cross-entropy the softmax-minus-onehot kernel of kernels/cpu/loss.pyx.
- BP2 :func:`sensitivity`: ``f'(u) * (delta_next @ W)`` as one GEMM whose epilogue
  multiplies each tile by f'(u) while it is in cache: no temporary for the product.
- BP3/BP4 :func:`dense_grads`: ``delta.T @ x`` (GEMM) and the column sums of delta.
- :func:`mlp_backward`: BP3/BP4 then BP2 per layer, last layer first.
"""

from __future__ import annotations

import numpy as np

from fastnn._backends._layer_walk import walk_layers
from fastnn._backends.cpu._gemm import matmul
from fastnn._backends.cpu.activation import CODES
from fastnn._backends.cpu.dense import column_sums
from fastnn._backends.cpu.loss import REDUCTIONS
from fastnn._dispatch import register
from fastnn._threads import team_size
from fastnn.kernels.cpu import backprop as _k
from fastnn.kernels.cpu import loss as _loss

_POINTWISE = {"mse": _k.MSE, "binary_cross_entropy": _k.BCE}


def _mean_scale(reduction: str, count: int) -> float:
    """d(reduction)/d(element): 1/count for "mean" (NaN when there is nothing), else 1."""
    if reduction != "mean":
        return 1.0
    return 1.0 / count if count else float("nan")


@register("output_sensitivity", "cpu")
def output_sensitivity(y, target, u, activation, loss: str, reduction: str) -> np.ndarray:
    """BP1: delta = f'(u) * dJ/dy."""
    if loss == "cross_entropy":
        if activation is None:  # y are logits: softmax(y) - onehot, scaled
            return _loss.cross_entropy_backward(y, target, REDUCTIONS[reduction], team_size())
        delta = np.array(y, order="C", copy=True)  # y are probabilities already
        delta[np.arange(delta.shape[0]), np.asarray(target, dtype=np.intp)] -= 1
        delta *= _mean_scale(reduction, delta.shape[0])
        return delta
    scale = _mean_scale(reduction, int(np.prod(y.shape)))
    return _k.output_sensitivity(
        _POINTWISE[loss], CODES[activation], y, target, u, scale, team_size()
    )


@register("sensitivity", "cpu")
def sensitivity(delta_next, w_next, u, activation) -> np.ndarray:
    """BP2: f'(u) * (delta_next @ w_next), f' applied in the GEMM's epilogue."""
    if activation is None:
        return matmul(delta_next, w_next)
    return matmul(delta_next, w_next, act=CODES[activation], u=u)


@register("dense_grads", "cpu")
def dense_grads(delta, x) -> tuple[np.ndarray, np.ndarray]:
    """BP4 delta.T @ x and BP3 the column sums of delta."""
    return matmul(delta, x, trans_a=True), column_sums(delta)


@register("mlp_backward", "cpu")
def mlp_backward(inputs, preacts, weights, delta_out, activations) -> list:
    """BP3/BP4 at each layer, BP2 to step back, from the last layer to the first."""
    return walk_layers(inputs, preacts, weights, delta_out, activations, dense_grads, sensitivity)
