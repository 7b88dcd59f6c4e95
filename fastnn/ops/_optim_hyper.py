"""The hyperparameters of the optimizer updates: one frozen dataclass per optimizer.

A dataclass checks its fields once, when it is built (``ValueError`` or ``TypeError``
naming the field), and turns them into the scalars its update kernels take: the
``*Scalars`` named tuples below, computed once per step (bias corrections, the decayed
learning rate, ``1 - beta``, the sign of ``maximize``).  Every backend reads those tuples;
the GPU kernels take their fields in tuple order.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fastnn import _args

__all__ = [
    "AdadeltaHyper",
    "AdadeltaScalars",
    "AdagradHyper",
    "AdagradScalars",
    "AdamHyper",
    "AdamScalars",
    "RMSpropHyper",
    "RMSpropScalars",
    "SGDHyper",
    "SGDScalars",
    "check_step",
]


def _real(owner: str, name: str, value: object) -> float:
    number = _args.check_scalar(owner, name, value)
    if not math.isfinite(number):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    return number


def _nonnegative(owner: str, name: str, value: object) -> float:
    number = _real(owner, name, value)
    if number < 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {value!r}")
    return number


def _fraction(owner: str, name: str, value: object, *, closed: bool) -> float:
    """A number in [0, 1] (``closed``) or [0, 1)."""
    number = _real(owner, name, value)
    if not (0.0 <= number <= 1.0 if closed else 0.0 <= number < 1.0):
        raise ValueError(f"{owner}: {name} must be in [0, 1{']' if closed else ')'}, got {value!r}")
    return number


def _normalise(
    hyper: object,
    nonnegative: tuple[str, ...] = (),
    closed: tuple[str, ...] = (),
    open_: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
) -> None:
    """Check the named fields of a frozen dataclass and store them as float / bool:
    ``nonnegative`` finite >= 0, ``closed`` in [0, 1], ``open_`` in [0, 1), ``flags``."""
    owner = type(hyper).__name__
    checked = {name: _nonnegative(owner, name, getattr(hyper, name)) for name in nonnegative}
    for name in closed:
        checked[name] = _fraction(owner, name, getattr(hyper, name), closed=True)
    for name in open_:
        checked[name] = _fraction(owner, name, getattr(hyper, name), closed=False)
    for name in flags:
        checked[name] = _args.check_bool(owner, name, getattr(hyper, name))
    for name, value in checked.items():
        object.__setattr__(hyper, name, value)


def _sign(maximize: bool) -> float:
    return -1.0 if maximize else 1.0


def check_step(op: str, value: object) -> int:
    """The 1-based number of an update (``TypeError`` unless an int, ``ValueError`` < 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: step must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{op}: step must be >= 1 (the first update is step 1), got {value}")
    return int(value)


class SGDScalars(NamedTuple):
    """SGD's kernel scalars: ``keep = 1 - dampening``, ``sign = -1`` when maximizing."""

    lr: float
    momentum: float
    keep: float
    weight_decay: float
    sign: float


@dataclass(frozen=True)
class SGDHyper:
    """SGD: ``param -= lr * d`` with ``d`` the gradient, the momentum buffer
    ``b = momentum * b + (1 - dampening) * g`` or, with ``nesterov``, ``g + momentum * b``.
    ``nesterov`` needs ``momentum > 0`` and ``dampening == 0``."""

    lr: float = 1e-3
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    maximize: bool = False

    def __post_init__(self) -> None:
        _normalise(self, ("lr", "momentum", "weight_decay"), closed=("dampening",),
                   flags=("nesterov", "maximize"))  # fmt: skip
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("SGDHyper: nesterov needs momentum > 0 and dampening = 0")

    def scalars(self) -> SGDScalars:
        """The kernel scalars (the same at every step)."""
        return SGDScalars(
            self.lr, self.momentum, 1.0 - self.dampening, self.weight_decay, _sign(self.maximize)
        )


class AdagradScalars(NamedTuple):
    """Adagrad's kernel scalars; ``lr`` is this step's decayed rate."""

    lr: float
    weight_decay: float
    eps: float
    sign: float


@dataclass(frozen=True)
class AdagradHyper:
    """Adagrad: ``s += g^2``; ``param -= lr_t * g / (sqrt(s) + eps)`` with the decayed
    rate ``lr_t = lr / (1 + (step - 1) * lr_decay)``."""

    lr: float = 1e-2
    lr_decay: float = 0.0
    weight_decay: float = 0.0
    eps: float = 1e-10
    maximize: bool = False

    def __post_init__(self) -> None:
        _normalise(self, ("lr", "lr_decay", "weight_decay", "eps"), flags=("maximize",))

    def scalars(self, step: int) -> AdagradScalars:
        """The kernel scalars of update number ``step`` (from 1)."""
        decayed = self.lr / (1.0 + (step - 1) * self.lr_decay)
        return AdagradScalars(decayed, self.weight_decay, self.eps, _sign(self.maximize))


class RMSpropScalars(NamedTuple):
    """RMSprop's kernel scalars: ``rest = 1 - alpha``."""

    lr: float
    alpha: float
    rest: float
    eps: float
    weight_decay: float
    momentum: float
    sign: float


@dataclass(frozen=True)
class RMSpropHyper:
    """RMSprop: ``v = alpha v + (1 - alpha) g^2``, the step ``g / (sqrt(v) + eps)``
    (``centered``: ``sqrt(v - m^2)`` with ``m`` the running mean of g), accumulated in a
    buffer with ``momentum > 0``."""

    lr: float = 1e-2
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False
    maximize: bool = False

    def __post_init__(self) -> None:
        _normalise(self, ("lr", "alpha", "eps", "weight_decay", "momentum"),
                   flags=("centered", "maximize"))  # fmt: skip

    def scalars(self) -> RMSpropScalars:
        """The kernel scalars (the same at every step)."""
        return RMSpropScalars(
            self.lr, self.alpha, 1.0 - self.alpha, self.eps, self.weight_decay,
            self.momentum, _sign(self.maximize),
        )  # fmt: skip


class AdadeltaScalars(NamedTuple):
    """Adadelta's kernel scalars: ``rest = 1 - rho``."""

    lr: float
    rho: float
    rest: float
    eps: float
    weight_decay: float
    sign: float


@dataclass(frozen=True)
class AdadeltaHyper:
    """Adadelta: ``v = rho v + (1 - rho) g^2``; ``d = sqrt(u + eps) / sqrt(v + eps) * g``;
    ``u = rho u + (1 - rho) d^2``; ``param -= lr d``."""

    lr: float = 1.0
    rho: float = 0.9
    eps: float = 1e-6
    weight_decay: float = 0.0
    maximize: bool = False

    def __post_init__(self) -> None:
        _normalise(self, ("lr", "eps", "weight_decay"), closed=("rho",), flags=("maximize",))

    def scalars(self) -> AdadeltaScalars:
        """The kernel scalars (the same at every step)."""
        return AdadeltaScalars(
            self.lr, self.rho, 1.0 - self.rho, self.eps, self.weight_decay, _sign(self.maximize)
        )


class AdamScalars(NamedTuple):
    """Adam's kernel scalars at one step: ``step_size = lr / (1 - beta1^t)``,
    ``bias2_sqrt = sqrt(1 - beta2^t)``, ``shrink = 1 - lr * weight_decay`` (AdamW),
    ``rest1 = 1 - beta1``, ``rest2 = 1 - beta2``."""

    step_size: float
    bias2_sqrt: float
    shrink: float
    beta1: float
    rest1: float
    beta2: float
    rest2: float
    eps: float
    weight_decay: float
    sign: float


@dataclass(frozen=True)
class AdamHyper:
    """Adam: running means ``m`` of g and ``v`` of g^2 (AMSGrad: their running maximum),
    ``param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``;
    ``weight_decay`` adds ``weight_decay * param`` to g, or with
    ``decoupled_weight_decay`` (AdamW) multiplies param by ``1 - lr * weight_decay``."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    decoupled_weight_decay: bool = False
    maximize: bool = False

    def __post_init__(self) -> None:
        _normalise(self, ("lr", "eps", "weight_decay"), open_=("beta1", "beta2"),
                   flags=("amsgrad", "decoupled_weight_decay", "maximize"))  # fmt: skip

    def scalars(self, step: int) -> AdamScalars:
        """The kernel scalars of update number ``step`` (from 1): the bias corrections."""
        beta1, beta2 = self.beta1, self.beta2
        return AdamScalars(
            self.lr / (1.0 - beta1**step), math.sqrt(1.0 - beta2**step),
            1.0 - self.lr * self.weight_decay, beta1, 1.0 - beta1, beta2, 1.0 - beta2,
            self.eps, self.weight_decay, _sign(self.maximize),
        )  # fmt: skip
