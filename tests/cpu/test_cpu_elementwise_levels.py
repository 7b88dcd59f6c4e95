"""The elementwise loops (kernels/cpu/elementwise_level.h: activations, softmax, losses,
batch norm, the sensitivity ops, the adaptive pools, a convolution's bias gradient) at
every instruction-set level this CPU runs -- the portable build, AVX2 and AVX-512,
whichever the "elementwise" family of fastnn._isa measures fastest -- against the
float64 reference, on sizes that leave partial vectors; forcing the family sets every
module's level and restores it."""

from __future__ import annotations

import importlib

import numpy as np

import fastnn
from fastnn import _isa
from tests.utils import assert_close


def _cases(rng, dtype):
    x = (3 * rng.standard_normal(1037)).astype(dtype)
    g = rng.standard_normal(1037).astype(dtype)
    rows = (3 * rng.standard_normal((37, 45))).astype(dtype)
    target = rng.integers(0, 45, size=37)
    maps = rng.standard_normal((3, 5, 7, 9)).astype(dtype)
    mean, var = np.zeros(5, dtype), np.ones(5, dtype)
    image = rng.standard_normal((2, 1, 25, 41)).astype(dtype)
    kernel = rng.standard_normal((3, 1, 3, 3)).astype(dtype)
    grad_maps = rng.standard_normal((2, 3, 23, 39)).astype(dtype)  # planes of 2 sum blocks
    return {
        "sigmoid": lambda b: fastnn.sigmoid(x, backend=b),
        "tanh": lambda b: fastnn.tanh(x, backend=b),
        "gelu": lambda b: fastnn.gelu(x, backend=b),
        "gelu tanh": lambda b: fastnn.gelu(x, "tanh", backend=b),
        "silu": lambda b: fastnn.silu(x, backend=b),
        "silu_backward": lambda b: fastnn.silu_backward(g, x, backend=b),
        "gelu_backward": lambda b: fastnn.gelu_backward(g, x, backend=b),
        "sigmoid backward": lambda b: fastnn.activation_backward(
            "sigmoid", g, fastnn.sigmoid(x, backend=b), backend=b
        ),
        "softmax": lambda b: fastnn.softmax(rows, backend=b),
        "log_softmax": lambda b: fastnn.log_softmax(rows, backend=b),
        "cross_entropy": lambda b: fastnn.cross_entropy(rows, target, backend=b),
        "batch_norm": lambda b: fastnn.batch_norm(
            maps, mean.copy(), var.copy(), training=True, backend=b
        ),
        "adaptive_avg_pool2d": lambda b: fastnn.adaptive_avg_pool2d(maps, (3, 4), backend=b),
        "conv2d bias gradient": lambda b: fastnn.conv2d_backward(
            grad_maps, image, kernel, output_mask=(False, False, True), backend=b
        )[2],
    }


def test_every_level_matches_the_reference(rng, dtype):
    cases = _cases(rng, dtype)
    want = {name: run("reference") for name, run in cases.items()}
    for level in _isa.supported():
        with _isa.forced("elementwise", level):
            for name, run in cases.items():
                assert_close(run("cpu"), want[name], dtype, what=f"{name} at {level}")


def test_forcing_the_family_sets_every_module():
    modules = [
        importlib.import_module(f"fastnn.kernels.cpu.{name}") for name in _isa.ELEMENTWISE_MODULES
    ]
    before = _isa.level_code("elementwise")
    assert all(m.elementwise_level() == before for m in modules)
    for level in _isa.supported():
        with _isa.forced("elementwise", level):
            assert all(m.elementwise_level() == _isa.LEVELS.index(level) for m in modules)
    assert all(m.elementwise_level() == before for m in modules)
