"""The backprop sensitivity recursion (BP1-BP4 of the course notes) and one full training
step.  Sensitivity cases: ``output_sensitivity`` (BP1), ``sensitivity`` (BP2, fused),
``dense_grads`` (BP3/BP4) and ``mlp_backward`` (the whole recursion) on MLP shapes; peers
NumPy and PyTorch written from the same formulas.  Train: the LeNet-5 step of
:mod:`fastnn.bench.lenet` against the same network in PyTorch (autograd)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import fastnn
from fastnn.bench import impl_numpy, lenet, shapes
from fastnn.bench.building import (
    Context,
    fastnn_impls,
    itemsize,
    peer_impls,
    randn,
    reference_impl,
)
from fastnn.bench.case import Case, Impl, fastnn_name

__all__ = ["cases", "mlp_case", "output_sensitivity_case", "train_case"]


def _mlp_forward(rng, shape: shapes.MlpShape, dtype) -> dict[str, Any]:
    """Weights and one forward pass of the MLP: inputs, pre-activations, a delta_out."""
    act = shape.activation
    x = randn(rng, (shape.n, shape.widths[0]), dtype)
    inputs, preacts, weights = [], [], []
    for fan_in, fan_out in zip(shape.widths[:-1], shape.widths[1:]):
        w = randn(rng, (fan_out, fan_in), dtype) / np.float32(math.sqrt(fan_in))
        u = (x @ w.T).astype(dtype)
        inputs.append(x)
        weights.append(w)
        preacts.append(u)
        x = impl_numpy.activation(act, u).astype(dtype)
    delta = randn(rng, (shape.n, shape.widths[-1]), dtype)
    return {"inputs": inputs, "preacts": preacts, "weights": weights, "delta": delta}


def mlp_case(ctx: Context, shape: shapes.MlpShape, op: str) -> Case:
    """``op`` ("sensitivity", "dense_grads" or "mlp_backward") on the MLP ``shape``;
    the single-layer ops take its first hidden layer."""
    act = shape.activation
    acts = [act] * (len(shape.widths) - 1)
    dtype = ctx.dtype
    n, w = shape.n, shape.widths

    def data(rng) -> dict[str, Any]:
        d = _mlp_forward(rng, shape, dtype)
        if op == "mlp_backward":
            return d
        delta_next = randn(rng, (n, w[2]), dtype)
        if op == "sensitivity":  # BP2 at layer 1: back through weights[1] to preacts[0]
            return {"delta": delta_next, "w": d["weights"][1], "u": d["preacts"][0]}
        return {"delta": d["preacts"][1], "x": d["inputs"][1]}  # dense_grads of layer 1

    def run_fastnn(d, backend, algo):
        if op == "sensitivity":
            return fastnn.sensitivity(d["delta"], d["w"], d["u"], act, backend=backend)
        if op == "dense_grads":
            return fastnn.dense_grads(d["delta"], d["x"], backend=backend)
        return fastnn.mlp_backward(
            d["inputs"], d["preacts"], d["weights"], d["delta"], acts, backend=backend
        )

    def peer(module):
        def run(d):
            if op == "sensitivity":
                return module.sensitivity(d["delta"], d["w"], d["u"], act)
            if op == "dense_grads":
                return d["delta"].T @ d["x"], d["delta"].sum(0)
            return module.mlp_backward(d["inputs"], d["preacts"], d["weights"], d["delta"], acts)

        return run

    torch_fn = None
    if ctx.env.has("torch"):
        from fastnn.bench import impl_torch

        torch_fn = peer(impl_torch)

    if op == "sensitivity":
        flops = 2.0 * n * w[2] * w[1] + 4.0 * n * w[1]
        elements = n * w[2] + w[2] * w[1] + 2 * n * w[1]
    elif op == "dense_grads":
        flops = 2.0 * n * w[2] * w[1]
        elements = n * w[2] + n * w[1] + w[2] * w[1] + w[2]
    else:
        pairs = list(zip(w[:-1], w[1:]))
        flops = sum(2.0 * n * a * b for a, b in pairs) * 2 - 2.0 * n * w[0] * w[1]
        elements = sum(2 * a * b + 2 * n * b + n * a for a, b in pairs)
    impls = fastnn_impls(ctx, op, run_fastnn, flops, reference_gflops=10.0)
    impls += peer_impls(ctx, numpy=peer(impl_numpy), torch=torch_fn)
    params = {"batch": n, "widths": w, "activation": act}
    nbytes = elements * itemsize(ctx)
    return Case("sensitivity", op, shape.name, params, flops, nbytes, data, tuple(impls))


def output_sensitivity_case(ctx: Context, rows_name: str, rows_shape) -> Case:
    """BP1 for a sigmoid output layer and the notes' summed squared error."""
    dtype = ctx.dtype
    op = "output_sensitivity"

    def data(rng) -> dict[str, Any]:
        u = randn(rng, rows_shape, dtype)
        y = impl_numpy.activation("sigmoid", u).astype(dtype)
        return {"y": y, "t": rng.uniform(0, 1, rows_shape).astype(dtype), "u": u}

    def run_fastnn(d, backend, algo):
        return fastnn.output_sensitivity(
            d["y"], d["t"], d["u"], "sigmoid", loss="mse", reduction="sum", backend=backend
        )

    def peer(derivative):
        return lambda d: -2 * derivative("sigmoid", d["u"]) * (d["t"] - d["y"])

    torch_fn = None
    if ctx.env.has("torch"):
        from fastnn.bench import impl_torch

        torch_fn = peer(impl_torch.derivative)

    size = rows_shape[0] * rows_shape[1]
    flops = 8.0 * size
    impls = fastnn_impls(ctx, op, run_fastnn, flops, reference_gflops=0.05)
    impls += peer_impls(ctx, numpy=peer(impl_numpy.derivative), torch=torch_fn)
    params = {"shape": rows_shape, "activation": "sigmoid", "loss": "mse", "reduction": "sum"}
    nbytes = 4 * size * itemsize(ctx)
    return Case("sensitivity", op, rows_name, params, flops, nbytes, data, tuple(impls), "bytes")


