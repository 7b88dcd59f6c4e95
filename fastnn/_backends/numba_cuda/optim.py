"""Host side of the numba-cuda optimizer updates (kernels/numba_cuda/optim.py): flat
views, the kernel scalars in the parameter's dtype, launch sizes.  IN PLACE: param and
the states were checked C-contiguous, writeable and disjoint by fastnn/ops/optim.py.

:func:`~fastnn._backends.numba_cuda._device.device_arrays` hands the implementations Numba
views of the caller's arrays (CuPy arrays and ``__cuda_array_interface__`` objects too,
zero-copy; a non-contiguous gradient copied on the device) and sets the stream the
kernels launch on: CuPy's current stream for CuPy arrays.  Launch sizes come from
``_launch.elementwise`` (block count capped; the kernels loop grid-stride).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda._device import device_arrays, launch
from fastnn._dispatch import register
from fastnn.kernels.numba_cuda import optim as _k


def _flat(x: Any) -> Any:
    """A 1-d view of a C-contiguous device array (the kernel writes through it)."""
    return x.reshape(x.size)


def _run(kernel: Any, param: Any, grad: Any, states: tuple, scalars: tuple, *flags) -> None:
    """Launch ``kernel(param, grad, *states, *scalars, *flags)`` over the elements, every
    array flat, an absent state replaced by param (never read with its flag off), every
    scalar in param's dtype."""
    p = _flat(param)
    arrays = [p if s is None else _flat(s) for s in states]
    kind = np.dtype(param.dtype).type
    blocks, threads = _launch.elementwise(p.size, _k.THREADS)
    launch(kernel, blocks, threads, p, _flat(grad), *arrays, *map(kind, scalars), *flags)


@register("sgd_update", "numba-cuda")
@device_arrays
def _sgd(param, grad, buf, hyper, s, first: bool) -> None:
    _run(_k.sgd, param, grad, (buf,), s, buf is not None, hyper.nesterov, first)


@register("adagrad_update", "numba-cuda")
@device_arrays
def _adagrad(param, grad, state_sum, hyper, s) -> None:
    _run(_k.adagrad, param, grad, (state_sum,), s)


@register("rmsprop_update", "numba-cuda")
@device_arrays
def _rmsprop(param, grad, square_avg, grad_avg, buf, hyper, s) -> None:
    states = (square_avg, grad_avg, buf)
    _run(_k.rmsprop, param, grad, states, s, grad_avg is not None, buf is not None)


@register("adadelta_update", "numba-cuda")
@device_arrays
def _adadelta(param, grad, square_avg, acc_delta, hyper, s) -> None:
    _run(_k.adadelta, param, grad, (square_avg, acc_delta), s)


@register("adam_update", "numba-cuda")
@device_arrays
def _adam(param, grad, exp_avg, exp_avg_sq, vmax, hyper, s) -> None:
    states = (exp_avg, exp_avg_sq, vmax)
    _run(_k.adam, param, grad, states, s, vmax is not None, hyper.decoupled_weight_decay)
