"""Elementwise activations and (log-)softmax, with their gradients from the output."""

from __future__ import annotations

import numpy as np

from fastnn.backends.reference._util import activate, f64, finish, reference


@reference("relu")
def _relu(x):
    return finish(activate("relu", f64(x)), x.dtype)


@reference("sigmoid")
def _sigmoid(x):
    return finish(activate("sigmoid", f64(x)), x.dtype)


@reference("tanh")
def _tanh(x):
    return finish(activate("tanh", f64(x)), x.dtype)


@reference("activation_backward")
def _activation_backward(name: str, gy, y):
    g, out = f64(gy), f64(y)
    if name == "relu":  # as PyTorch: zero where y <= 0, so a NaN output passes g through
        grad = np.where(out <= 0, 0.0, g)
    elif name == "sigmoid":
        grad = g * out * (1.0 - out)
    else:  # tanh
        grad = g * (1.0 - out * out)
    return finish(grad, gy.dtype)


def _shifted(x, dim: int) -> np.ndarray:
    """x - max(x) along dim: every exponent is <= 0, so exp never overflows.

    ``initial=-inf`` lets an empty ``dim`` through (the result is empty anyway).  A row
    holding +inf, NaN or only -inf gives NaN, as in PyTorch; numpy's warning is silenced.
    """
    x = f64(x)
    with np.errstate(invalid="ignore"):
        return x - np.max(x, axis=dim, keepdims=True, initial=-np.inf)


@reference("softmax")
def _softmax(x, dim: int):
    e = np.exp(_shifted(x, dim))
    with np.errstate(invalid="ignore"):
        return finish(e / e.sum(axis=dim, keepdims=True), x.dtype)


@reference("log_softmax")
def _log_softmax(x, dim: int):
    z = _shifted(x, dim)
    with np.errstate(invalid="ignore", divide="ignore"):  # log(0) of an empty dim
        return finish(z - np.log(np.exp(z).sum(axis=dim, keepdims=True)), x.dtype)


@reference("softmax_backward")
def _softmax_backward(gy, y, dim: int):
    g, out = f64(gy), f64(y)
    return finish(out * (g - (g * out).sum(axis=dim, keepdims=True)), gy.dtype)


@reference("log_softmax_backward")
def _log_softmax_backward(gy, y, dim: int):
    g, out = f64(gy), f64(y)
    return finish(g - np.exp(out) * g.sum(axis=dim, keepdims=True), gy.dtype)
