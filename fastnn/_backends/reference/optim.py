"""Optimizer updates in plain NumPy, the textbook formulas (see fastnn/ops/optim.py).

The one family of ops that works in place: ``param`` and the state arrays are
overwritten.  Each update is computed in float64 from the current values and rounded once
when it is stored back.  ``s`` is the update's kernel scalars (fastnn/ops/_optim_hyper.py).
"""

from __future__ import annotations

import numpy as np

from fastnn._backends.reference._util import f64
from fastnn._dispatch import register


def _store(target: np.ndarray, value: np.ndarray) -> None:
    target[...] = value.astype(target.dtype)


def _gradient(param, grad, weight_decay: float, sign: float) -> np.ndarray:
    """The gradient the update uses: negated for ``maximize``, plus weight decay."""
    g = -f64(grad) if sign < 0 else f64(grad)
    if weight_decay != 0:
        g = g + weight_decay * f64(param)
    return g


@register("sgd_update", "reference")
def _sgd(param, grad, buf, hyper, s, first: bool) -> None:
    g = _gradient(param, grad, s.weight_decay, s.sign)
    if buf is not None:
        b = g if first else s.momentum * f64(buf) + s.keep * g
        _store(buf, b)
        g = g + s.momentum * b if hyper.nesterov else b
    _store(param, f64(param) - s.lr * g)


@register("adagrad_update", "reference")
def _adagrad(param, grad, state_sum, hyper, s) -> None:
    g = _gradient(param, grad, s.weight_decay, s.sign)
    total = f64(state_sum) + g * g
    _store(state_sum, total)
    _store(param, f64(param) - s.lr * g / (np.sqrt(total) + s.eps))


@register("rmsprop_update", "reference")
def _rmsprop(param, grad, square_avg, grad_avg, buf, hyper, s) -> None:
    g = _gradient(param, grad, s.weight_decay, s.sign)
    v = s.alpha * f64(square_avg) + s.rest * g * g
    _store(square_avg, v)
    if grad_avg is not None:
        m = s.alpha * f64(grad_avg) + s.rest * g
        _store(grad_avg, m)
        avg = np.sqrt(v - m * m) + s.eps
    else:
        avg = np.sqrt(v) + s.eps
    if buf is not None:
        b = s.momentum * f64(buf) + g / avg
        _store(buf, b)
        _store(param, f64(param) - s.lr * b)
    else:
        _store(param, f64(param) - s.lr * g / avg)


@register("adadelta_update", "reference")
def _adadelta(param, grad, square_avg, acc_delta, hyper, s) -> None:
    g = _gradient(param, grad, s.weight_decay, s.sign)
    v = s.rho * f64(square_avg) + s.rest * g * g
    delta = np.sqrt(f64(acc_delta) + s.eps) / np.sqrt(v + s.eps) * g
    _store(square_avg, v)
    _store(acc_delta, s.rho * f64(acc_delta) + s.rest * delta * delta)
    _store(param, f64(param) - s.lr * delta)


@register("adam_update", "reference")
def _adam(param, grad, exp_avg, exp_avg_sq, vmax, hyper, s) -> None:
    p = f64(param)
    decoupled = hyper.decoupled_weight_decay
    g = _gradient(param, grad, 0.0 if decoupled else s.weight_decay, s.sign)
    if decoupled and s.weight_decay != 0:
        p = p * s.shrink
    m = s.beta1 * f64(exp_avg) + s.rest1 * g
    v = s.beta2 * f64(exp_avg_sq) + s.rest2 * g * g
    _store(exp_avg, m)
    _store(exp_avg_sq, v)
    if vmax is not None:
        v = np.maximum(f64(vmax), v)
        _store(vmax, v)
    _store(param, p - s.step_size * m / (np.sqrt(v) / s.bias2_sqrt + s.eps))
