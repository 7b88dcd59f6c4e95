"""Helpers shared by the test modules: tolerances, layouts, PyTorch when installed."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

#: The floating dtypes every kernel supports (tests take one at a time through the
#: ``dtype`` fixture of conftest.py; loops inside a test use this tuple).
FLOAT_DTYPES = (np.float32, np.float64)

#: Relative tolerances for comparing a backend with the float64 reference, per dtype.
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}

#: The activations the fused dense / backprop ops take (None: no activation).
ACTIVATIONS = (None, "relu", "sigmoid", "tanh")

#: The loss reductions every loss op takes.
REDUCTIONS = ("mean", "sum", "none")

HAS_TORCH = importlib.util.find_spec("torch") is not None

#: Marks a test that compares with PyTorch (the ``torch`` extra; CI installs it).
requires_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch (the torch extra) is missing")


def assert_close(
    got: Any, want: Any, dtype: Any = None, rtol: float | None = None, what: str = ""
) -> None:
    """Assert ``got`` matches ``want`` to the dtype's tolerance, relative to the size of
    ``want`` (so that cancellation in long sums does not fail float32 spuriously)."""
    got = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    dtype = np.dtype(dtype if dtype is not None else got.dtype)
    tol = RTOL[dtype] if rtol is None else rtol
    finite = np.abs(want[np.isfinite(want)])  # inf / NaN must match exactly, not set the scale
    scale = max(1.0, float(finite.max(initial=0.0)))
    np.testing.assert_allclose(
        got.astype(np.float64),
        want,
        rtol=tol,
        atol=tol * scale,
        equal_nan=True,
        err_msg=what,
    )


def assert_nested_close(
    got: Any,
    want: Any,
    what: str,
    device_values: Callable[[Any, np.ndarray, str], np.ndarray],
    rtol: float | None = None,
) -> None:
    """A result that may be a tuple or list of arrays (None allowed) against the
    reference's.  ``device_values(got, want, what)`` asserts what one array must be (its
    kind, shape, dtype, layout) and returns its values on the host, which must equal
    ``want`` for integer dtypes and be close to it otherwise."""
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_nested_close(g, w, f"{what}[{i}]", device_values, rtol)
        return
    if want is None:
        assert got is None, f"{what}: expected None"
        return
    want = np.asarray(want)
    values = device_values(got, want, what)
    if want.dtype.kind in "iu":  # indices: exact
        np.testing.assert_array_equal(values, want, err_msg=what)
    else:
        assert_close(values, want, dtype=want.dtype, rtol=rtol, what=what)


def layouts(x: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """The same values as ``x`` in several memory layouts: C-contiguous, Fortran order,
    a strided view into a larger buffer, and a negative-stride (reversed) view."""
    yield "contiguous", np.ascontiguousarray(x)
    yield "fortran", np.asfortranarray(x)
    big = np.zeros(tuple(2 * s + 1 for s in x.shape), dtype=x.dtype)
    view = big[tuple(slice(1, 1 + 2 * s, 2) for s in x.shape)]
    view[...] = x
    yield "strided", view
    flipped = np.ascontiguousarray(x[..., ::-1])[..., ::-1] if x.ndim else x
    yield "negative-stride", flipped


@functools.cache
def import_torch():
    """PyTorch, limited to one thread: the tests' tensors are tiny, and on a busy machine
    torch's thread pool costs far more than it saves."""
    import torch

    torch.set_num_threads(1)
    return torch


def torch_grads(fn, *arrays: np.ndarray, grad_output: np.ndarray | None = None):
    """Run ``fn`` on float64 torch copies of ``arrays`` and return (output, grads)."""
    import torch

    tensors = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    if grad_output is None:
        out.sum().backward() if out.ndim else out.backward()
    else:
        out.backward(torch.tensor(np.asarray(grad_output, dtype=np.float64)))
    return out.detach().numpy(), [t.grad.numpy() if t.grad is not None else None for t in tensors]


def _arrays(result: Any) -> list[np.ndarray]:
    """The arrays in an op's result: one array, or a tuple/list (nested) with Nones."""
    if isinstance(result, (tuple, list)):
        return [a for item in result for a in _arrays(item)]
    return [] if result is None else [result]


def assert_fresh_outputs(result: Any, inputs: Any, what: str = "") -> None:
    """Every array of ``result`` is C-contiguous and shares no memory with any input."""
    for out in _arrays(result):
        assert out.flags.c_contiguous, f"{what}: output of shape {out.shape} not C-contiguous"
        for x in _arrays(inputs):
            assert not np.shares_memory(out, x), f"{what}: output aliases an input"


def assert_layout_independent(call, *arrays: np.ndarray, what: str = "") -> None:
    """``call(*arrays)`` gives the same result whatever the memory layout of its arrays
    (every array in each layout of :func:`layouts` in turn), always returns fresh
    C-contiguous arrays, and never modifies its inputs."""
    want = _arrays(call(*[np.ascontiguousarray(a) for a in arrays]))
    for variants in zip(*(layouts(a) for a in arrays)):
        layout = variants[0][0]
        inputs = [v for _, v in variants]
        before = [x.copy() for x in inputs]
        result = call(*inputs)
        got = _arrays(result)
        assert len(got) == len(want), f"{what} [{layout}]: {len(got)} outputs, not {len(want)}"
        for g, w in zip(got, want):
            assert g.dtype == w.dtype, f"{what} [{layout}]: dtype {g.dtype} != {w.dtype}"
            np.testing.assert_array_equal(g, w, err_msg=f"{what} [{layout}]")
        assert_fresh_outputs(result, inputs, f"{what} [{layout}]")
        for x, b in zip(inputs, before):
            np.testing.assert_array_equal(x, b, err_msg=f"{what} [{layout}]: input modified")
