"""Adadelta: steps whose size is the ratio of running RMS of updates and of gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import fastnn
from fastnn.optim.optimizer import Optimizer

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """``v = rho v + (1 - rho) g^2``; ``d = sqrt(u + eps) / sqrt(v + eps) * g``;
    ``u = rho u + (1 - rho) d^2``; ``param -= lr d`` (PyTorch's Adadelta; the course
    notes' method with ``lr = 1``)."""

    _HYPER = fastnn.AdadeltaHyper

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, self._options(locals()))

    def _update(self, param, group, state, hyper: fastnn.AdadeltaHyper) -> None:
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = self._zeros(param)
            state["acc_delta"] = self._zeros(param)
        state["step"] += 1
        fastnn.adadelta_update(
            param.data, param.grad, state["square_avg"], state["acc_delta"], hyper=hyper
        )
