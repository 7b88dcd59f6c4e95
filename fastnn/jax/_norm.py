"""batch_norm for JAX: fastnn's statistics, normalisation and backward kernels under
jax.custom_vjp.  JAX arrays cannot change in place, so the running statistics come back
as new arrays instead of moving in place."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

import fastnn
from fastnn import _args
from fastnn._op_checks import (
    bn_channels,
    bn_eps,
    bn_momentum,
    check_per_channel,
    check_training_count,
    values_per_channel,
)
from fastnn.jax._common import arrays, check_floats
from fastnn.jax._kernel import Kernel

__all__ = ["batch_norm"]

ACTIVATIONS = (None, "relu", "relu6")


@functools.lru_cache(maxsize=32)
def _batch_norm(training: bool, eps: float, activation: str | None):
    """The custom_vjp function ``(x, w, b, mean, invstd) -> (y, mean, invstd)`` (mean and
    invstd are inputs in eval mode, ignored in training, where they are computed)."""
    stats = Kernel(
        lambda x: fastnn.batch_norm_stats(x, eps),
        lambda xs: [((xs[1],), 0), ((xs[1],), 0)],
        ("fixed",),
        ("fixed", "fixed"),
    )
    elemt = Kernel(
        lambda x, m, s, w, b: (fastnn.batch_norm_elemt(x, m, s, w, b, activation=activation),),
        lambda xs, *rest: [(xs, 0)],
        ("lead", "fixed", "fixed", "fixed", "fixed"),
        ("lead",),
    )

    def backward_host(g, x, w, m, s, y):
        return fastnn.batch_norm_backward(
            g, x, w, m, s, training=training, output=y, activation=activation
        )

    backward = Kernel(
        backward_host,
        lambda gs, xs, ws, *rest: [(xs, 1), (ws, 2), (ws, 2)],
        ("fixed",) * 6,
        ("fixed", "fixed", "fixed"),
    )

    def forward(x, w, b, mean, invstd):
        if training:
            mean, invstd = stats(x)
        return elemt(x, mean, invstd, w, b)[0], mean, invstd

    @jax.custom_vjp
    def norm(x, w, b, mean, invstd):
        return forward(x, w, b, mean, invstd)

    def norm_fwd(x, w, b, mean, invstd):
        y, mean, invstd = forward(x, w, b, mean, invstd)
        return (y, mean, invstd), (x, w, mean, invstd, y)

    def norm_bwd(saved, cotangents):
        x, w, mean, invstd, y = saved
        gi, gw, gb = backward(cotangents[0], x, w, mean, invstd, y)
        return gi, gw, gb, jnp.zeros_like(mean), jnp.zeros_like(invstd)

    norm.defvjp(norm_fwd, norm_bwd)
    return norm


def batch_norm(
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    activation: str | None = None,
) -> tuple[jax.Array, jax.Array | None, jax.Array | None]:
    """:func:`fastnn.batch_norm` on jax arrays, returning ``(output, running_mean,
    running_var)``: in training the batch statistics normalise and the running ones (when
    given) come back moved by ``momentum`` (the variance unbiased); in eval the running
    statistics normalise and come back unchanged.  Gradients flow to ``input``, ``weight``
    and ``bias`` (the statistics are not differentiated through: training uses the
    batch's, eval treats the running ones as constants).  ``activation``: None, "relu" or
    "relu6" in the same pass.  ``momentum=None`` (a cumulative average) needs a batch
    counter that a pure function does not keep: ValueError."""
    op = "batch_norm"
    x, rm, rv, w, b = arrays(input, running_mean, running_var, weight, bias)
    named = {"input": x, "running_mean": rm, "running_var": rv, "weight": w, "bias": b}
    check_floats(op, named)
    channels = bn_channels(op, x)
    check_per_channel(op, channels, {k: v for k, v in named.items() if k != "input"})
    eps = bn_eps(op, eps)
    training = _args.check_bool(op, "training", training)
    act = _args.activation_name(op, activation, ACTIVATIONS)
    m = bn_momentum(op, momentum)
    if m is None:
        raise ValueError(f"{op}: momentum=None (cumulative average) has no fastnn.jax form")
    if (rm is None) != (rv is None):
        raise ValueError(f"{op}: running_mean and running_var are given together or not at all")
    if not training and rm is None:
        raise ValueError(f"{op}: eval mode (training=False) needs running_mean and running_var")
    if training:
        check_training_count(op, x)
    w = jnp.ones(channels, x.dtype) if w is None else w
    b = jnp.zeros(channels, x.dtype) if b is None else b
    if training:
        mean0 = invstd0 = jnp.zeros(channels, x.dtype)  # unused: the kernels compute them
    else:
        mean0, invstd0 = rm, jax.lax.rsqrt(rv + jnp.asarray(eps, x.dtype))
    y, mean, invstd = _batch_norm(training, eps, act)(x, w, b, mean0, invstd0)
    if not training or rm is None:
        return y, rm, rv
    count = values_per_channel(x)
    var = (1.0 / (invstd * invstd) - eps) * (count / max(count - 1, 1))
    return (
        y,
        (1 - m) * rm + m * jax.lax.stop_gradient(mean),
        ((1 - m) * rv + m * jax.lax.stop_gradient(var)),
    )
