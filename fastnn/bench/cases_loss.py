"""Loss cases: mse_loss, binary_cross_entropy and cross_entropy (mean reduction),
forward and backward, over rows of classes.  Peers: NumPy and PyTorch."""

from __future__ import annotations

from typing import Any

import fastnn
from fastnn.bench import impl_numpy, shapes
from fastnn.bench.building import Context, fastnn_impls, itemsize, peer_impls, randn
from fastnn.bench.case import Case

__all__ = ["LOSSES", "cases", "loss_case"]

LOSSES = ("mse_loss", "binary_cross_entropy", "cross_entropy")


def _data(name: str, rows_shape: tuple[int, int], dtype, rng) -> dict[str, Any]:
    rows, classes = rows_shape
    if name == "cross_entropy":
        return {"x": randn(rng, rows_shape, dtype), "t": rng.integers(0, classes, rows)}
    if name == "binary_cross_entropy":  # probabilities in (0, 1)
        x = rng.uniform(0.02, 0.98, rows_shape).astype(dtype)
        return {"x": x, "t": rng.uniform(0, 1, rows_shape).astype(dtype)}
    return {"x": randn(rng, rows_shape, dtype), "t": randn(rng, rows_shape, dtype)}


def loss_case(ctx: Context, name: str, rows_name: str, rows_shape, backward: bool) -> Case:
    """Loss ``name`` on (rows, classes), or its gradient with respect to the input."""
    dtype = ctx.dtype
    op = f"{name}_backward" if backward else name
    fastnn_fn = getattr(fastnn, op)
    numpy_fn = getattr(impl_numpy, op)

    def data(rng) -> dict[str, Any]:
        return _data(name, rows_shape, dtype, rng)

    def run_fastnn(d, backend, algo):
        return fastnn_fn(d["x"], d["t"], backend=backend)

    def run_numpy(d):
        return numpy_fn(d["x"], d["t"])

    torch_fn = None
    if ctx.env.has("torch"):
        from fastnn.bench import impl_torch

        def torch_fn(d):
            if backward:
                return impl_torch.loss_backward(name, d["x"], d["t"])
            return impl_torch.loss(name, d["x"], d["t"])

    size = rows_shape[0] * rows_shape[1]
    target_bytes = rows_shape[0] * 8 if name == "cross_entropy" else size * itemsize(ctx)
    nbytes = size * itemsize(ctx) * (2 if backward else 1) + target_bytes
    flops = 4 * size
    impls = fastnn_impls(ctx, op, run_fastnn, flops, reference_gflops=0.2)
    impls += peer_impls(ctx, numpy=run_numpy, torch=torch_fn)
    params = {"shape": rows_shape, "reduction": "mean"}
    return Case("loss", op, rows_name, params, flops, nbytes, data, tuple(impls), "bytes")


def cases(ctx: Context) -> list[Case]:
    """Every loss, forward then backward, for the suite in ``ctx`` (the quick suite keeps
    only the largest rows shape)."""
    rows = shapes.pick(ctx.suite, shapes.ROWS, shapes.ROWS_QUICK, shapes.ROWS_TINY)
    if ctx.suite == "quick":
        rows = rows[-1:]
    return [
        loss_case(ctx, name, n, shape, backward)
        for backward in (False, True)
        for name in LOSSES
        for n, shape in rows
    ]
