"""The cupy optimizer updates (fastnn/_backends/cupy/optim.py, kernels/cuda/optim.cu) on
the CPU, through the public ops, against the float64 NumPy reference.

CuPy cannot run here (no GPU); the stand-in of tests/gpu/test_cupy_backend_emulator.py
compiles the real CUDA source with g++ and runs it with the real host code, checking
every kernel argument against the kernel's C signature (scalar types, contiguity,
overlap, writes outside an array).  Every option variant (each a template
instantiation) runs three steps from zero state; the gradient is Fortran-ordered.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from tests.gpu.test_cupy_backend_emulator import CXX, FakeArray, installed

pytestmark = pytest.mark.skipif(CXX is None, reason="the CUDA emulator needs g++")


@pytest.fixture(scope="module", autouse=True)
def emulated():
    with installed() as fake:
        yield fake


def _case(op, hyper, states, id):
    return pytest.param(op, hyper, states, id=id)


# (op, hyperparameters, state arrays: True = given, None = absent)
CASES = [
    _case("sgd_update", fastnn.SGDHyper(lr=0.1, weight_decay=0.1), [None], "sgd"),
    _case("sgd_update", fastnn.SGDHyper(lr=0.1, momentum=0.9, weight_decay=0.01), [True],
          "sgd-momentum"),
    _case("sgd_update", fastnn.SGDHyper(lr=0.1, momentum=0.9, dampening=0.2, maximize=True),
          [True], "sgd-dampening-maximize"),
    _case("sgd_update", fastnn.SGDHyper(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
          [True], "sgd-nesterov"),
    _case("adagrad_update", fastnn.AdagradHyper(lr=0.1, lr_decay=0.1, weight_decay=0.1), [True],
          "adagrad"),
    _case("adagrad_update", fastnn.AdagradHyper(lr=0.1, eps=1e-3, maximize=True), [True],
          "adagrad-maximize"),
    _case("rmsprop_update", fastnn.RMSpropHyper(lr=0.01), [True, None, None], "rmsprop"),
    _case("rmsprop_update",
          fastnn.RMSpropHyper(lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.9, centered=True),
          [True, True, True], "rmsprop-centered-momentum"),
    _case("rmsprop_update", fastnn.RMSpropHyper(lr=0.01, alpha=0.3, centered=True),
          [True, True, None], "rmsprop-centered"),
    _case("rmsprop_update", fastnn.RMSpropHyper(lr=0.01, momentum=0.5, maximize=True),
          [True, None, True], "rmsprop-momentum"),
    _case("adadelta_update", fastnn.AdadeltaHyper(weight_decay=0.1), [True, True], "adadelta"),
    _case("adadelta_update", fastnn.AdadeltaHyper(lr=0.5, rho=0.3, eps=1e-4, maximize=True),
          [True, True], "adadelta-maximize"),
    _case("adam_update", fastnn.AdamHyper(lr=0.01), [True, True, None], "adam"),
    _case("adam_update",
          fastnn.AdamHyper(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1,
                           decoupled_weight_decay=True),
          [True, True, None], "adamw"),
    _case("adam_update", fastnn.AdamHyper(lr=0.01, beta1=0.3, beta2=0.6, weight_decay=0.1,
                                          amsgrad=True), [True, True, True], "amsgrad-l2"),
    _case("adam_update", fastnn.AdamHyper(lr=0.01, weight_decay=0.1, amsgrad=True,
                                          decoupled_weight_decay=True, maximize=True),
          [True, True, True], "amsgrad-adamw"),
]  # fmt: skip


def _call(op, param, grad, states, hyper, step, backend=None):
    extra = {"step": step} if op in ("adam_update", "adagrad_update") else {}
    if op == "sgd_update":
        extra = {"first_step": step == 1}
    getattr(fastnn, op)(param, grad, *states, hyper=hyper, backend=backend, **extra)


@pytest.mark.parametrize("op, hyper, given", CASES)
def test_update_matches_reference(op, hyper, given, dtype):
    shape = (5, 7)
    local = np.random.default_rng(3)
    param = local.standard_normal(shape).astype(dtype)
    want = [param.copy()] + [None if g is None else np.zeros(shape, dtype) for g in given]
    got = [a if a is None else a.copy().view(FakeArray) for a in want]
    for step in range(1, 4):
        grad = np.asfortranarray(local.standard_normal(shape).astype(dtype))
        _call(op, want[0], grad, want[1:], hyper, step, backend="reference")
        _call(op, got[0], grad.view(FakeArray), got[1:], hyper, step)  # dispatched: cupy
    tol = 2e-5 if dtype == np.float32 else 1e-13
    for index, (g, w) in enumerate(zip(got, want)):
        if w is not None:
            assert isinstance(g, FakeArray)
            np.testing.assert_allclose(np.asarray(g), w, rtol=tol, atol=tol, err_msg=str(index))


def test_large_update_spans_several_blocks(rng):
    """More elements than one block of threads (grid-stride loop, last block partial)."""
    n = 1000
    param = rng.standard_normal(n)
    grad = rng.standard_normal(n)
    want = [param.copy(), np.zeros(n), np.zeros(n)]
    got = [a.copy().view(FakeArray) for a in want]
    hyper = fastnn.AdamHyper(lr=0.01, weight_decay=0.1)
    fastnn.adam_update(*want[:1], grad, *want[1:], hyper=hyper, step=2, backend="reference")
    fastnn.adam_update(*got[:1], grad.view(FakeArray), *got[1:], hyper=hyper, step=2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-13, atol=1e-13)


def test_empty_parameter_launches_nothing():
    param = np.zeros((0, 3)).view(FakeArray)
    fastnn.sgd_update(param, param.copy(), hyper=fastnn.SGDHyper(lr=0.1), backend="cupy")
    assert param.shape == (0, 3)


def test_host_arrays_are_refused_by_the_cupy_backend():
    param = np.zeros(3)
    with pytest.raises(ValueError, match="cupy"):
        fastnn.sgd_update(param, np.zeros(3), hyper=fastnn.SGDHyper(), backend="cupy")
