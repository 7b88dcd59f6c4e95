"""Host-side wrappers of kernels/cpu/optim.pyx: flat views, the optional-state
placeholders, threads.  The updates are IN PLACE; fastnn/ops/optim.py has checked that
param and the states are C-contiguous, writeable and disjoint.  ``s`` is the update's
``*Scalars`` tuple (fastnn/ops/_optim_hyper.py), whose order the kernels' scalar
parameters follow (Adam's by name: its kernel takes no beta1)."""

from __future__ import annotations

import numpy as np

from fastnn._dispatch import register
from fastnn._threads import team_size
from fastnn.kernels.cpu import optim as _k


def _flat(x: np.ndarray) -> np.ndarray:
    """A 1-d view of a C-contiguous array (never a copy: the kernel writes through it)."""
    return x.reshape(-1)


def _grad(grad: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(grad).reshape(-1)


def _optional(state, like: np.ndarray) -> tuple[np.ndarray, bool]:
    """(flat state, True) or (an empty placeholder the kernel never reads, False)."""
    return (_flat(state), True) if state is not None else (like[:0], False)


@register("sgd_update", "cpu")
def _sgd(param, grad, buf, hyper, s, first: bool) -> None:
    p = _flat(param)
    b, use_momentum = _optional(buf, p)
    _k.sgd(p, _grad(grad), b, *s, use_momentum, hyper.nesterov, first, team_size())


@register("adagrad_update", "cpu")
def _adagrad(param, grad, state_sum, hyper, s) -> None:
    _k.adagrad(_flat(param), _grad(grad), _flat(state_sum), *s, team_size())


@register("rmsprop_update", "cpu")
def _rmsprop(param, grad, square_avg, grad_avg, buf, hyper, s) -> None:
    p = _flat(param)
    m, centered = _optional(grad_avg, p)
    b, use_momentum = _optional(buf, p)
    _k.rmsprop(p, _grad(grad), _flat(square_avg), m, b, *s, centered, use_momentum, team_size())


@register("adadelta_update", "cpu")
def _adadelta(param, grad, square_avg, acc_delta, hyper, s) -> None:
    _k.adadelta(_flat(param), _grad(grad), _flat(square_avg), _flat(acc_delta), *s, team_size())


@register("adam_update", "cpu")
def _adam(param, grad, exp_avg, exp_avg_sq, vmax, hyper, s) -> None:
    p = _flat(param)
    v, amsgrad = _optional(vmax, p)
    # the kernel interpolates exp_avg with 1 - rest1 in the element type (as torch.lerp)
    _k.adam(
        p, _grad(grad), _flat(exp_avg), _flat(exp_avg_sq), v, s.step_size, s.bias2_sqrt,
        s.shrink, s.rest1, s.beta2, s.rest2, s.eps, s.weight_decay, s.sign, amsgrad,
        hyper.decoupled_weight_decay, team_size(),
    )  # fmt: skip
