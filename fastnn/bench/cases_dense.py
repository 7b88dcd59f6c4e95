"""Dense cases: GEMM (DeepBench shapes, squares, VGG fc6) and the linear layer forward
(bias and activation fused) and backward.  Peers: NumPy (``@``, OpenBLAS), SciPy's BLAS
(GEMM only) and PyTorch."""

from __future__ import annotations

import math
from typing import Any

import fastnn
from fastnn.bench import impl_numpy, impl_scipy, shapes
from fastnn.bench.building import Context, fastnn_impls, itemsize, peer_impls, randn
from fastnn.bench.case import Case

__all__ = ["cases", "gemm_case", "linear_case"]

#: The reference backend's GEMM is float64 BLAS: fast for a reference.
_REFERENCE_GFLOPS = 20.0


def gemm_case(ctx: Context, shape: shapes.GemmShape) -> Case:
    """C = op(A) @ op(B) with ``shape.trans`` saying which operands are transposed."""
    m, n, k = shape.m, shape.n, shape.k
    trans_a, trans_b = shape.trans[0] == "T", shape.trans[1] == "T"
    a_shape = (k, m) if trans_a else (m, k)
    b_shape = (n, k) if trans_b else (k, n)
    dtype = ctx.dtype

    def data(rng) -> dict[str, Any]:
        return {"a": randn(rng, a_shape, dtype), "b": randn(rng, b_shape, dtype)}

    def run_fastnn(d, backend, algo):
        return fastnn.gemm(d["a"], d["b"], trans_a=trans_a, trans_b=trans_b, backend=backend)

    def run_numpy(d):
        a = d["a"].T if trans_a else d["a"]
        b = d["b"].T if trans_b else d["b"]
        return a @ b

    def run_scipy(d):
        return impl_scipy.gemm(d["a"], d["b"], trans_a, trans_b)

    flops = 2.0 * m * n * k
    nbytes = (m * k + k * n + m * n) * itemsize(ctx)
    impls = fastnn_impls(ctx, "gemm", run_fastnn, flops, reference_gflops=_REFERENCE_GFLOPS)
    # torch.Tensor.T and @ are spelled as in NumPy: the same function serves both.
    impls += peer_impls(ctx, numpy=run_numpy, torch=run_numpy, scipy=run_scipy)
    params = {"M": m, "N": n, "K": k, "trans": shape.trans}
    return Case("gemm", "gemm", shape.name, params, flops, nbytes, data, tuple(impls))


def linear_case(ctx: Context, shape: shapes.LinearShape, backward: bool) -> Case:
    """``activation(x @ w.T + b)`` in one call, or its backward (three gradients)."""
    rows, fan_in, fan_out, act = shape.n, shape.fan_in, shape.fan_out, shape.activation
    dtype = ctx.dtype

    def data(rng) -> dict[str, Any]:
        arrays = {
            "x": randn(rng, (rows, fan_in), dtype),
            "w": randn(rng, (fan_out, fan_in), dtype) / math.sqrt(fan_in),
            "b": randn(rng, (fan_out,), dtype),
        }
        if backward:
            arrays["gy"] = randn(rng, (rows, fan_out), dtype)
        return arrays

    def run_fastnn(d, backend, algo):
        if backward:
            return fastnn.linear_backward(d["gy"], d["x"], d["w"], backend=backend)
        return fastnn.linear(d["x"], d["w"], d["b"], activation=act, backend=backend)

    def run_numpy(d):
        if backward:
            return impl_numpy.linear_backward(d["gy"], d["x"], d["w"])
        return impl_numpy.linear(d["x"], d["w"], d["b"], act)

    torch_fn = None
    if ctx.env.has("torch"):
        import torch.nn.functional as F

        from fastnn.bench import impl_torch

        def torch_fn(d):
            if backward:
                return impl_numpy.linear_backward(d["gy"], d["x"], d["w"])
            return impl_torch.activation(act, F.linear(d["x"], d["w"], d["b"]))

    gemm_flops = 2.0 * rows * fan_in * fan_out
    x, w, y = rows * fan_in, fan_out * fan_in, rows * fan_out
    if backward:
        op, flops, elements = "linear_backward", 2 * gemm_flops, 2 * x + 2 * w + y + fan_out
    else:
        op, flops, elements = "linear", gemm_flops, x + w + y + fan_out
    impls = fastnn_impls(ctx, op, run_fastnn, flops, reference_gflops=_REFERENCE_GFLOPS)
    jax_fn = None
    if ctx.env.has("jax"):
        from fastnn.bench import impl_jax

        def jax_fn(d):
            if backward:
                return impl_jax.linear_backward(d["gy"], d["x"], d["w"])
            return impl_jax.linear(d["x"], d["w"], d["b"], act)

    impls += peer_impls(ctx, numpy=run_numpy, torch=torch_fn, jax=jax_fn)
    params = {"rows": rows, "in": fan_in, "out": fan_out, "activation": act}
    nbytes = elements * itemsize(ctx)
    return Case("linear", op, shape.name, params, flops, nbytes, data, tuple(impls))


def cases(ctx: Context) -> list[Case]:
    """GEMM, then linear forward and backward, for the suite in ``ctx``."""
    found = [
        gemm_case(ctx, s)
        for _, s in shapes.pick(ctx.suite, shapes.GEMM, shapes.GEMM_QUICK, shapes.GEMM_TINY)
    ]
    linear = shapes.pick(ctx.suite, shapes.LINEAR, shapes.LINEAR_QUICK, shapes.LINEAR_TINY)
    found += [linear_case(ctx, s, backward=False) for _, s in linear]
    found += [linear_case(ctx, s, backward=True) for _, s in linear]
    return found
