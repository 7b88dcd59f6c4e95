"""The optimizer update ops: one fused kernel per optimizer and backend, IN PLACE.

Unlike every other fastnn op, these write into their arguments: ``param`` and the state
arrays are updated in place and nothing is returned.  That is what an optimizer step is,
and it keeps references to the parameters valid.  So ``param`` and the states must be
C-contiguous, writeable, of one dtype and device, and must not share memory; ``grad`` may
have any layout (it is only read).  Arguments are validated once, before the kernel runs.

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

Each function builds the hyperparameter dataclass of its op (``fastnn.AdamHyper``, ...)
and runs the public op (``fastnn.adam_update``, ...), which validates the arrays once and
dispatches to the backend the dispatcher picks ("cpu" Cython, "reference" NumPy,
"numba-cuda", "cupy"); ``backend=`` overrides the choice as for every op.  Calling the ops
with a dataclass built once skips re-checking the hyperparameters at every call.
"""

from __future__ import annotations

import functools
from typing import Any

from fastnn import ops as _ops

__all__ = [
    "adadelta_update",
    "adagrad_update",
    "adam_update",
    "rmsprop_update",
    "sgd_update",
]


@functools.lru_cache(maxsize=64, typed=True)
def _cached(kind: type, **fields: Any) -> Any:
    return kind(**fields)


def _hyper(kind: type, **fields: Any) -> Any:
    """``kind(**fields)``, built (and checked) once per distinct set of values: a training
    loop calls these functions with the same options at every step.  The cache is typed
    (1, 1.0 and True are different keys), so a bool where a number belongs is still
    refused; an unhashable value goes straight to ``kind``, whose check names it."""
    try:
        return _cached(kind, **fields)
    except TypeError:
        return kind(**fields)


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
    hyper = _hyper(
        _ops.SGDHyper, lr=lr, momentum=momentum, dampening=dampening,
        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
    )  # fmt: skip
    _ops.sgd_update(
        param, grad, momentum_buffer, hyper=hyper, first_step=first_step, backend=backend
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
    hyper = _hyper(
        _ops.AdagradHyper,
        lr=lr,
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        eps=eps,
        maximize=maximize,
    )
    _ops.adagrad_update(param, grad, state_sum, hyper=hyper, step=step, backend=backend)


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
    hyper = _hyper(
        _ops.RMSpropHyper, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
        momentum=momentum, centered=centered, maximize=maximize,
    )  # fmt: skip
    _ops.rmsprop_update(
        param, grad, square_avg, grad_avg, momentum_buffer, hyper=hyper, backend=backend
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
    hyper = _hyper(
        _ops.AdadeltaHyper, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize
    )
    _ops.adadelta_update(param, grad, square_avg, acc_delta, hyper=hyper, backend=backend)


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
    hyper = _hyper(
        _ops.AdamHyper, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
        amsgrad=amsgrad, decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
    )  # fmt: skip
    _ops.adam_update(
        param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, hyper=hyper, step=step,
        backend=backend,
    )  # fmt: skip
