"""Activation cases: relu, sigmoid and tanh (forward and ``activation_backward``) on
arrays sized for L1, L2, L3 and DRAM, and softmax / log_softmax over rows of classes.
All are bandwidth-bound: the report shows GB/s.  Peers: NumPy and PyTorch."""

from __future__ import annotations

from typing import Any

import fastnn
from fastnn.bench import impl_numpy, shapes
from fastnn.bench.building import Context, fastnn_impls, itemsize, peer_impls, randn
from fastnn.bench.case import Case

__all__ = ["cases", "elementwise_case", "softmax_case"]

ACTIVATIONS = ("relu", "sigmoid", "tanh")
SOFTMAXES = ("softmax", "log_softmax")

#: Rough arithmetic per element (the report's roofline needs a number; bytes dominate).
_FLOPS_PER_ELEMENT = {"relu": 1, "sigmoid": 4, "tanh": 4, "softmax": 5, "log_softmax": 5}


def _array_shape(size: int) -> tuple[int, ...]:
    """A 2-d (rows, 1024) array when ``size`` allows, else 1-d."""
    return (size // 1024, 1024) if size % 1024 == 0 else (size,)


def elementwise_case(ctx: Context, name: str, size_name: str, size: int, backward: bool) -> Case:
    """``name`` (relu, sigmoid, tanh) on ``size`` elements, or ``activation_backward``."""
    shape = _array_shape(size)
    dtype = ctx.dtype
    op = "activation_backward" if backward else name

    def data(rng) -> dict[str, Any]:
        x = randn(rng, shape, dtype)
        if not backward:
            return {"x": x}
        y = impl_numpy.activation(name, x)  # the forward output the backward reads
        return {"gy": randn(rng, shape, dtype), "y": y.astype(dtype)}

    def run_fastnn(d, backend, algo):
        if backward:
            return fastnn.activation_backward(name, d["gy"], d["y"], backend=backend)
        return getattr(fastnn, name)(d["x"], backend=backend)

    def run_numpy(d):
        if backward:
            return impl_numpy.activation_backward(name, d["gy"], d["y"])
        return impl_numpy.activation(name, d["x"])

    torch_fn = _torch_activation(ctx, name, backward)

    arrays = 3 if backward else 2
    flops = size * _FLOPS_PER_ELEMENT[name]
    impls = fastnn_impls(ctx, op, run_fastnn, flops, reference_gflops=0.03)
    impls += peer_impls(ctx, numpy=run_numpy, torch=torch_fn)
    label = f"{name}/{size_name}" if backward else size_name
    params = {"shape": shape, "activation": name}
    nbytes = arrays * size * itemsize(ctx)
    return Case("activation", op, label, params, flops, nbytes, data, tuple(impls), "bytes")


def _torch_activation(ctx: Context, name: str, backward: bool):
    """The PyTorch peer of activation ``name`` (forward on d["x"], or backward on d["gy"]
    and d["y"]); None without torch."""
    if not ctx.env.has("torch"):
        return None
    from fastnn.bench import impl_torch

    def torch_fn(d):
        if backward:
            return impl_torch.activation_backward(name, d["gy"], d["y"])
        return impl_torch.activation(name, d["x"])

    return torch_fn


def softmax_case(ctx: Context, name: str, rows_name: str, rows_shape, backward: bool) -> Case:
    """softmax or log_softmax over the last axis of (rows, classes), or its backward."""
    dtype = ctx.dtype
    op = f"{name}_backward" if backward else name
    forward_numpy = getattr(impl_numpy, name)

    def data(rng) -> dict[str, Any]:
        x = randn(rng, rows_shape, dtype)
        if not backward:
            return {"x": x}
        return {"gy": randn(rng, rows_shape, dtype), "y": forward_numpy(x).astype(dtype)}

    def run_fastnn(d, backend, algo):
        if backward:
            return getattr(fastnn, op)(d["gy"], d["y"], backend=backend)
        return getattr(fastnn, name)(d["x"], backend=backend)

    def run_numpy(d):
        if backward:
            return getattr(impl_numpy, op)(d["gy"], d["y"])
        return forward_numpy(d["x"])

    torch_fn = _torch_activation(ctx, name, backward)

    size = rows_shape[0] * rows_shape[1]
    flops = size * _FLOPS_PER_ELEMENT[name]
    impls = fastnn_impls(ctx, op, run_fastnn, flops, reference_gflops=0.05)
    impls += peer_impls(ctx, numpy=run_numpy, torch=torch_fn)
    nbytes = (3 if backward else 2) * size * itemsize(ctx)
    params = {"shape": rows_shape, "dim": -1}
    return Case("activation", op, rows_name, params, flops, nbytes, data, tuple(impls), "bytes")


def cases(ctx: Context) -> list[Case]:
    """Elementwise activations, then softmax and log_softmax, for the suite in ``ctx``."""
    found = []
    sizes = shapes.pick(
        ctx.suite, shapes.ELEMENTWISE, shapes.ELEMENTWISE_QUICK, shapes.ELEMENTWISE_TINY
    )
    for backward in (False, True):
        for name in ACTIVATIONS:
            found += [elementwise_case(ctx, name, n, size, backward) for n, size in sizes]
    rows = shapes.pick(ctx.suite, shapes.ROWS, shapes.ROWS_QUICK, shapes.ROWS_TINY)
    for backward in (False, True):
        for name in SOFTMAXES:
            found += [softmax_case(ctx, name, n, shape, backward) for n, shape in rows]
    return found
