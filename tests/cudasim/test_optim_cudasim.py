"""The numba-cuda optimizer kernels under the CUDA simulator, against the NumPy reference.

Run in their own process: ``NUMBA_ENABLE_CUDASIM=1 pytest tests/cudasim/test_optim_cudasim.py``
(``FASTNN_PTX_CHECK=1`` adds the compile check for a real GPU).
The simulator runs every GPU thread in Python, so the arrays are small (but span several
blocks, and end mid-block, to exercise the bounds check).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastnn.optim as optim

cuda = pytest.importorskip("numba.cuda")

pytestmark = pytest.mark.cudasim

N = 260  # two blocks of 256 threads, the second one mostly idle

UPDATES = {
    "sgd": (1, lambda p, g, s, be: optim.sgd_update(p, g, lr=0.1, weight_decay=0.1, backend=be)),
    "sgd-nesterov": (
        1,
        lambda p, g, s, be: optim.sgd_update(
            p, g, s[0], lr=0.1, momentum=0.9, nesterov=True, backend=be
        ),
    ),
    "sgd-dampening": (
        1,
        lambda p, g, s, be: optim.sgd_update(
            p, g, s[0], lr=0.1, momentum=0.8, dampening=0.2, maximize=True, backend=be
        ),
    ),
    "adagrad": (
        1,
        lambda p, g, s, be: optim.adagrad_update(
            p, g, s[0], lr=0.1, step=2, lr_decay=0.1, weight_decay=0.05, backend=be
        ),
    ),
    "rmsprop": (1, lambda p, g, s, be: optim.rmsprop_update(p, g, s[0], lr=0.01, backend=be)),
    "rmsprop-centered-momentum": (
        3,
        lambda p, g, s, be: optim.rmsprop_update(
            p, g, s[0], s[1], s[2], lr=0.01, momentum=0.9, centered=True, backend=be
        ),
    ),
    "adadelta": (
        2,
        lambda p, g, s, be: optim.adadelta_update(
            p, g, s[0], s[1], weight_decay=0.1, maximize=True, backend=be
        ),
    ),
    "adam": (
        2,
        lambda p, g, s, be: optim.adam_update(p, g, s[0], s[1], step=3, lr=0.01, backend=be),
    ),
    "adam-amsgrad-l2": (
        3,
        lambda p, g, s, be: optim.adam_update(
            p, g, s[0], s[1], s[2], step=2, amsgrad=True, weight_decay=0.1, backend=be
        ),
    ),
    "adamw": (
        2,
        lambda p, g, s, be: optim.adam_update(
            p, g, s[0], s[1], step=1, weight_decay=0.1, decoupled_weight_decay=True, backend=be
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(UPDATES))
def test_matches_reference(name, dtype):
    states_needed, update = UPDATES[name]
    rng = np.random.default_rng(len(name))
    param = rng.standard_normal(N).astype(dtype)
    states = [np.zeros(N, dtype) for _ in range(states_needed)]  # as an optimizer starts
    grads = [rng.standard_normal(N).astype(dtype) for _ in range(3)]

    want_param, want_states = param.copy(), [s.copy() for s in states]
    for grad in grads:
        update(want_param, grad, want_states, "reference")

    got_param = cuda.to_device(param)
    got_states = [cuda.to_device(s) for s in states]
    for grad in grads:
        update(got_param, cuda.to_device(grad), got_states, None)  # dispatched by array kind

    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got_param.copy_to_host(), want_param, rtol=tol, atol=tol)
    for got, want in zip(got_states, want_states):
        np.testing.assert_allclose(got.copy_to_host(), want, rtol=tol, atol=tol)


def test_non_contiguous_gradient_and_2d_parameters():
    rng = np.random.default_rng(0)
    param = rng.standard_normal((6, 7))
    grad = rng.standard_normal((7, 6)).T  # Fortran order
    exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)
    want = param.copy()
    optim.adam_update(want, grad, exp_avg.copy(), exp_avg_sq.copy(), step=1, backend="reference")
    got = cuda.to_device(param)
    optim.adam_update(
        got,
        cuda.to_device(np.asfortranarray(grad)),
        cuda.to_device(exp_avg),
        cuda.to_device(exp_avg_sq),
        step=1,
        backend="numba-cuda",
    )
    np.testing.assert_allclose(got.copy_to_host(), want, rtol=1e-12)


def test_public_ops_with_a_capped_grid(monkeypatch, dtype):
    """The public ops (hyperparameter dataclasses) on Numba arrays, launched with one block
    (MAX_BLOCKS forced to 1): the grid-stride loop covers the N > 256 elements."""
    import fastnn
    from fastnn._backends.numba_cuda import _launch

    monkeypatch.setattr(_launch, "MAX_BLOCKS", 1)
    rng = np.random.default_rng(5)
    hypers = {
        "adam_update": (fastnn.AdamHyper(lr=0.01, amsgrad=True, weight_decay=0.1), 3),
        "sgd_update": (fastnn.SGDHyper(lr=0.1, momentum=0.9, nesterov=True), 1),
        "rmsprop_update": (fastnn.RMSpropHyper(centered=True, momentum=0.5), 3),
        "adagrad_update": (fastnn.AdagradHyper(lr_decay=0.1, maximize=True), 1),
        "adadelta_update": (fastnn.AdadeltaHyper(weight_decay=0.1), 2),
    }
    for op, (hyper, count) in hypers.items():
        param = rng.standard_normal(N).astype(dtype)
        grad = rng.standard_normal(N).astype(dtype)
        states = [np.zeros(N, dtype) for _ in range(count)]
        extra = {"step": 2} if op in ("adam_update", "adagrad_update") else {}
        want = [param.copy(), *[s.copy() for s in states]]
        getattr(fastnn, op)(want[0], grad, *want[1:], hyper=hyper, backend="reference", **extra)
        got = [cuda.to_device(a) for a in (param, *states)]
        getattr(fastnn, op)(got[0], cuda.to_device(grad), *got[1:], hyper=hyper, **extra)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.copy_to_host(), w, rtol=tol, atol=tol, err_msg=op)


def test_device_mismatch_is_rejected():
    param = cuda.to_device(np.zeros(4))
    with pytest.raises(ValueError, match="same device"):
        optim.sgd_update(param, np.zeros(4), lr=0.1)


PTX_SCRIPT = """
import re, sys
from tests.cudasim.ptx_check import find_cuda_home, find_libdevice, _patch_numba_toolkit
_patch_numba_toolkit(find_libdevice(find_cuda_home()))
from numba import cuda, types
from fastnn.kernels.numba_cuda import optim as k
for dt in (types.float32, types.float64):
    a, b = types.Array(dt, 1, "C"), types.boolean
    signatures = {
        "sgd": (a, a, a, dt, dt, dt, dt, dt, b, b, b),
        "adagrad": (a, a, a, dt, dt, dt, dt),
        "rmsprop": (a, a, a, a, a, dt, dt, dt, dt, dt, dt, dt, b, b),
        "adadelta": (a, a, a, a, dt, dt, dt, dt, dt, dt),
        "adam": (a, a, a, a, a, dt, dt, dt, dt, dt, dt, dt, dt, dt, dt, b, b),
    }
    for name, signature in signatures.items():
        ptx, _ = cuda.compile_ptx(getattr(k, name).py_func, signature, cc=(8, 0))
        if dt == types.float32 and re.search(r"\\.f64", ptx):
            sys.exit(f"{name}: float64 arithmetic in the float32 kernel")
        print(dt, name, "compiled")
"""


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FASTNN_PTX_CHECK") != "1",
    reason="opt-in (NVVM compiles): set FASTNN_PTX_CHECK=1",
)
def test_kernels_compile_to_ptx_without_float64():
    """The simulator runs kernels as Python; compile them for sm_80 through the real CUDA
    target (libNVVM, no GPU needed), with the argument types the host code passes."""
    from tests.cudasim.ptx_check import find_cuda_home, run_on_cuda_target

    if find_cuda_home() is None:
        pytest.skip("no CUDA toolkit with libNVVM and libdevice (set CUDA_HOME)")
    result = run_on_cuda_target(["-c", PTX_SCRIPT], timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert result.stdout.count("compiled") == 10
