"""conv1d / conv2d for JAX: fastnn's kernels forward and backward, under jax.custom_vjp."""

from __future__ import annotations

import functools
from typing import Any

import jax

import fastnn
from fastnn import _args, _geometry
from fastnn.jax._common import arrays, check_floats, static
from fastnn.jax._kernel import Kernel
from fastnn.ops.conv import _algo

__all__ = ["conv1d", "conv2d"]

_FORWARD = {1: fastnn.conv1d, 2: fastnn.conv2d}
_BACKWARD = {1: fastnn.conv1d_backward, 2: fastnn.conv2d_backward}


@functools.lru_cache(maxsize=256)
def _conv(nd: int, has_bias: bool, stride, padding, dilation, groups, algo: str):
    """The custom_vjp function of one convolution configuration (arrays only)."""
    op = f"conv{nd}d"
    params = (stride, padding, dilation, groups)

    def geometry(x_shape, w_shape):
        return _geometry.conv_geometry(op, nd, x_shape, w_shape, *params)

    forward = Kernel(
        lambda x, w, *b: (_FORWARD[nd](x, w, b[0] if b else None, *params, algo=algo),),
        lambda xs, ws, *bs: [(geometry(xs, ws).output_shape, 0)],
        ("lead", "fixed", "fixed")[: 2 + has_bias],
        ("lead",),
    )
    mask = (True, True, has_bias)

    def backward_host(g, x, w):
        gi, gw, gb = _BACKWARD[nd](g, x, w, *params, algo=algo, output_mask=mask)
        return (gi, gw, gb) if has_bias else (gi, gw)

    backward = Kernel(
        backward_host,
        lambda gs, xs, ws: [(xs, 1), (ws, 2), ((ws[0],), 2)][: 2 + has_bias],
        ("lead", "lead", "fixed"),
        ("lead", "fixed", "fixed")[: 2 + has_bias],
    )

    @jax.custom_vjp
    def conv(x, w, *b):
        return forward(x, w, *b)[0]

    def conv_fwd(x, w, *b):
        return forward(x, w, *b)[0], (x, w)

    def conv_bwd(saved, g):
        return backward(g, *saved)

    conv.defvjp(conv_fwd, conv_bwd)
    return conv


def _apply(nd, input, weight, bias, stride, padding, dilation, groups, algo):
    op = f"conv{nd}d"
    x, w, b = arrays(input, weight, bias)
    check_floats(op, {"input": x, "weight": w, "bias": b})
    params = static((stride, padding, dilation, groups))
    geom = _geometry.conv_geometry(op, nd, tuple(x.shape), tuple(w.shape), *params)
    if b is not None:
        _args.check_shape(op, "bias", b, (geom.out_channels,), "C_out")
    algo = _algo(op, algo, geom)
    fn = _conv(nd, b is not None, *params, algo)
    return fn(x, w) if b is None else fn(x, w, b)


def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
) -> jax.Array:
    """:func:`fastnn.conv1d` on jax arrays: (N, C_in, L) input, (C_out, C_in // groups, kL)
    weight, optional (C_out,) bias; differentiable (custom_vjp), jit- and vmap-able."""
    return _apply(1, input, weight, bias, stride, padding, dilation, groups, algo)


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
) -> jax.Array:
    """:func:`fastnn.conv2d` on jax arrays: NCHW input, OIHW weight, optional (C_out,)
    bias; differentiable (custom_vjp), jit- and vmap-able.  Argument errors are fastnn's,
    raised at trace time."""
    return _apply(2, input, weight, bias, stride, padding, dilation, groups, algo)
