"""RMSprop: steps scaled by a running average of squared gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import fastnn
from fastnn.optim.optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """``v = alpha v + (1 - alpha) g^2``; ``param -= lr g / (sqrt(v) + eps)``.  ``centered``
    subtracts the squared running mean of g from v; ``momentum`` accumulates the scaled
    steps in a buffer (PyTorch's RMSprop)."""

    _HYPER = fastnn.RMSpropHyper

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, self._options(locals()))

    def _update(self, param, group, state, hyper: fastnn.RMSpropHyper) -> None:
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = self._zeros(param)
            if hyper.centered:
                state["grad_avg"] = self._zeros(param)
            if hyper.momentum > 0:
                state["momentum_buffer"] = self._zeros(param)
        state["step"] += 1
        fastnn.rmsprop_update(
            param.data, param.grad, state["square_avg"], state.get("grad_avg"),
            state.get("momentum_buffer"), hyper=hyper,
        )  # fmt: skip
