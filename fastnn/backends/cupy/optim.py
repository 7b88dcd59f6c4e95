"""Optimizer updates as CuPy ElementwiseKernels: one fused kernel per optimizer, IN PLACE.

Each kernel is generated for its option flags (momentum, Nesterov, centred, AMSGrad, ...)
so the flags cost no branches, compiled on first use and cached.  The state arrays and the
parameter are the kernels' output arguments, which an ElementwiseKernel reads and writes
in place; the gradient may have any layout.  The code mirrors the NumPy reference
(fastnn/backends/reference/optim.py) line for line; see fastnn/optim/functional.py for
the formulas.
"""

from __future__ import annotations

import functools
import math

import cupy

from fastnn._dispatch import register

_WEIGHT_DECAY = "if (weight_decay != (T)0) g = g + weight_decay * param;"


@functools.cache
def _sgd_kernel(use_momentum: bool, nesterov: bool, first: bool) -> cupy.ElementwiseKernel:
    body = ["T g = sign * grad;", _WEIGHT_DECAY]
    outputs = "T param"
    if use_momentum:
        outputs += ", T buf"
        body.append("T b = g;" if first else "T b = buf * momentum + keep * g;")
        body.append("buf = b;")
        body.append("g = g + momentum * b;" if nesterov else "g = b;")
    body.append("param = param - lr * g;")
    return cupy.ElementwiseKernel(
        "T grad, T lr, T momentum, T keep, T weight_decay, T sign",
        outputs,
        "\n".join(body),
        f"fastnn_sgd_{int(use_momentum)}{int(nesterov)}{int(first)}",
    )


@functools.cache
def _adagrad_kernel() -> cupy.ElementwiseKernel:
    return cupy.ElementwiseKernel(
        "T grad, T lr, T weight_decay, T eps, T sign",
        "T param, T state_sum",
        f"""
        T g = sign * grad;
        {_WEIGHT_DECAY}
        state_sum = state_sum + g * g;
        param = param - lr * (g / (sqrt(state_sum) + eps));
        """,
        "fastnn_adagrad",
    )


@functools.cache
def _rmsprop_kernel(centered: bool, use_momentum: bool) -> cupy.ElementwiseKernel:
    outputs = "T param, T square_avg"
    body = ["T g = sign * grad;", _WEIGHT_DECAY]
    body.append("square_avg = square_avg * alpha + rest * (g * g);")
    if centered:
        outputs += ", T grad_avg"
        body.append(
            "grad_avg = rest < (T)0.5 ? grad_avg + rest * (g - grad_avg)"
            " : g - (g - grad_avg) * alpha;"
        )
        body.append("T avg = sqrt(square_avg - grad_avg * grad_avg) + eps;")
    else:
        body.append("T avg = sqrt(square_avg) + eps;")
    if use_momentum:
        outputs += ", T buf"
        body.append("buf = buf * momentum + g / avg;")
        body.append("param = param - lr * buf;")
    else:
        body.append("param = param - lr * (g / avg);")
    return cupy.ElementwiseKernel(
        "T grad, T lr, T alpha, T rest, T eps, T weight_decay, T momentum, T sign",
        outputs,
        "\n".join(body),
        f"fastnn_rmsprop_{int(centered)}{int(use_momentum)}",
    )


@functools.cache
def _adadelta_kernel() -> cupy.ElementwiseKernel:
    return cupy.ElementwiseKernel(
        "T grad, T lr, T rho, T rest, T eps, T weight_decay, T sign",
        "T param, T square_avg, T acc_delta",
        f"""
        T g = sign * grad;
        {_WEIGHT_DECAY}
        square_avg = square_avg * rho + rest * (g * g);
        T delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g;
        acc_delta = acc_delta * rho + rest * (delta * delta);
        param = param - lr * delta;
        """,
        "fastnn_adadelta",
    )


@functools.cache
def _adam_kernel(amsgrad: bool, decoupled: bool) -> cupy.ElementwiseKernel:
    outputs = "T param, T exp_avg, T exp_avg_sq" + (", T max_exp_avg_sq" if amsgrad else "")
    decay = "p = p * shrink;" if decoupled else "g = g + weight_decay * p;"
    body = [
        "T g = sign * grad;",
        "T p = param;",
        f"if (weight_decay != (T)0) {{ {decay} }}",
        "exp_avg = rest1 < (T)0.5 ? exp_avg + rest1 * (g - exp_avg) : g - (g - exp_avg) * beta1;",
        "exp_avg_sq = exp_avg_sq * beta2 + rest2 * (g * g);",
        "T v = exp_avg_sq;",
    ]
    if amsgrad:
        body.append("if (max_exp_avg_sq > v) v = max_exp_avg_sq;")
        body.append("max_exp_avg_sq = v;")
    body.append("param = p - step_size * (exp_avg / (sqrt(v) / bias2_sqrt + eps));")
    return cupy.ElementwiseKernel(
        "T grad, T step_size, T bias2_sqrt, T shrink, T beta1, T rest1, T beta2, T rest2, "
        "T eps, T weight_decay, T sign",
        outputs,
        "\n".join(body),
        f"fastnn_adam_{int(amsgrad)}{int(decoupled)}",
    )


def _gpu(*arrays) -> list:
    """CuPy views (zero-copy) of CuPy, Numba or other CUDA arrays."""
    return [cupy.asarray(a) for a in arrays if a is not None]


def _scalars(param, *values: float) -> list:
    kind = param.dtype.type
    return [kind(v) for v in values]


@register("sgd_update", "cupy")
def _sgd(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    kernel = _sgd_kernel(buf is not None, nesterov, first)
    scalars = _scalars(param, lr, momentum, 1.0 - dampening, weight_decay, -1 if maximize else 1)
    kernel(*_gpu(grad), *scalars, *_gpu(param, buf))


@register("adagrad_update", "cupy")
def _adagrad(param, grad, state_sum, lr, weight_decay, eps, maximize):
    scalars = _scalars(param, lr, weight_decay, eps, -1 if maximize else 1)
    _adagrad_kernel()(*_gpu(grad), *scalars, *_gpu(param, state_sum))


@register("rmsprop_update", "cupy")
def _rmsprop(
    param, grad, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, maximize
):
    kernel = _rmsprop_kernel(grad_avg is not None, buf is not None)
    scalars = _scalars(
        param, lr, alpha, 1.0 - alpha, eps, weight_decay, momentum, -1 if maximize else 1
    )
    kernel(*_gpu(grad), *scalars, *_gpu(param, square_avg, grad_avg, buf))


@register("adadelta_update", "cupy")
def _adadelta(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    scalars = _scalars(param, lr, rho, 1.0 - rho, eps, weight_decay, -1 if maximize else 1)
    _adadelta_kernel()(*_gpu(grad), *scalars, *_gpu(param, square_avg, acc_delta))


@register("adam_update", "cupy")
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
    kernel = _adam_kernel(vmax is not None, decoupled)
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
    kernel(*_gpu(grad), *scalars, *_gpu(param, exp_avg, exp_avg_sq, vmax))
