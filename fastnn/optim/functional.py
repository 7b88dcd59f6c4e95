"""The optimizer update ops: one fused kernel per optimizer and backend, IN PLACE.

Unlike every other fastnn op, these write into their arguments: ``param`` and the state
arrays are updated in place and nothing is returned.  That is what an optimizer step is,
and it keeps references to the parameters valid.  So ``param`` and the states must be
C-contiguous, writeable, of one dtype and device, and must not share memory; ``grad`` may
have any layout (it is only read).  Arguments are validated here, once, before the kernel
of the backend the dispatcher picks ("cpu" Cython, "reference" NumPy, "numba-cuda",
"cupy") runs; ``backend=`` overrides the choice as for every op.

The formulas are PyTorch's (``torch.optim``, single-tensor path), with ``g`` the gradient
(negated when ``maximize``) plus ``weight_decay * param``:

- SGD: ``b = g`` on the first step, else ``b = momentum * b + (1 - dampening) * g``;
  ``d = g + momentum * b`` (Nesterov) or ``b``; ``param -= lr * d``.
- Adagrad: ``s += g^2``; ``param -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(s) + eps)``.
- RMSprop: ``v = alpha v + (1 - alpha) g^2``; centred: ``m = alpha m + (1 - alpha) g`` and
  ``a = sqrt(v - m^2) + eps``, else ``a = sqrt(v) + eps``; with momentum
  ``b = momentum b + g / a``, ``param -= lr b``, else ``param -= lr g / a``.
- Adadelta: ``v = rho v + (1 - rho) g^2``; ``d = sqrt(u + eps) / sqrt(v + eps) * g``;
  ``u = rho u + (1 - rho) d^2``; ``param -= lr d``.
- Adam: ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g^2`` (AMSGrad keeps
  ``vmax = max(vmax, v)`` and uses it for ``v``); ``param -= lr / (1 - beta1^t) * m /
  (sqrt(v) / sqrt(1 - beta2^t) + eps)``.  ``decoupled_weight_decay`` (AdamW) instead
  multiplies ``param`` by ``1 - lr * weight_decay`` before the update.

Backend implementations receive the validated arguments positionally:

=================  =======================================================================
op                 implementation signature (returns None)
=================  =======================================================================
sgd_update         (param, grad, buf | None, lr, momentum, dampening, weight_decay,
                   nesterov, maximize, first_step)
adagrad_update     (param, grad, state_sum, lr, weight_decay, eps, maximize); lr is the
                   decayed rate of this step
rmsprop_update     (param, grad, square_avg, grad_avg | None, buf | None, lr, alpha, eps,
                   weight_decay, momentum, maximize); centred iff grad_avg is given
adadelta_update    (param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize)
adam_update        (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq | None, step, lr,
                   beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize)
=================  =======================================================================
"""

from __future__ import annotations

from typing import Any

from fastnn._dispatch import resolve
from fastnn.optim._checks import (
    check_arrays,
    check_flag,
    check_nonnegative,
    check_range,
    check_step,
)

__all__ = [
    "adadelta_update",
    "adagrad_update",
    "adam_update",
    "rmsprop_update",
    "sgd_update",
]


def sgd_update(
    param: Any,
    grad: Any,
    momentum_buffer: Any = None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
    first_step: bool = False,
    backend: str | None = None,
) -> None:
    """One SGD step on ``param`` in place (see the module docstring for the formula).

    ``momentum_buffer`` is required when ``momentum > 0`` and updated in place; on the
    ``first_step`` it is overwritten with the gradient (PyTorch's initialisation).
    """
    op = "sgd_update"
    lr = check_nonnegative(op, "lr", lr)
    momentum = check_nonnegative(op, "momentum", momentum)
    dampening = check_range(op, "dampening", dampening, 0.0, 1.0, closed=True)
    weight_decay = check_nonnegative(op, "weight_decay", weight_decay)
    nesterov = check_flag(op, "nesterov", nesterov)
    maximize = check_flag(op, "maximize", maximize)
    first_step = check_flag(op, "first_step", first_step)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"{op}: nesterov needs momentum > 0 and dampening = 0")
    if momentum > 0 and momentum_buffer is None:
        raise ValueError(f"{op}: momentum > 0 needs a momentum_buffer")
    buf = momentum_buffer if momentum > 0 else None
    kind = check_arrays(op, param, grad, {"momentum_buffer": buf})
    resolve(op, kind, backend)(
        param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step
    )


