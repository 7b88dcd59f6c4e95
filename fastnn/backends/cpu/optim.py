"""Host-side wrappers of kernels/cpu/optim.pyx: flat views, the optional-state
placeholders, threads.  The updates are IN PLACE; fastnn/optim/functional.py has checked
that param and the states are C-contiguous, writeable and disjoint."""

from __future__ import annotations

import math

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
def _sgd(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    p = _flat(param)
    b, use_momentum = _optional(buf, p)
    _k.sgd(
        p, _grad(grad), b, lr, momentum, dampening, weight_decay,
        use_momentum, nesterov, maximize, first, team_size(),
    )  # fmt: skip


@register("adagrad_update", "cpu")
def _adagrad(param, grad, state_sum, lr, weight_decay, eps, maximize):
    _k.adagrad(
        _flat(param), _grad(grad), _flat(state_sum), lr, weight_decay, eps, maximize,
        team_size(),
    )  # fmt: skip


@register("rmsprop_update", "cpu")
def _rmsprop(
    param, grad, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, maximize
):
    p = _flat(param)
    m, centered = _optional(grad_avg, p)
    b, use_momentum = _optional(buf, p)
    _k.rmsprop(
        p, _grad(grad), _flat(square_avg), m, b, lr, alpha, eps, weight_decay, momentum,
        centered, use_momentum, maximize, team_size(),
    )  # fmt: skip


@register("adadelta_update", "cpu")
def _adadelta(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    _k.adadelta(
        _flat(param), _grad(grad), _flat(square_avg), _flat(acc_delta), lr, rho, eps,
        weight_decay, maximize, team_size(),
    )  # fmt: skip


@register("adam_update", "cpu")
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
    v, amsgrad = _optional(vmax, p)
    step_size = lr / (1.0 - beta1**step)
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
    _k.adam(
        p, _grad(grad), _flat(exp_avg), _flat(exp_avg_sq), v, step_size,
        bias_correction2_sqrt, lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled,
        maximize, team_size(),
    )  # fmt: skip
