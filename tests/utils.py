"""Helpers shared by the test modules: tolerances, layouts, PyTorch when installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import numpy as np

#: Relative tolerances for comparing a backend with the float64 reference, per dtype.
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}

HAS_TORCH = importlib.util.find_spec("torch") is not None


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
    scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(
        got.astype(np.float64),
        want,
        rtol=tol,
        atol=tol * scale,
        equal_nan=True,
        err_msg=what,
    )


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
