"""The optimizer updates: one fused kernel per optimizer and backend, IN PLACE.

Unlike every other op, these write into their arguments: ``param`` and the state arrays
are updated in place and nothing is returned.  That is what an optimizer step is, and it
keeps references to the parameters valid.  So ``param`` and the states must be
C-contiguous, writeable, of one dtype and device, and must not share memory; ``grad`` may
have any layout (it is only read).

Each update takes its hyperparameters as one frozen dataclass (:class:`SGDHyper`,
:class:`AdagradHyper`, :class:`RMSpropHyper`, :class:`AdadeltaHyper`, :class:`AdamHyper`),
checked when it is built; build it once and reuse it for every parameter and step.  The
formulas are PyTorch's (``torch.optim``, single-tensor path), with ``g`` the gradient
(negated when ``maximize``) plus ``weight_decay * param`` (see each dataclass).

Backend implementations receive the checked arrays, the dataclass and its kernel scalars
(``hyper.scalars(...)``, computed here once per call):

=================  =======================================================================
op                 implementation signature (returns None)
=================  =======================================================================
sgd_update         (param, grad, buf | None, hyper, SGDScalars, first_step)
adagrad_update     (param, grad, state_sum, hyper, AdagradScalars)
rmsprop_update     (param, grad, square_avg, grad_avg | None, buf | None, hyper,
                   RMSpropScalars); centred iff grad_avg is given
adadelta_update    (param, grad, square_avg, acc_delta, hyper, AdadeltaScalars)
adam_update        (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq | None, hyper,
                   AdamScalars)
=================  =======================================================================

A state array of an option that is off (``momentum_buffer`` with ``momentum == 0``, ...)
is ignored and reaches the backend as None.
"""

from __future__ import annotations

from typing import Any

from fastnn import _args
from fastnn._dispatch import resolve
from fastnn.ops._inplace import check_arrays
from fastnn.ops._optim_hyper import (
    AdadeltaHyper,
    AdagradHyper,
    AdamHyper,
    RMSpropHyper,
    SGDHyper,
    check_step,
)

__all__ = [
    "UPDATES",
    "AdadeltaHyper",
    "AdagradHyper",
    "AdamHyper",
    "RMSpropHyper",
    "SGDHyper",
    "adadelta_update",
    "adagrad_update",
    "adam_update",
    "rmsprop_update",
    "sgd_update",
]

#: The in-place optimizer updates (apart from ``fastnn.ops.OPS``: they return nothing).
UPDATES = ("sgd_update", "adagrad_update", "rmsprop_update", "adadelta_update", "adam_update")


def _hyper(op: str, hyper: object, kind: type) -> Any:
    if not isinstance(hyper, kind):
        raise TypeError(f"{op}: hyper must be a {kind.__name__}, got {type(hyper).__name__}")
    return hyper


def _needed(op: str, name: str, state: Any, wanted: bool, why: str) -> Any:
    """``state`` when its option is on (then it must be given), else None."""
    if not wanted:
        return None
    if state is None:
        raise ValueError(f"{op}: {why} needs a {name} array")
    return state


def sgd_update(
    param: Any,
    grad: Any,
    momentum_buffer: Any = None,
    *,
    hyper: SGDHyper,
    first_step: bool = False,
    backend: str | None = None,
) -> None:
    """One SGD step on ``param`` in place.  ``momentum_buffer`` is required when
    ``hyper.momentum > 0`` and updated in place; on the ``first_step`` it is overwritten
    with the gradient (PyTorch's initialisation)."""
    op = "sgd_update"
    hyper = _hyper(op, hyper, SGDHyper)
    first_step = _args.check_bool(op, "first_step", first_step)
    buf = _needed(op, "momentum_buffer", momentum_buffer, hyper.momentum > 0, "momentum > 0")
    kind = check_arrays(op, param, grad, {"momentum_buffer": buf})
    resolve(op, kind, backend)(param, grad, buf, hyper, hyper.scalars(), first_step)


def adagrad_update(
    param: Any,
    grad: Any,
    state_sum: Any,
    *,
    hyper: AdagradHyper,
    step: int,
    backend: str | None = None,
) -> None:
    """One Adagrad step (``step`` counts from 1 and decays the rate); ``state_sum``
    accumulates squared gradients in place."""
    op = "adagrad_update"
    hyper = _hyper(op, hyper, AdagradHyper)
    step = check_step(op, step)
    kind = check_arrays(op, param, grad, {"state_sum": state_sum})
    resolve(op, kind, backend)(param, grad, state_sum, hyper, hyper.scalars(step))


def rmsprop_update(
    param: Any,
    grad: Any,
    square_avg: Any,
    grad_avg: Any = None,
    momentum_buffer: Any = None,
    *,
    hyper: RMSpropHyper,
    backend: str | None = None,
) -> None:
    """One RMSprop step.  ``grad_avg`` is required when ``hyper.centered``,
    ``momentum_buffer`` when ``hyper.momentum > 0``; every state starts at zero and is
    updated in place."""
    op = "rmsprop_update"
    hyper = _hyper(op, hyper, RMSpropHyper)
    grad_avg = _needed(op, "grad_avg", grad_avg, hyper.centered, "centered=True")
    buf = _needed(op, "momentum_buffer", momentum_buffer, hyper.momentum > 0, "momentum > 0")
    states = {"square_avg": square_avg, "grad_avg": grad_avg, "momentum_buffer": buf}
    kind = check_arrays(op, param, grad, states)
    resolve(op, kind, backend)(param, grad, square_avg, grad_avg, buf, hyper, hyper.scalars())


def adadelta_update(
    param: Any,
    grad: Any,
    square_avg: Any,
    acc_delta: Any,
    *,
    hyper: AdadeltaHyper,
    backend: str | None = None,
) -> None:
    """One Adadelta step; ``square_avg`` and ``acc_delta`` (both start at zero) are the
    running averages of squared gradients and squared updates, updated in place."""
    op = "adadelta_update"
    hyper = _hyper(op, hyper, AdadeltaHyper)
    kind = check_arrays(op, param, grad, {"square_avg": square_avg, "acc_delta": acc_delta})
    resolve(op, kind, backend)(param, grad, square_avg, acc_delta, hyper, hyper.scalars())


def adam_update(
    param: Any,
    grad: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    max_exp_avg_sq: Any = None,
    *,
    hyper: AdamHyper,
    step: int,
    backend: str | None = None,
) -> None:
    """One Adam (AdamW with ``hyper.decoupled_weight_decay``) step; ``step`` counts from 1
    and sets the bias corrections.  ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``,
    required with ``hyper.amsgrad``) start at zero and are updated in place."""
    op = "adam_update"
    hyper = _hyper(op, hyper, AdamHyper)
    step = check_step(op, step)
    vmax = _needed(op, "max_exp_avg_sq", max_exp_avg_sq, hyper.amsgrad, "amsgrad=True")
    states = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "max_exp_avg_sq": vmax}
    kind = check_arrays(op, param, grad, states)
    resolve(op, kind, backend)(param, grad, exp_avg, exp_avg_sq, vmax, hyper, hyper.scalars(step))
