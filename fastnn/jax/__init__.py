"""fastnn as a kernel backend for JAX.

Every function here is a jax function (``jax.custom_vjp``) whose forward and backward run
fastnn's kernels; they work under ``jax.jit``, ``jax.grad`` (first order) and ``jax.vmap``,
take fastnn's layouts (NCL / NCHW inputs, OIHW weights) and raise fastnn's argument errors at
trace time.  How XLA reaches the kernels (the C handler, ``buffer_callback`` or
``pure_callback``) is :func:`set_route`'s business; on a GPU every op runs fastnn's CuPy
backend on XLA's device buffers and stream (:mod:`fastnn.jax._gpu`).  Importing this
module imports jax; ``import fastnn`` does not.
"""

from fastnn.jax._activation import (
    gelu,
    hardtanh,
    leaky_relu,
    relu,
    relu6,
    sigmoid,
    silu,
    tanh,
)
from fastnn.jax._conv import conv1d, conv2d
from fastnn.jax._dense import linear
from fastnn.jax._loss import cross_entropy, mse_loss
from fastnn.jax._norm import batch_norm
from fastnn.jax._pool import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from fastnn.jax._route import ROUTES, get_route, set_route
from fastnn.jax._softmax import log_softmax, softmax

__all__ = [
    "ROUTES",
    "avg_pool1d",
    "avg_pool2d",
    "batch_norm",
    "conv1d",
    "conv2d",
    "cross_entropy",
    "gelu",
    "get_route",
    "hardtanh",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool1d",
    "max_pool2d",
    "mse_loss",
    "relu",
    "relu6",
    "set_route",
    "sigmoid",
    "silu",
    "softmax",
    "tanh",
]
