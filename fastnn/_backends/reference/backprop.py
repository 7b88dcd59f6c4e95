"""The sensitivity recursion BP1-BP4, written as in the course notes (rows are samples)."""

from __future__ import annotations

import numpy as np

from fastnn._backends.reference._util import derivative, f64, finish
from fastnn._backends.reference.loss import BCE_EPS, mean_scale
from fastnn._dispatch import register


@register("output_sensitivity", "reference")
def _output_sensitivity(y, target, u, activation, loss: str, reduction: str):
    """BP1: delta^M = f'(u^M) * dJ/dy^M."""
    out, pre = f64(y), f64(u)
    if loss == "cross_entropy":
        if activation is None:  # y are logits: softmax them
            z = out - out.max(axis=1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        else:  # "softmax": y are already probabilities
            prob = out.copy()
        prob[np.arange(out.shape[0]), np.asarray(target, dtype=np.int64)] -= 1.0
        return finish(prob * mean_scale(reduction, out.shape[0]), y.dtype)
    t = f64(target)
    scale = mean_scale(reduction, out.size)
    if loss == "mse":
        delta = -2.0 * derivative(activation, pre) * (t - out)  # the notes' BP1
    elif activation == "sigmoid":  # BCE after a sigmoid: f'(u) cancels the denominator
        delta = out - t
    else:
        delta = derivative(activation, pre) * (out - t) / np.maximum(out * (1 - out), BCE_EPS)
    return finish(delta * scale, y.dtype)


@register("sensitivity", "reference")
def _sensitivity(delta_next, w_next, u, activation):
    """BP2: delta^m = f'(u^m) * (delta^{m+1} @ W^{m+1})."""
    return finish(derivative(activation, f64(u)) * (f64(delta_next) @ f64(w_next)), u.dtype)


@register("dense_grads", "reference")
def _dense_grads(delta, x):
    """BP4 dJ/dW = delta^T y^{m-1};  BP3 dJ/db = delta summed over the rows."""
    d = f64(delta)
    return finish(d.T @ f64(x), delta.dtype), finish(d.sum(axis=0), delta.dtype)


@register("mlp_backward", "reference")
def _mlp_backward(inputs, preacts, weights, delta_out, activations):
    """Walk the layers from the last to the first: BP3/BP4 at each, BP2 to step back."""
    grads = [None] * len(weights)
    delta = f64(delta_out)
    for m in range(len(weights) - 1, -1, -1):
        x = f64(inputs[m])
        grads[m] = (finish(delta.T @ x, delta_out.dtype), finish(delta.sum(0), delta_out.dtype))
        if m > 0:
            delta = derivative(activations[m - 1], f64(preacts[m - 1])) * (delta @ f64(weights[m]))
    return grads
