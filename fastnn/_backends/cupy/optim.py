"""The optimizer updates on the GPU (kernels/cuda/optim.cu): one fused kernel per
optimizer, instantiated per option flags (momentum, Nesterov, centred, AMSGrad, AdamW) so
that the flags cost no branches, IN PLACE on the parameter and its state.

fastnn/ops/optim.py has checked that param and the states are C-contiguous, writeable
and disjoint; the gradient may have any layout (made contiguous here).  Numba and other
``__cuda_array_interface__`` arrays are viewed as CuPy arrays (zero-copy; nothing is
returned, so the ``cupy_arrays`` wrapper is not needed).  The kernels take
the update's ``*Scalars`` tuple (fastnn/ops/_optim_hyper.py) in its order, as the element
type; an absent state is passed as the parameter, never touched with its flag off.
"""

from __future__ import annotations

from typing import Any

import cupy

from fastnn._backends.cupy._runtime import contiguous, i64, kernel, launch_1d, scalar
from fastnn._dispatch import register

_FILE = "optim.cu"


def _run(name: str, flags: tuple, param: Any, grad: Any, states: tuple, scalars: tuple) -> None:
    """Launch ``name<T, flags...>(param, grad, *states, n, *scalars)`` over the elements."""
    param = cupy.asarray(param)
    arrays = [param if s is None else cupy.asarray(s) for s in states]
    values = [scalar(param.dtype, v) for v in scalars]
    kern = kernel(_FILE, name, param.dtype, *flags)
    args = (param, contiguous(cupy.asarray(grad)), *arrays, i64(param.size), *values)
    launch_1d(kern, param.size, args)


@register("sgd_update", "cupy")
def _sgd(param, grad, buf, hyper, s, first: bool) -> None:
    use_momentum = buf is not None
    flags = (use_momentum, use_momentum and hyper.nesterov, use_momentum and first)
    _run("sgd_update", flags, param, grad, (buf,), s)


@register("adagrad_update", "cupy")
def _adagrad(param, grad, state_sum, hyper, s) -> None:
    _run("adagrad_update", (), param, grad, (state_sum,), s)


@register("rmsprop_update", "cupy")
def _rmsprop(param, grad, square_avg, grad_avg, buf, hyper, s) -> None:
    flags = (grad_avg is not None, buf is not None)
    _run("rmsprop_update", flags, param, grad, (square_avg, grad_avg, buf), s)


@register("adadelta_update", "cupy")
def _adadelta(param, grad, square_avg, acc_delta, hyper, s) -> None:
    _run("adadelta_update", (), param, grad, (square_avg, acc_delta), s)


@register("adam_update", "cupy")
def _adam(param, grad, exp_avg, exp_avg_sq, vmax, hyper, s) -> None:
    flags = (vmax is not None, hyper.decoupled_weight_decay)
    _run("adam_update", flags, param, grad, (exp_avg, exp_avg_sq, vmax), s)
