"""The sensitivity recursion BP1-BP4 on the numba-cuda backend (simulator), against the
reference backend."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.cudasim.devices import check, dev
from tests.utils import ACTIVATIONS

pytestmark = [pytest.mark.cudasim, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

F32 = np.float32


@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy"])
def test_output_sensitivity_pointwise(rng, loss, reduction):
    u = rng.standard_normal((4, 3)).astype(F32)
    t = rng.uniform(0, 1, u.shape).astype(F32)
    for activation in ACTIVATIONS:
        y = rng.uniform(0.05, 0.95, u.shape).astype(F32)
        args = (y, t, u, activation, loss, reduction)
        want = fastnn.output_sensitivity(*args, backend="reference")
        got = fastnn.output_sensitivity(dev(y), dev(t), dev(u), activation, loss, reduction)
        check(got, want, f"{loss} {activation} {reduction}")


@pytest.mark.parametrize("activation", [None, "softmax"])
def test_output_sensitivity_cross_entropy(rng, activation):
    u = rng.standard_normal((5, 4)).astype(F32)
    y = fastnn.softmax(u, backend="reference") if activation else u
    t = rng.integers(0, 4, 5)
    for reduction in ("mean", "sum"):
        want = fastnn.output_sensitivity(y, t, u, activation, "cross_entropy", reduction,
                                         backend="reference")  # fmt: skip
        got = fastnn.output_sensitivity(dev(y), dev(t), dev(u), activation, "cross_entropy",
                                        reduction)  # fmt: skip
        check(got, want, f"{activation} {reduction}")


def test_sensitivity(rng, activation):
    delta_next = rng.standard_normal((6, 5)).astype(F32)
    w_next = rng.standard_normal((5, 7)).astype(F32)
    u = rng.standard_normal((6, 7)).astype(F32)
    want = fastnn.sensitivity(delta_next, w_next, u, activation, backend="reference")
    check(fastnn.sensitivity(dev(delta_next), dev(w_next), dev(u), activation), want)


def test_dense_grads(rng):
    delta = rng.standard_normal((6, 5)).astype(F32)
    x = rng.standard_normal((6, 3)).astype(F32)
    want = fastnn.dense_grads(delta, x, backend="reference")
    check(fastnn.dense_grads(dev(delta), dev(x)), want, "dense_grads")
    none = (np.zeros((0, 5), F32), np.zeros((0, 3), F32))
    want = fastnn.dense_grads(*none, backend="reference")
    check(fastnn.dense_grads(*(dev(a) for a in none)), want, "no rows")


def test_mlp_backward(rng):
    sizes, rows = [6, 5, 4, 3], 4
    weights = [rng.standard_normal((sizes[i + 1], sizes[i])) for i in range(3)]
    inputs = [rng.standard_normal((rows, sizes[i])) for i in range(3)]
    preacts = [rng.standard_normal((rows, sizes[i + 1])) for i in range(3)]
    delta_out = rng.standard_normal((rows, sizes[-1]))
    activations = ["tanh", "relu", None]
    for dtype in (F32, np.float64):
        host = [[a.astype(dtype) for a in seq] for seq in (inputs, preacts, weights)]
        d = delta_out.astype(dtype)
        want = fastnn.mlp_backward(*host, d, activations, backend="reference")
        device = [[dev(a) for a in seq] for seq in host]
        got = fastnn.mlp_backward(*device, dev(d), activations)
        assert isinstance(got, list) and len(got) == 3
        check(got, want, f"mlp {np.dtype(dtype)}")
