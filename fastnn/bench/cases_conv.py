"""Convolution cases: conv1d and conv2d, forward and backward, on the shapes of
docs/BENCHMARKS.md.  fastnn runs its default path (``fastnn[cpu]``: ``algo="auto"``, what a
user gets) and each of its algorithms ("im2col", "direct", and "winograd" on 3x3 stride-1
layers); the peers are NumPy (im2col + OpenBLAS), SciPy (oaconvolve, few input channels only) and
PyTorch (oneDNN)."""

from __future__ import annotations

import math
from typing import Any

import fastnn
from fastnn.bench import impl_numpy, impl_scipy, shapes
from fastnn.bench.building import Context, fastnn_impls, itemsize, peer_impls, randn
from fastnn.bench.case import Case, SkipImpl

__all__ = ["ALGOS", "cases"]

#: None: the default path, ``algo="auto"`` (``fastnn[cpu]``); then each algorithm forced.
ALGOS = (None, "im2col", "direct", "winograd")

#: The largest im2col matrix the NumPy peer may build, in bytes.
MAX_IM2COL_BYTES = 1536 * 2**20

#: The SciPy peer (one FFT convolution per input and output channel) runs on layers with
#: at most this many input channels.
SCIPY_MAX_CHANNELS = 8


def _tuple(value: int | tuple[int, ...], nd: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple) else (value,) * nd


def _out_size(shape: shapes.ConvShape) -> tuple[int, ...]:
    nd = shape.nd
    stride, pad, dil = (_tuple(v, nd) for v in (shape.stride, shape.pad, shape.dilation))
    return tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(shape.size, shape.kernel, stride, pad, dil)
    )


def conv_case(ctx: Context, shape: shapes.ConvShape, backward: bool) -> Case:
    """One convolution layer, forward or backward (all three gradients)."""
    nd = shape.nd
    family = f"conv{nd}d"
    op = f"{family}_backward" if backward else family
    stride, pad, dil = (_tuple(v, nd) for v in (shape.stride, shape.pad, shape.dilation))
    out = _out_size(shape)
    x_shape = (shape.n, shape.c, *shape.size)
    w_shape = (shape.k, shape.c, *shape.kernel)
    y_shape = (shape.n, shape.k, *out)
    forward_flops = 2 * shape.n * shape.k * shape.c * math.prod(shape.kernel) * math.prod(out)
    x, w, y = (math.prod(s) for s in (x_shape, w_shape, y_shape))
    if backward:
        flops, elements = 2 * forward_flops, 2 * x + 2 * w + y + shape.k
    else:
        flops, elements = forward_flops, x + w + y + shape.k
    dtype = ctx.dtype

    def data(rng) -> dict[str, Any]:
        arrays = {
            "x": randn(rng, x_shape, dtype),
            "w": randn(rng, w_shape, dtype) / math.sqrt(shape.c * math.prod(shape.kernel)),
            "b": randn(rng, (shape.k,), dtype),
        }
        if backward:
            arrays["gy"] = randn(rng, y_shape, dtype)
        return arrays

    forward_fn = fastnn.conv1d if nd == 1 else fastnn.conv2d
    backward_fn = fastnn.conv1d_backward if nd == 1 else fastnn.conv2d_backward

    winograd_why = None
    if nd != 2 or shape.kernel != (3, 3) or stride != (1, 1) or dil != (1, 1):
        winograd_why = "Winograd runs 2-D 3x3 convolutions with stride 1 and dilation 1 only"

    def run_fastnn(d, backend, algo):
        if algo == "winograd":
            if winograd_why is not None:
                raise SkipImpl(winograd_why)
            if backend != "cpu":
                raise SkipImpl("Winograd is implemented on the cpu backend only")
        if backward:
            return backward_fn(
                d["gy"], d["x"], d["w"], stride, pad, dil, backend=backend, algo=algo or "auto"
            )
        return forward_fn(
            d["x"], d["w"], d["b"], stride, pad, dil, backend=backend, algo=algo or "auto"
        )

    im2col = impl_numpy.im2col_bytes(x_shape, w_shape, stride, pad, dil, itemsize(ctx))

    def peer_conv(impl):  # numpy's, torch's and jax's conv / conv_backward
        def run(d):
            if backward:
                return impl.conv_backward(d["gy"], d["x"], d["w"], stride, pad, dil)
            return impl.conv(d["x"], d["w"], d["b"], stride, pad, dil)

        return run

    run_numpy_conv = peer_conv(impl_numpy)

    def run_numpy(d):
        if im2col > MAX_IM2COL_BYTES:
            raise SkipImpl(f"the im2col matrix would take {im2col / 2**30:.1f} GiB")
        return run_numpy_conv(d)

    scipy_fn = None
    scipy_bytes = impl_scipy.conv_bytes(x_shape, w_shape, pad, dil, itemsize(ctx))
    if not backward and all(d == 1 for d in dil):

        def scipy_fn(d):
            if shape.c > SCIPY_MAX_CHANNELS:
                raise SkipImpl(
                    f"oaconvolve makes one FFT convolution per input and output channel: "
                    f"used up to {SCIPY_MAX_CHANNELS} input channels, this layer has {shape.c}"
                )
            if scipy_bytes > impl_scipy.MAX_INTERMEDIATE_BYTES:
                raise SkipImpl(
                    f"oaconvolve would need a {scipy_bytes / 2**30:.1f} GiB (N, K, C, ...) "
                    "intermediate (too many input channels)"
                )
            return impl_scipy.conv(d["x"], d["w"], d["b"], stride, pad, dil)

    torch_fn = jax_fn = None
    if ctx.env.has("torch"):
        from fastnn.bench import impl_torch

        torch_fn = peer_conv(impl_torch)
    if ctx.env.has("jax"):
        from fastnn.bench import impl_jax

        jax_fn = peer_conv(impl_jax)

    impls = fastnn_impls(ctx, op, run_fastnn, flops, ALGOS) + peer_impls(
        ctx, numpy=run_numpy, torch=torch_fn, scipy=scipy_fn, jax=jax_fn
    )
    params = {
        "input": x_shape,
        "weight": w_shape,
        "stride": stride,
        "padding": pad,
        "dilation": dil,
    }
    return Case(family, op, shape.name, params, flops, elements * itemsize(ctx), data, tuple(impls))


def cases(ctx: Context) -> list[Case]:
    """conv2d and conv1d, forward then backward, for the suite in ``ctx``."""
    found = []
    tables = (
        (shapes.CONV2D, shapes.CONV2D_QUICK, shapes.CONV2D_BACKWARD_QUICK, shapes.CONV2D_TINY),
        (shapes.CONV1D, shapes.CONV1D_QUICK, shapes.CONV1D_BACKWARD_QUICK, shapes.CONV1D_TINY),
    )
    for full, quick, quick_backward, tiny in tables:
        for _, shape in shapes.pick(ctx.suite, full, quick, tiny):
            found.append(conv_case(ctx, shape, backward=False))
        for _, shape in shapes.pick(ctx.suite, full, quick_backward, tiny):
            found.append(conv_case(ctx, shape, backward=True))
    return found