def adagrad_update(
    param: Any,
    grad: Any,
    state_sum: Any,
    *,
    lr: float,
    step: int,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
    backend: str | None = None,
) -> None:
    """One Adagrad step (``step`` counts from 1); ``state_sum`` accumulates squared
    gradients in place."""
    op = "adagrad_update"
    lr = check_nonnegative(op, "lr", lr)
    step = check_step(op, step)
    lr_decay = check_nonnegative(op, "lr_decay", lr_decay)
    weight_decay = check_nonnegative(op, "weight_decay", weight_decay)
    eps = check_nonnegative(op, "eps", eps)
    maximize = check_flag(op, "maximize", maximize)
    kind = check_arrays(op, param, grad, {"state_sum": state_sum})
    decayed = lr / (1.0 + (step - 1) * lr_decay)
    resolve(op, kind, backend)(param, grad, state_sum, decayed, weight_decay, eps, maximize)


def rmsprop_update(
    param: Any,
    grad: Any,
    square_avg: Any,
    grad_avg: Any = None,
    momentum_buffer: Any = None,
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
    backend: str | None = None,
) -> None:
    """One RMSprop step.  ``grad_avg`` is required when ``centered``, ``momentum_buffer``
    when ``momentum > 0``; both start at zero and are updated in place."""
    op = "rmsprop_update"
    lr = check_nonnegative(op, "lr", lr)
    alpha = check_nonnegative(op, "alpha", alpha)
    eps = check_nonnegative(op, "eps", eps)
    weight_decay = check_nonnegative(op, "weight_decay", weight_decay)
    momentum = check_nonnegative(op, "momentum", momentum)
    centered = check_flag(op, "centered", centered)
    maximize = check_flag(op, "maximize", maximize)
    if centered and grad_avg is None:
        raise ValueError(f"{op}: centered=True needs a grad_avg array")
    if momentum > 0 and momentum_buffer is None:
        raise ValueError(f"{op}: momentum > 0 needs a momentum_buffer")
    grad_avg = grad_avg if centered else None
    buf = momentum_buffer if momentum > 0 else None
    states = {"square_avg": square_avg, "grad_avg": grad_avg, "momentum_buffer": buf}
    kind = check_arrays(op, param, grad, states)
    resolve(op, kind, backend)(
        param, grad, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum, maximize
    )


def adadelta_update(
    param: Any,
    grad: Any,
    square_avg: Any,
    acc_delta: Any,
    *,
    lr: float = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    maximize: bool = False,
    backend: str | None = None,
) -> None:
    """One Adadelta step; ``square_avg`` and ``acc_delta`` (both start at zero) are the
    running averages of squared gradients and squared updates, updated in place."""
    op = "adadelta_update"
    lr = check_nonnegative(op, "lr", lr)
    rho = check_range(op, "rho", rho, 0.0, 1.0, closed=True)
    eps = check_nonnegative(op, "eps", eps)
    weight_decay = check_nonnegative(op, "weight_decay", weight_decay)
    maximize = check_flag(op, "maximize", maximize)
    kind = check_arrays(op, param, grad, {"square_avg": square_avg, "acc_delta": acc_delta})
    resolve(op, kind, backend)(
        param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize
    )


def adam_update(
    param: Any,
    grad: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    max_exp_avg_sq: Any = None,
    *,
    step: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
    backend: str | None = None,
) -> None:
    """One Adam (or AdamW, with ``decoupled_weight_decay``) step; ``step`` counts from 1
    and sets the bias corrections.  ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``,
    required with ``amsgrad``) start at zero and are updated in place."""
    op = "adam_update"
    step = check_step(op, step)
    lr = check_nonnegative(op, "lr", lr)
    beta1 = check_range(op, "beta1", beta1, 0.0, 1.0, closed=False)
    beta2 = check_range(op, "beta2", beta2, 0.0, 1.0, closed=False)
    eps = check_nonnegative(op, "eps", eps)
    weight_decay = check_nonnegative(op, "weight_decay", weight_decay)
    amsgrad = check_flag(op, "amsgrad", amsgrad)
    decoupled = check_flag(op, "decoupled_weight_decay", decoupled_weight_decay)
    maximize = check_flag(op, "maximize", maximize)
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError(f"{op}: amsgrad=True needs a max_exp_avg_sq array")
    vmax = max_exp_avg_sq if amsgrad else None
    states = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "max_exp_avg_sq": vmax}
    kind = check_arrays(op, param, grad, states)
    resolve(op, kind, backend)(
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
    )
