"""Pooling cases: max and average pooling, 1-D and 2-D, forward and backward.  These
ops move memory rather than compute: the report shows GB/s.  Peers: NumPy (a window view
reduced with max/mean; bincount to scatter the max gradient) and PyTorch."""

from __future__ import annotations

import math
from typing import Any

import fastnn
from fastnn.bench import impl_numpy, shapes
from fastnn.bench.building import Context, fastnn_impls, itemsize, peer_impls, randn
from fastnn.bench.case import Case

__all__ = ["cases", "pool_case"]

KINDS = ("max", "avg")


def _out(shape: shapes.PoolShape) -> tuple[int, ...]:
    return tuple((n + 2 * shape.pad - shape.kernel) // shape.stride + 1 for n in shape.size)


def pool_case(ctx: Context, shape: shapes.PoolShape, kind: str, backward: bool) -> Case:
    """``kind`` ("max" or "avg") pooling of ``shape``, forward or backward."""
    nd = len(shape.size)
    name = f"{kind}_pool{nd}d"
    op = f"{name}_backward" if backward else name
    k, s, p = shape.kernel, shape.stride, shape.pad
    x_shape = (shape.n, shape.c, *shape.size)
    y_shape = (shape.n, shape.c, *_out(shape))
    dtype = ctx.dtype
    forward = getattr(fastnn, name)
    backward_fn = getattr(fastnn, f"{name}_backward")

    def data(rng) -> dict[str, Any]:
        arrays = {"x": randn(rng, x_shape, dtype)}
        if backward:
            arrays["gy"] = randn(rng, y_shape, dtype)
            if kind == "max":
                # the argmax positions, from the ground truth (flat per plane, int64)
                _, indices = forward(arrays["x"], k, s, p, return_indices=True, backend="reference")
                arrays["indices"] = indices
        return arrays

    def run_fastnn(d, backend, algo):
        if not backward:
            return forward(d["x"], k, s, p, backend=backend)
        if kind == "max":
            return backward_fn(d["gy"], d["x"], k, s, p, indices=d["indices"], backend=backend)
        return backward_fn(d["gy"], d["x"], k, s, p, backend=backend)

    def run_numpy(d):
        if not backward:
            fn = impl_numpy.max_pool if kind == "max" else impl_numpy.avg_pool
            return fn(d["x"], k, s, p)
        if kind == "max":
            return impl_numpy.max_pool_backward(d["gy"], d["x"], d["indices"])
        return impl_numpy.avg_pool_backward(d["gy"], d["x"].shape, k, s, p)

    torch_fn = None
    if ctx.env.has("torch"):
        from fastnn.bench import impl_torch

        def torch_fn(d):
            if not backward:
                fn = impl_torch.max_pool if kind == "max" else impl_torch.avg_pool
                return fn(d["x"], k, s, p)
            if kind == "max":
                return impl_torch.max_pool_backward(d["gy"], d["x"], k, s, p, d["indices"])
            return impl_torch.avg_pool_backward(d["gy"], d["x"], k, s, p)

    x, y = math.prod(x_shape), math.prod(y_shape)
    flops = y * k**nd  # one compare or add per window element
    if backward:
        # gy and gx; max pooling also reads its indices (8 bytes each)
        nbytes = (y + x) * itemsize(ctx) + (y * 8 if kind == "max" else 0)
    else:
        nbytes = (x + y) * itemsize(ctx)
    impls = fastnn_impls(ctx, op, run_fastnn, flops, reference_gflops=0.5)
    jax_fn = None
    if ctx.env.has("jax"):
        from fastnn.bench import impl_jax

        def jax_fn(d):
            if backward:
                return impl_jax.pool_backward(kind, d["gy"], d["x"], k, s, p)
            return impl_jax.pool(kind, d["x"], k, s, p)

    impls += peer_impls(ctx, numpy=run_numpy, torch=torch_fn, jax=jax_fn)
    params = {"input": x_shape, "kernel": k, "stride": s, "padding": p}
    family = "pool"
    return Case(family, op, shape.name, params, flops, nbytes, data, tuple(impls), "bytes")


def cases(ctx: Context) -> list[Case]:
    """Max then average pooling, forward and backward, for the suite in ``ctx``."""
    found = []
    for _, shape in shapes.pick(ctx.suite, shapes.POOL, shapes.POOL_QUICK, shapes.POOL_TINY):
        for kind in KINDS:
            for backward in (False, True):
                found.append(pool_case(ctx, shape, kind, backward))
    return found
