"""max_pool1d/2d and avg_pool1d/2d for JAX: fastnn's kernels under jax.custom_vjp.

On the FFI route everything Python decides (the checks, the plane geometry, the thread
count) is settled at trace time and handed to the C handler as attributes: the call runs
pool_rows.h's kernels with no Python.  The backward pass finds each window's maximum
again in the input (no index array), as fastnn's own backward does without indices.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

import fastnn
from fastnn import _args, _geometry
from fastnn.jax._common import arrays, check_floats, static, threads_attr
from fastnn.jax._kernel import Kernel

__all__ = ["avg_pool1d", "avg_pool2d", "max_pool1d", "max_pool2d"]

_OPS = {
    ("max", 1): (fastnn.max_pool1d, fastnn.max_pool1d_backward),
    ("max", 2): (fastnn.max_pool2d, fastnn.max_pool2d_backward),
    ("avg", 1): (fastnn.avg_pool1d, fastnn.avg_pool1d_backward),
    ("avg", 2): (fastnn.avg_pool2d, fastnn.avg_pool2d_backward),
}


@functools.lru_cache(maxsize=256)
def _pool(kind: str, nd: int, params: tuple):
    """The custom_vjp function of one pooling configuration.  ``params`` are the op's
    positional arguments after ``kernel_size`` (already validated)."""
    op = f"{kind}_pool{nd}d"
    forward_op, backward_op = _OPS[kind, nd]
    kernel_size, stride, padding, third, ceil_mode = params
    dilation = third if kind == "max" else 1

    def out_shape(xs):
        geom = _geometry.pool_geometry(
            op, nd, xs, kernel_size, stride, padding, dilation, ceil_mode
        )
        return geom.output_shape

    def plane(xs) -> np.ndarray:
        geom = _geometry.pool_geometry(
            op, nd, xs, kernel_size, stride, padding, dilation, ceil_mode
        )
        return np.asarray(tuple(geom.plane), dtype=np.int64)

    forward = Kernel(
        lambda x: (forward_op(x, *_host_params(kind, params)),),
        lambda xs: [(out_shape(xs), 0)],
        ("lead",),
        ("lead",),
        ffi=_ffi_forward(kind, plane, third),
    )
    backward = Kernel(
        lambda g, x: (backward_op(g, x, *_host_params(kind, params)),),
        lambda gs, xs: [(xs, 1)],
        ("lead", "lead"),
        ("lead",),
        ffi=_ffi_backward(kind, op, plane, third),
    )

    @jax.custom_vjp
    def pool(x):
        return forward(x)[0]

    def pool_fwd(x):
        return forward(x)[0], x

    def pool_bwd(x, g):
        return backward(g, x)

    pool.defvjp(pool_fwd, pool_bwd)
    return pool


def _ffi_forward(kind: str, plane: Any, count_include_pad: Any):
    """``ffi(specs, x)`` for the Kernel: the C handler with the geometry as attributes."""

    def run(specs, x):
        attrs = {"geometry": plane(tuple(x.shape)), "threads": threads_attr()}
        if kind == "avg":
            attrs["count_include_pad"] = np.int32(bool(count_include_pad))
        return jax.ffi.ffi_call(f"fastnn_{kind}_pool", specs)(x, **attrs)

    return run


def _ffi_backward(kind: str, op: str, plane: Any, count_include_pad: Any):
    """``ffi(specs, g, x)``: the gradient by the C handler (max: maxima found again in x)."""

    def run(specs, g, x):
        geometry = plane(tuple(x.shape))
        attrs = {"geometry": geometry, "threads": threads_attr()}
        if kind == "avg":
            attrs["count_include_pad"] = np.int32(bool(count_include_pad))
            return jax.ffi.ffi_call("fastnn_avg_pool_backward", specs)(g, **attrs)
        check_flat_index(op, int(geometry[0]), int(geometry[1]))
        return jax.ffi.ffi_call("fastnn_max_pool_backward", specs)(g, x, **attrs)

    return run


def check_flat_index(op: str, h: int, w: int) -> None:
    """The argmax kernels keep flat indices in int32 (as fastnn's CPU backend checks)."""
    if h * w >= 2**31:
        raise ValueError(
            f"{op}: max pooling on the cpu backend finds maxima in planes of fewer than "
            f"2**31 elements, got a {h} x {w} plane"
        )


def _host_params(kind: str, params: tuple) -> tuple:
    """fastnn's positional pooling arguments after the input, in its order."""
    kernel_size, stride, padding, third, ceil_mode = params
    if kind == "max":  # (kernel_size, stride, padding, dilation, ceil_mode)
        return params
    return kernel_size, stride, padding, ceil_mode, third  # third: count_include_pad


def _apply(kind, nd, input, kernel_size, stride, padding, third, ceil_mode):
    op = f"{kind}_pool{nd}d"
    (x,) = arrays(input)
    check_floats(op, {"input": x})
    params = static((kernel_size, stride, padding, third, ceil_mode))
    dilation = params[3] if kind == "max" else 1
    _geometry.pool_geometry(op, nd, tuple(x.shape), *params[:3], dilation, params[4])
    if kind == "avg":
        _args.check_bool(op, "count_include_pad", third)
    return _pool(kind, nd, params)(x)


def _max_pool(nd: int, doc: str) -> Any:
    """``max_pool{nd}d``: one definition for 1-D and 2-D."""

    def max_pool(
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
    ) -> jax.Array:
        return _apply("max", nd, input, kernel_size, stride, padding, dilation, ceil_mode)

    max_pool.__name__ = max_pool.__qualname__ = f"max_pool{nd}d"
    max_pool.__doc__ = doc
    return max_pool


def _avg_pool(nd: int, doc: str) -> Any:
    """``avg_pool{nd}d``: one definition for 1-D and 2-D."""

    def avg_pool(
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> jax.Array:
        return _apply("avg", nd, input, kernel_size, stride, padding, count_include_pad, ceil_mode)

    avg_pool.__name__ = avg_pool.__qualname__ = f"avg_pool{nd}d"
    avg_pool.__doc__ = doc
    return avg_pool


max_pool1d = _max_pool(
    1,
    """:func:`fastnn.max_pool1d` on a jax (N, C, L) array; the gradient goes to the first
    maximum of each window, as in PyTorch.""",
)
max_pool2d = _max_pool(2, """:func:`fastnn.max_pool2d` on a jax (N, C, H, W) array.""")
avg_pool1d = _avg_pool(1, """:func:`fastnn.avg_pool1d` on a jax (N, C, L) array.""")
avg_pool2d = _avg_pool(2, """:func:`fastnn.avg_pool2d` on a jax (N, C, H, W) array.""")
