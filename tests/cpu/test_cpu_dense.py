"""The CPU dense layer: linear with each fused activation and linear_backward (every
output mask), against the float64 reference backend and PyTorch (F.linear, autograd), on
odd sizes, 0/1/N rows, 1-d and 3-d inputs, both GEMM engines and every memory layout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from tests.utils import (
    ACTIVATIONS,
    FLOAT_DTYPES,
    assert_close,
    assert_fresh_outputs,
    import_torch,
    layouts,
    requires_torch,
    torch_grads,
)

#: (input shape, out_features)
SHAPES = [((0, 5), 3), ((1, 7), 1), ((13, 29), 17), ((64, 300), 70), ((3, 4, 9), 5), ((6,), 4)]


def _layer(rng, shape, out_features, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    w = (rng.standard_normal((out_features, shape[-1])) / np.sqrt(shape[-1])).astype(dtype)
    b = rng.standard_normal(out_features).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_linear_matches_reference(shape, dtype, gemm_engine, rng):
    x, w, b = _layer(rng, *shape, dtype)
    for activation, bias in itertools.product(ACTIVATIONS, (b, None)):
        got = fastnn.linear(x, w, bias, activation=activation)
        want = fastnn.linear(x, w, bias, activation=activation, backend="reference")
        assert got.dtype == dtype and got.shape == want.shape
        assert_close(got, want, dtype, what=f"{activation}, bias={bias is not None}")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_linear_backward_matches_reference_every_mask(shape, dtype, gemm_engine, rng):
    x, w, _ = _layer(rng, *shape, dtype)
    gy = rng.standard_normal((*shape[0][:-1], shape[1])).astype(dtype)
    want = fastnn.linear_backward(gy, x, w, backend="reference")
    for mask in itertools.product((True, False), repeat=3):
        got = fastnn.linear_backward(gy, x, w, output_mask=mask)
        for g, ref, wanted in zip(got, want, mask):
            assert (g is None) == (not wanted)
            if wanted:
                assert g.dtype == dtype
                assert_close(g, ref, dtype, what=str(mask))


@pytest.mark.parametrize("loops", [True, False], ids=["loops", "gemms"])
def test_small_linear_either_way(loops, dtype, monkeypatch, rng):
    """Small layers (m * n * k up to the loops' limit) run their backward in one call of
    plain loops or as GEMMs, whichever measures faster: both give the reference's
    gradients, from any memory layout, for every mask, including the limit itself."""
    from fastnn._backends.cpu import _small_dense

    monkeypatch.setattr(_small_dense, "use_loops", lambda *args: loops)
    limit = _small_dense.LOOPS_LIMIT
    for trial in range(12):  # the forward: every activation, with and without a bias
        n, k = (int(v) for v in rng.integers(1, 40, size=2))
        m = int(rng.integers(0, limit // (n * k) + 1)) if trial else limit // (n * k)
        x0, w0, b0 = _layer(rng, (m, k), n, dtype)
        for (lx, x), (lw, w), activation in zip(layouts(x0), layouts(w0), ACTIVATIONS * 4):
            for bias in (b0, None):
                got = fastnn.linear(x, w, bias, activation=activation)
                want = fastnn.linear(x0, w0, bias, activation=activation, backend="reference")
                assert got.dtype == dtype and got.shape == want.shape
                assert_close(got, want, dtype, what=f"{m}x{n}x{k} {activation} x {lx}, w {lw}")
    for trial in range(30):
        n, k = (int(v) for v in rng.integers(1, 40, size=2))
        m = int(rng.integers(0, limit // (n * k) + 1)) if trial else limit // (n * k)
        x0, w0, _ = _layer(rng, (m, k), n, dtype)
        gy0 = rng.standard_normal((m, n)).astype(dtype)
        want = fastnn.linear_backward(gy0, x0, w0, backend="reference")
        for (lx, x), (lw, w), (_, gy) in zip(layouts(x0), layouts(w0), layouts(gy0)):
            mask = tuple(bool(v) for v in rng.integers(0, 2, size=3))
            got = fastnn.linear_backward(gy, x, w, output_mask=mask)
            for g, ref, wanted in zip(got, want, mask):
                assert (g is None) == (not wanted)
                if wanted:
                    assert g.dtype == dtype and g.shape == ref.shape
                    assert_close(g, ref, dtype, what=f"{m}x{n}x{k} x {lx}, w {lw}")


def test_small_linear_choice_is_measured_and_remembered(monkeypatch):
    """The loops-or-GEMMs choice: the prior while autotuning is off; one timing per shape
    class (through the autotune cache) otherwise, remembered."""
    from fastnn import _autotune
    from fastnn._backends.cpu import _small_dense

    calls = []

    def timed():
        return (lambda: calls.append("loops"), lambda: calls.append("gemms"))

    prior = _small_dense.LOOPS_PRIOR
    monkeypatch.setattr(_autotune, "autotune_enabled", lambda: False)
    op = "linear-backward"
    assert _small_dense.use_loops(op, 1, 1, prior, (True,) * 3, "f", timed) is True
    assert _small_dense.use_loops(op, 2, 1, prior, (True,) * 3, "f", timed) is False
    assert calls == []
    monkeypatch.setattr(_autotune, "autotune_enabled", lambda: True)
    monkeypatch.setattr(_small_dense._threads, "_free_cpus", lambda: 64)
    chosen = []
    monkeypatch.setattr(
        _autotune,
        "choose",
        lambda key, candidates, repeats, remeasure: remeasure and chosen.append(key) or "gemms",
    )
    args = (op, 3, 5, 7, (True, False, True), "d")
    assert _small_dense.use_loops(*args, timed) is False
    assert _small_dense.use_loops(*args, timed) is False
    assert len(chosen) == 1 and chosen[0].startswith("linear-backward-loops|3|5|7|101|d|")
    assert _small_dense.use_loops("linear", 3, 5, 7, (2, True), "d", timed) is False
    assert len(chosen) == 2 and chosen[1].startswith("linear-loops|3|5|7|21|d|")
    # on a busy machine: the remembered choice, else the prior, and nothing timed
    monkeypatch.setattr(_small_dense._threads, "_free_cpus", lambda: 0)
    monkeypatch.setattr(_small_dense, "_memo", {})
    monkeypatch.setattr(_autotune, "lookup", lambda key: "loops" if "|9|" in key else None)
    assert _small_dense.use_loops(op, 9, 9, 9, (True,) * 3, "d", timed) is True
    assert _small_dense.use_loops(op, 2, 1, prior, (True,) * 3, "d", timed) is False
    assert len(chosen) == 2 and calls == []


def test_linear_every_memory_layout(dtype, gemm_engine, rng):
    x0, w0, b0 = _layer(rng, (9, 21), 11, dtype)
    gy0 = rng.standard_normal((9, 11)).astype(dtype)
    want = fastnn.linear(x0, w0, b0, activation="tanh", backend="reference")
    want_grads = fastnn.linear_backward(gy0, x0, w0, backend="reference")
    for (lx, x), (lw, w), (_, b), (_, gy) in zip(
        layouts(x0), list(layouts(w0))[::-1], layouts(b0), list(layouts(gy0))[1:] + [("c", gy0)]
    ):
        before = [v.copy() for v in (x, w, b, gy)]
        got = fastnn.linear(x, w, b, activation="tanh")
        assert_close(got, want, dtype, what=f"x {lx}, w {lw}")
        grads = fastnn.linear_backward(gy, x, w)
        for g, ref in zip(grads, want_grads):
            assert_close(g, ref, dtype, what=f"x {lx}, w {lw}")
        assert_fresh_outputs([got, *grads], [x, w, b, gy])
        for v, v0 in zip((x, w, b, gy), before):
            np.testing.assert_array_equal(v, v0)


@requires_torch
def test_linear_and_backward_match_torch(activation, rng):
    torch = import_torch()
    F = torch.nn.functional
    acts = {None: lambda t: t, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
    x, w, b = _layer(rng, (33, 47), 19, np.float64)
    gy = rng.standard_normal((33, 19))
    want, (gx, gw, gb) = torch_grads(
        lambda x_, w_, b_: F.linear(x_, w_, b_), x, w, b, grad_output=gy
    )
    y_want = acts[activation](torch.tensor(want)).numpy()
    for dtype in FLOAT_DTYPES:
        cast = [v.astype(dtype) for v in (x, w, b, gy)]
        assert_close(fastnn.linear(*cast[:3], activation=activation), y_want, dtype)
        got = fastnn.linear_backward(cast[3], cast[0], cast[1])
        for g, ref in zip(got, (gx, gw, gb)):
            assert_close(g, ref, dtype)
