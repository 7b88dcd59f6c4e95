"""SGD with momentum, Nesterov momentum and weight decay (PyTorch's formulas)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import fastnn
from fastnn.optim.optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent: ``param -= lr * d``, where ``d`` is the gradient, or
    with ``momentum`` the velocity ``b = momentum * b + (1 - dampening) * g`` (``b = g`` at
    the first step), or with ``nesterov`` the look-ahead ``g + momentum * b``.
    ``weight_decay`` adds ``weight_decay * param`` to the gradient (L2 regularisation);
    ``maximize`` ascends instead.  One fused kernel per parameter and step."""

    _HYPER = fastnn.SGDHyper

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, self._options(locals()))

    def _update(self, param, group, state, hyper: fastnn.SGDHyper) -> None:
        first = False
        if hyper.momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = self._zeros(param)
            first = True
        fastnn.sgd_update(
            param.data, param.grad, state.get("momentum_buffer"), hyper=hyper, first_step=first
        )
