"""Elementwise activations with their gradients (from the output; silu's and gelu's from
the input), in float64 with textbook formulas.  (log-)softmax is in softmax.py."""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from fastnn._backends.reference._util import activate, f64, finish, stable_sigmoid
from fastnn._dispatch import register

_SQRT1_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_GELU_BETA = 0.7978845608028654  # sqrt(2 / pi)
_GELU_KAPPA = 0.044715
#: |x| beyond which the cubic of gelu's tanh form is taken at the bound: tanh is +-1
#: there already, and x**3 can no longer overflow (0 * inf would make the gradient NaN).
_GELU_CUBIC_BOUND = 100.0


def _result(y: np.ndarray, x, out):
    """The float64 result rounded once to the input's dtype: a new array, or written into
    ``out`` (which may be ``x`` itself) and returned."""
    if out is None:
        return finish(y, x.dtype)
    np.copyto(out, y, casting="unsafe")
    return out


def _hardtanh_f64(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clamp to [lo, hi] with NaN kept."""
    return np.where(x < lo, lo, np.where(x > hi, hi, x))


@register("relu", "reference")
def _relu(x, out=None):
    return _result(activate("relu", f64(x)), x, out)


@register("hardtanh", "reference")
def _hardtanh(x, out, min_val: float, max_val: float):
    return _result(_hardtanh_f64(f64(x), min_val, max_val), x, out)


@register("relu6", "reference")
def _relu6(x, out=None):
    return _result(_hardtanh_f64(f64(x), 0.0, 6.0), x, out)


@register("leaky_relu", "reference")
def _leaky_relu(x, out, negative_slope: float):
    u = f64(x)
    return _result(np.where(u > 0, u, u * negative_slope), x, out)


@register("silu", "reference")
def _silu(x):
    u = f64(x)
    with np.errstate(invalid="ignore"):  # -inf * 0 at -inf: NaN, as in PyTorch
        return finish(u * stable_sigmoid(u), x.dtype)


def _gelu_inner(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sqrt(2/pi) (x + kappa x^3) and its derivative, x bounded (_GELU_CUBIC_BOUND)."""
    b = np.clip(u, -_GELU_CUBIC_BOUND, _GELU_CUBIC_BOUND)
    inner = _GELU_BETA * (b + _GELU_KAPPA * b**3)
    return inner, _GELU_BETA * (1.0 + 3.0 * _GELU_KAPPA * b * b)


@register("gelu", "reference")
def _gelu(x, approximate: str):
    u = f64(x)
    with np.errstate(invalid="ignore"):  # -inf * 0 at -inf: NaN, as in PyTorch
        if approximate == "tanh":
            return finish(0.5 * u * (1.0 + np.tanh(_gelu_inner(u)[0])), x.dtype)
        return finish(u * 0.5 * (1.0 + erf(u * _SQRT1_2)), x.dtype)


@register("silu_backward", "reference")
def _silu_backward(gy, x):
    g, u = f64(gy), f64(x)
    s = stable_sigmoid(u)
    with np.errstate(invalid="ignore"):  # 0 * inf at +-inf: NaN, as in PyTorch
        return finish(g * s * (1.0 + u * (1.0 - s)), gy.dtype)


@register("gelu_backward", "reference")
def _gelu_backward(gy, x, approximate: str):
    g, u = f64(gy), f64(x)
    with np.errstate(invalid="ignore", over="ignore"):  # 0 * inf at +-inf: NaN, as torch
        if approximate == "tanh":
            inner, slope = _gelu_inner(u)
            t = np.tanh(inner)
            grad = 0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * slope
        else:
            pdf = np.exp(-0.5 * u * u) * _INV_SQRT_2PI
            grad = 0.5 * (1.0 + erf(u * _SQRT1_2)) + u * pdf
    return finish(g * grad, gy.dtype)


@register("sigmoid", "reference")
def _sigmoid(x):
    return finish(activate("sigmoid", f64(x)), x.dtype)


@register("tanh", "reference")
def _tanh(x):
    return finish(activate("tanh", f64(x)), x.dtype)


@register("activation_backward", "reference")
def _activation_backward(name: str, gy, y, p0: float = 0.0, p1: float = 0.0):
    g, out = f64(gy), f64(y)
    if name == "relu":  # as PyTorch: zero where y <= 0, so a NaN output passes g through
        grad = np.where(out <= 0, 0.0, g)
    elif name == "hardtanh":  # p0, p1 = min_val, max_val; NaN passes g, as in PyTorch
        grad = np.where((out <= p0) | (out >= p1), 0.0, g)
    elif name == "leaky_relu":  # p0 = negative_slope >= 0
        grad = np.where(out > 0, g, g * p0)
    elif name == "sigmoid":
        grad = g * out * (1.0 - out)
    else:  # tanh
        grad = g * (1.0 - out * out)
    return finish(grad, gy.dtype)