def train_case(ctx: Context, name: str, batch: int) -> Case:
    """One LeNet-5 training step: fastnn's default dispatch (CPU kernels where they
    exist), fastnn on the reference backend, and PyTorch."""
    impls = []
    if ctx.env.has(fastnn_name("cpu")):
        impls.append(Impl(fastnn_name("cpu"), lambda d: lenet.fastnn_step(d, "cpu")))
    # On a GPU the step runs on CuPy arrays for both backends: the SGD update is done in
    # place with ``-=``, which Numba device arrays do not support.
    for backend in ("cupy", "numba-cuda"):
        if ctx.env.has(fastnn_name(backend)) and ctx.env.has("cupy"):
            impls.append(
                Impl(fastnn_name(backend), lambda d, b=backend: lenet.fastnn_step(d, b), "cupy")
            )
    flops = lenet.flops(batch)
    impls.append(reference_impl(ctx, lambda d: lenet.fastnn_step(d, "reference"), flops))
    impls += peer_impls(ctx, torch=lenet.torch_step)

    def data(rng) -> dict[str, Any]:
        return lenet.init(rng, batch, ctx.dtype)

    params = {"batch": batch, "input": (batch, 1, 32, 32), "classes": 10}
    nbytes = lenet.nbytes(batch, itemsize(ctx))
    return Case(
        "train", "lenet5_step", name, params, flops, nbytes, data, tuple(impls), updates_inputs=True
    )


def cases(ctx: Context) -> list[Case]:
    """BP1, BP2, BP3/4, the whole recursion, then the training step."""
    found = []
    rows = shapes.pick(ctx.suite, shapes.ROWS, shapes.ROWS_QUICK, shapes.ROWS_TINY)
    found += [output_sensitivity_case(ctx, n, shape) for n, shape in rows[-1:]]
    for _, shape in shapes.pick(ctx.suite, shapes.MLP, shapes.MLP_QUICK, shapes.MLP_TINY):
        for op in ("sensitivity", "dense_grads", "mlp_backward"):
            found.append(mlp_case(ctx, shape, op))
    for name, batch in shapes.pick(ctx.suite, shapes.LENET, shapes.LENET_QUICK, shapes.LENET_TINY):
        found.append(train_case(ctx, name, batch))
    return found
