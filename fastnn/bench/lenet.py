"""One training step of a LeNet-5-like network, built from fastnn's raw ops, and the same
step in PyTorch (autograd), for the "train" benchmark family.

Network (input N x 1 x 32 x 32, 10 classes)::

    conv 6@5x5 -> relu -> maxpool 2 -> conv 16@5x5 -> relu -> maxpool 2 -> flatten (400)
    -> linear 120 + relu -> linear 84 + relu -> linear 10 -> cross-entropy

A step is the forward pass, the loss, every gradient, and a plain SGD update in place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

import fastnn

__all__ = ["LAYERS", "fastnn_step", "flops", "init", "nbytes", "torch_step"]

#: (name, shape) of every parameter, weights then biases, layer by layer.
LAYERS = (
    ("w1", (6, 1, 5, 5)),
    ("b1", (6,)),
    ("w2", (16, 6, 5, 5)),
    ("b2", (16,)),
    ("w3", (120, 400)),
    ("b3", (120,)),
    ("w4", (84, 120)),
    ("b4", (84,)),
    ("w5", (10, 84)),
    ("b5", (10,)),
)

LEARNING_RATE = 0.01


def init(rng: np.random.Generator, batch: int, dtype: Any = np.float32) -> dict[str, Any]:
    """Parameters (uniform fan-in init), an input batch and its int64 labels."""
    arrays: dict[str, Any] = {}
    for name, shape in LAYERS:
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        bound = 1 / math.sqrt(fan_in)
        arrays[name] = rng.uniform(-bound, bound, shape).astype(dtype)
    arrays["x"] = rng.standard_normal((batch, 1, 32, 32)).astype(dtype)
    arrays["t"] = rng.integers(0, 10, batch)
    return arrays


def fastnn_step(p: Mapping[str, Any], backend: str) -> Any:
    """Forward, backward and SGD update with fastnn ops on ``backend``; returns the loss
    (before the update)."""
    x, t = p["x"], p["t"]
    n = x.shape[0]
    with fastnn.use_backend(backend):
        u1 = fastnn.conv2d(x, p["w1"], p["b1"])
        y1 = fastnn.relu(u1)
        s1, i1 = fastnn.max_pool2d(y1, 2, return_indices=True)
        u2 = fastnn.conv2d(s1, p["w2"], p["b2"])
        y2 = fastnn.relu(u2)
        s2, i2 = fastnn.max_pool2d(y2, 2, return_indices=True)
        f = s2.reshape(n, 400)
        y3 = fastnn.linear(f, p["w3"], p["b3"], activation="relu")
        y4 = fastnn.linear(y3, p["w4"], p["b4"], activation="relu")
        z = fastnn.linear(y4, p["w5"], p["b5"])
        loss = fastnn.cross_entropy(z, t)

        gz = fastnn.cross_entropy_backward(z, t)
        gy4, gw5, gb5 = fastnn.linear_backward(gz, y4, p["w5"])
        gu4 = fastnn.activation_backward("relu", gy4, y4)
        gy3, gw4, gb4 = fastnn.linear_backward(gu4, y3, p["w4"])
        gu3 = fastnn.activation_backward("relu", gy3, y3)
        gf, gw3, gb3 = fastnn.linear_backward(gu3, f, p["w3"])
        gy2 = fastnn.max_pool2d_backward(gf.reshape(s2.shape), y2, 2, indices=i2)
        gu2 = fastnn.activation_backward("relu", gy2, y2)
        gs1, gw2, gb2 = fastnn.conv2d_backward(gu2, s1, p["w2"])
        gy1 = fastnn.max_pool2d_backward(gs1, y1, 2, indices=i1)
        gu1 = fastnn.activation_backward("relu", gy1, y1)
        _, gw1, gb1 = fastnn.conv2d_backward(gu1, x, p["w1"], output_mask=(False, True, True))
    grads = (gw1, gb1, gw2, gb2, gw3, gb3, gw4, gb4, gw5, gb5)
    for (name, _), grad in zip(LAYERS, grads):
        p[name] -= LEARNING_RATE * grad
    return loss


def torch_step(p: Mapping[str, Any]) -> Any:
    """The same step in PyTorch: functional forward, autograd backward, SGD in place."""
    import torch
    import torch.nn.functional as F

    params = [p[name] for name, _ in LAYERS]
    for tensor in params:
        if not tensor.requires_grad:
            tensor.requires_grad_()
    w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = params
    h = F.max_pool2d(F.relu(F.conv2d(p["x"], w1, b1)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2)), 2)
    h = F.relu(F.linear(h.flatten(1), w3, b3))
    h = F.relu(F.linear(h, w4, b4))
    loss = F.cross_entropy(F.linear(h, w5, b5), p["t"])
    loss.backward()
    with torch.no_grad():
        for tensor in params:
            tensor -= LEARNING_RATE * tensor.grad
            tensor.grad = None
    return loss.detach()


def flops(batch: int) -> float:
    """FLOP of one step: forward, plus two GEMM-sized products per layer backward (one for
    the first convolution, whose input gradient is not needed)."""
    conv1 = 2 * 6 * 28 * 28 * 25
    conv2 = 2 * 16 * 10 * 10 * 150
    dense = 2 * (400 * 120 + 120 * 84 + 84 * 10)
    return float(batch * (2 * conv1 + 3 * conv2 + 3 * dense))


def nbytes(batch: int, itemsize: int) -> float:
    """Compulsory traffic, roughly: every activation written forward, read and its
    gradient written backward; every parameter read, its gradient written, updated."""
    activations = (1 * 32 * 32 + 2 * 6 * 28 * 28 + 6 * 14 * 14 + 2 * 16 * 100 + 400) * batch
    activations += (120 + 84 + 10) * batch
    params = sum(math.prod(shape) for _, shape in LAYERS)
    return float((3 * activations + 4 * params) * itemsize)
