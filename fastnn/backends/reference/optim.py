"""Optimizer updates in plain NumPy, the textbook formulas (see fastnn/optim/functional.py).

The one family of ops that works in place: ``param`` and the state arrays are
overwritten.  Each update is computed in float64 from the current values and rounded once
when it is stored back.
"""

from __future__ import annotations

import numpy as np

from fastnn.backends.reference._util import f64, reference


def _store(target: np.ndarray, value: np.ndarray) -> None:
    target[...] = value.astype(target.dtype)


def _gradient(param, grad, weight_decay: float, maximize: bool) -> np.ndarray:
    """The gradient the update uses: negated for ``maximize``, plus weight decay."""
    g = -f64(grad) if maximize else f64(grad)
    if weight_decay != 0:
        g = g + weight_decay * f64(param)
    return g


@reference("sgd_update")
def _sgd(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    g = _gradient(param, grad, weight_decay, maximize)
    if buf is not None:
        b = g if first else momentum * f64(buf) + (1.0 - dampening) * g
        _store(buf, b)
        g = g + momentum * b if nesterov else b
    _store(param, f64(param) - lr * g)


@reference("adagrad_update")
def _adagrad(param, grad, state_sum, lr, weight_decay, eps, maximize):
    g = _gradient(param, grad, weight_decay, maximize)
    s = f64(state_sum) + g * g
    _store(state_sum, s)
    _store(param, f64(param) - lr * g / (np.sqrt(s) + eps))


@reference("rmsprop_update")
def _rmsprop(
    param, grad, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, maximize
):
    g = _gradient(param, grad, weight_decay, maximize)
    v = alpha * f64(square_avg) + (1.0 - alpha) * g * g
    _store(square_avg, v)
    if grad_avg is not None:
        m = alpha * f64(grad_avg) + (1.0 - alpha) * g
        _store(grad_avg, m)
        avg = np.sqrt(v - m * m) + eps
    else:
        avg = np.sqrt(v) + eps
    if buf is not None:
        b = momentum * f64(buf) + g / avg
        _store(buf, b)
        _store(param, f64(param) - lr * b)
    else:
        _store(param, f64(param) - lr * g / avg)


@reference("adadelta_update")
def _adadelta(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    g = _gradient(param, grad, weight_decay, maximize)
    v = rho * f64(square_avg) + (1.0 - rho) * g * g
    delta = np.sqrt(f64(acc_delta) + eps) / np.sqrt(v + eps) * g
    _store(square_avg, v)
    _store(acc_delta, rho * f64(acc_delta) + (1.0 - rho) * delta * delta)
    _store(param, f64(param) - lr * delta)


@reference("adam_update")
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
    p = f64(param)
    g = -f64(grad) if maximize else f64(grad)
    if weight_decay != 0:
        if decoupled:
            p = p * (1.0 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    m = beta1 * f64(exp_avg) + (1.0 - beta1) * g
    v = beta2 * f64(exp_avg_sq) + (1.0 - beta2) * g * g
    _store(exp_avg, m)
    _store(exp_avg_sq, v)
    if vmax is not None:
        v = np.maximum(f64(vmax), v)
        _store(vmax, v)
    bias1 = 1.0 - beta1**step
    bias2 = 1.0 - beta2**step
    _store(param, p - (lr / bias1) * m / (np.sqrt(v) / np.sqrt(bias2) + eps))
