"""Host side of the numba-cuda optimizer updates (kernels/numba_cuda/optim.py): flat
device views, scalars in the parameter's dtype, launch sizes.  IN PLACE: param and the
states were checked C-contiguous, writeable and disjoint by fastnn/optim/functional.py.

Works on CuPy arrays, Numba device arrays and any ``__cuda_array_interface__`` object.
A non-contiguous gradient is made contiguous first (CuPy: on the GPU; other arrays:
through the host, a slow path that fastnn's layers never take).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from numba import cuda

from fastnn._dispatch import array_kind, register
from fastnn.kernels.numba_cuda import optim as _k


def _device(x: Any) -> Any:
    """A Numba view of a GPU array (CuPy and CAI objects are wrapped, zero-copy)."""
    if array_kind(x) != "numba" and hasattr(x, "__cuda_array_interface__"):
        return cuda.as_cuda_array(x)
    return x


def _flat(x: Any) -> Any:
    """A 1-d view of a C-contiguous device array (the kernel writes through it)."""
    x = _device(x)
    return x.reshape(x.size)


def _grad(grad: Any) -> Any:
    if array_kind(grad) == "cupy":
        return _flat(sys.modules["cupy"].ascontiguousarray(grad))
    g = _device(grad)
    if not g.is_c_contiguous():
        g = cuda.to_device(np.ascontiguousarray(g.copy_to_host()))
    return g.reshape(g.size)


def _launch(kernel, n: int, *args: Any) -> None:
    if n == 0:
        return
    blocks = (n + _k.THREADS - 1) // _k.THREADS
    kernel[blocks, _k.THREADS](*args)


def _scalars(param: Any, *values: float) -> list[Any]:
    kind = np.dtype(param.dtype).type
    return [kind(v) for v in values]


@register("sgd_update", "numba-cuda")
def _sgd(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    p = _flat(param)
    b = _flat(buf) if buf is not None else p  # placeholder, never read with the flag off
    scalars = _scalars(param, lr, momentum, 1.0 - dampening, weight_decay, -1 if maximize else 1)
    _launch(_k.sgd, p.size, p, _grad(grad), b, *scalars, buf is not None, nesterov, first)


@register("adagrad_update", "numba-cuda")
def _adagrad(param, grad, state_sum, lr, weight_decay, eps, maximize):
    p = _flat(param)
    scalars = _scalars(param, lr, weight_decay, eps, -1 if maximize else 1)
    _launch(_k.adagrad, p.size, p, _grad(grad), _flat(state_sum), *scalars)


@register("rmsprop_update", "numba-cuda")
def _rmsprop(
    param, grad, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, maximize
):
    p = _flat(param)
    m = _flat(grad_avg) if grad_avg is not None else p
    b = _flat(buf) if buf is not None else p
    scalars = _scalars(
        param, lr, alpha, 1.0 - alpha, eps, weight_decay, momentum, -1 if maximize else 1
    )
    _launch(
        _k.rmsprop, p.size, p, _grad(grad), _flat(square_avg), m, b, *scalars,
        grad_avg is not None, buf is not None,
    )  # fmt: skip


@register("adadelta_update", "numba-cuda")
def _adadelta(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    p = _flat(param)
    scalars = _scalars(param, lr, rho, 1.0 - rho, eps, weight_decay, -1 if maximize else 1)
    _launch(_k.adadelta, p.size, p, _grad(grad), _flat(square_avg), _flat(acc_delta), *scalars)


@register("adam_update", "numba-cuda")
def _adam(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    vmax,
    step,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    decoupled,
    maximize,
):
    p = _flat(param)
    v = _flat(vmax) if vmax is not None else p
    scalars = _scalars(
        param,
        lr / (1.0 - beta1**step),
        math.sqrt(1.0 - beta2**step),
        1.0 - lr * weight_decay,
        beta1,
        1.0 - beta1,
        beta2,
        1.0 - beta2,
        eps,
        weight_decay,
        -1 if maximize else 1,
    )
    _launch(
        _k.adam, p.size, p, _grad(grad), _flat(exp_avg), _flat(exp_avg_sq), v, *scalars,
        vmax is not None, decoupled,
    )  # fmt: skip
