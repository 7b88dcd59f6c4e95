"""cross_entropy (logits, integer labels) and mse_loss for JAX, with torch's reductions.

The kernels compute the unreduced losses and their unscaled gradients (fastnn's
``reduction="none"``); the reduction over the batch is one small jax sum.  This keeps every
kernel's result batch-shaped, so that ``jax.vmap`` folds its mapped axis into the batch.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

import fastnn
from fastnn import _args
from fastnn.jax._common import arrays, check_floats
from fastnn.jax._kernel import Kernel, stand_in

__all__ = ["cross_entropy", "mse_loss"]


def _reduce(losses: jax.Array, reduction: str) -> jax.Array:
    if reduction == "sum":
        return jnp.sum(losses)
    if reduction == "mean":
        return jnp.mean(losses)
    return losses


def _scale(g: jax.Array, count: int, reduction: str) -> jax.Array:
    """The upstream gradient of each unreduced loss."""
    return g / count if reduction == "mean" else g


def _loss_vjp(forward: Kernel, backward: Kernel, reduction: str, input_grads: Any) -> Any:
    """The reduced loss ``forward(x, t)`` as a custom_vjp function; its backward maps the
    unscaled gradient ``backward(x, t)`` by ``input_grads(dx, x, g)`` to the (x, t) pair."""

    @jax.custom_vjp
    def loss(x, t):
        return _reduce(forward(x, t)[0], reduction)

    def loss_fwd(x, t):
        return loss(x, t), (x, t)

    def loss_bwd(saved, g):
        x, t = saved
        return input_grads(backward(x, t)[0], x, g)

    loss.defvjp(loss_fwd, loss_bwd)
    return loss


@functools.lru_cache(maxsize=8)
def _cross_entropy(reduction: str):
    forward = Kernel(
        lambda x, t: (fastnn.cross_entropy(x, t, "none"),),
        lambda xs, ts: [((xs[0],), 0)],
        ("lead", "lead"),
        ("lead",),
    )
    backward = Kernel(
        lambda x, t: (fastnn.cross_entropy_backward(x, t, "none"),),
        lambda xs, ts: [(xs, 0)],
        ("lead", "lead"),
        ("lead",),
    )

    def input_grads(dx, x, g):
        g = _scale(g, x.shape[0], reduction)
        return (dx * (g[:, None] if reduction == "none" else g)), None

    return _loss_vjp(forward, backward, reduction, input_grads)


def cross_entropy(logits: Any, labels: Any, reduction: str = "mean") -> jax.Array:
    """``-log_softmax(logits)[n, labels[n]]`` for (N, C) logits and (N,) integer labels,
    reduced by "mean" (over N), "sum" or "none".  Labels outside [0, C) raise an error when
    the kernel reads them (at run time: jax knows no values at trace time)."""
    op = "cross_entropy"
    x, t = arrays(logits, labels)
    check_floats(op, {"input": x})
    _args.check_ndim(op, "input", x, 2, "logits (N, C)")
    _args.index_array(op, "target", stand_in(t), "numpy")
    _args.check_shape(op, "target", t, (x.shape[0],), "one class index per row")
    return _cross_entropy(_args.reduction_name(op, reduction))(x, t)


@functools.lru_cache(maxsize=8)
def _mse(reduction: str):
    same = lambda *shapes: [(shapes[0], 0)]  # noqa: E731
    forward = Kernel(
        lambda x, t: (fastnn.mse_loss(x, t, "none"),), same, ("free", "free"), ("free",)
    )
    backward = Kernel(
        lambda x, t: (fastnn.mse_loss_backward(x, t, "none"),),
        same,
        ("free", "free"),
        ("free",),
    )

    def input_grads(dx, x, g):
        dx = dx * _scale(g, max(x.size, 1), reduction)
        return dx, -dx

    return _loss_vjp(forward, backward, reduction, input_grads)


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> jax.Array:
    """``(input - target) ** 2`` reduced by "mean" (over all elements), "sum" or "none";
    differentiable with respect to both arguments."""
    op = "mse_loss"
    x, t = arrays(input, target)
    check_floats(op, {"input": x, "target": t})
    _args.check_same_shape(op, "input", x, "target", t)
    return _mse(_args.reduction_name(op, reduction))(x, t)
